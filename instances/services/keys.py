"""SSH keys: kept per portal user, imported into Nova when a launch uses them."""
from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.core.cache import cache
from django.core.exceptions import ValidationError

from portal.cloud import compute

from ..models import SSHKey

KEY_TYPES = ("ssh-rsa", "ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521")


def public_key_fingerprint(public_key: str) -> str:
    """SHA256 fingerprint as `ssh-keygen -l` prints it; ValidationError if it is not a public key."""
    parts = public_key.strip().split()
    if len(parts) < 2 or parts[0] not in KEY_TYPES:
        raise ValidationError("This is not an SSH public key (it should start with ssh-ed25519 or ssh-rsa).")
    try:
        blob = base64.b64decode(parts[1], validate=True)
    except ValueError:
        raise ValidationError("The key's base64 part is damaged.") from None
    if not blob.startswith(len(parts[0]).to_bytes(4, "big") + parts[0].encode()):
        raise ValidationError("The key's type and its content do not match.")
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


def ssh_key_create(*, user, name: str, public_key: str) -> SSHKey:
    fingerprint = public_key_fingerprint(public_key)
    if SSHKey.objects.filter(user=user, name=name).exists():
        raise ValidationError(f"You already have a key named “{name}”.")
    return SSHKey.objects.create(user=user, name=name, public_key=public_key.strip(), fingerprint=fingerprint)


def ssh_key_delete(*, key: SSHKey) -> None:
    """Forget the key, and remove the Nova keypairs the portal imported it as (the person's own,
    under the key's name, one in each region it was used in) where they still hold this key."""
    for scope in _a_scope_per_region(key.user):
        for name in (key.name, f"{key.name}-{key.fingerprint.removeprefix('SHA256:')[:8]}"):
            found = compute.keypair_get(scope=scope, name=name)
            if found and found.public_key.split()[:2] == key.public_key.split()[:2]:
                compute.keypair_delete(scope=scope, name=name)
    key.delete()


def _a_scope_per_region(user) -> list:
    """Keypairs belong to the Keystone user, not a project, but each region's Nova keeps its own:
    a project of theirs in each region they can reach will do."""
    from allocations.regions import allocation_region_keys
    from allocations.scopes import NoCloudAccess, member_scope
    from allocations.selectors import allocation_list_for_user

    scopes = {}
    for allocation in allocation_list_for_user(user=user).exclude(openstack_project_id=""):
        for region in allocation_region_keys(allocation=allocation):
            if region not in scopes:
                try:
                    scopes[region] = member_scope(user=user, allocation=allocation, region=region)
                except NoCloudAccess:
                    continue
    return list(scopes.values())


# --- Key pairs made by the portal ------------------------------------------------------------
# The portal keeps only the public key. The private key exists in the response that makes it and,
# for a few minutes, behind a one-time link: the cache holds it under a hash of the link's random
# token, encrypted with a key derived from that token, so without the link nobody (the portal
# included) can read it, and the first download deletes it.

PRIVATE_KEY_TTL_SECONDS = 600


@dataclass(frozen=True)
class PrivateKeyDownload:
    filename: str
    body: str


def ssh_key_generate(*, user, name: str) -> tuple[SSHKey, str]:
    """A new ed25519 key pair: the public half kept as the person's key, the private half returned
    (OpenSSH format) for them to download once."""
    if SSHKey.objects.filter(user=user, name=name).exists():
        raise ValidationError(f"You already have a key named “{name}”.")
    private = Ed25519PrivateKey.generate()
    public_key = private.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                                    serialization.PublicFormat.OpenSSH).decode()
    public_key = f"{public_key} {name}@research-cloud-portal"
    key = ssh_key_create(user=user, name=name, public_key=public_key)
    private_pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                        serialization.NoEncryption()).decode()
    return key, private_pem


def _download_key(token: str) -> str:
    return "instances:private-key-download:" + hashlib.sha256(token.encode()).hexdigest()


def _download_cipher(token: str) -> Fernet:
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
               info=b"portal ssh private key download").derive(token.encode())
    return Fernet(base64.urlsafe_b64encode(key))


def ssh_key_private_download_issue(*, key: SSHKey, private_key: str) -> str:
    """A one-time token for downloading the private key just made (for the response that made it)."""
    token = secrets.token_urlsafe(32)
    cache.set(_download_key(token), {
        "user_id": key.user_id, "key_id": key.pk,
        "private_key": _download_cipher(token).encrypt(private_key.encode()).decode(),
    }, timeout=PRIVATE_KEY_TTL_SECONDS)
    return token


def ssh_key_private_download_redeem(*, token: str, user) -> PrivateKeyDownload | None:
    """The private key behind the token, once; None if unknown, used, expired or not theirs."""
    cache_key = _download_key(token)
    entry = cache.get(cache_key)
    if not entry or entry.get("user_id") != user.pk:
        return None
    if not cache.delete(cache_key):
        return None  # another download of the same link got there first
    key = SSHKey.objects.filter(pk=entry["key_id"], user=user).first()
    if key is None:
        return None
    try:
        body = _download_cipher(token).decrypt(entry["private_key"].encode()).decode()
    except InvalidToken:
        return None
    return PrivateKeyDownload(filename=f"{key.name}.pem", body=body)
