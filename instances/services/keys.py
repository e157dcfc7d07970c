"""SSH keys: kept per portal user, imported into Nova when a launch uses them."""
from __future__ import annotations

import base64
import hashlib

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
        raise ValidationError("The key's base64 part is damaged.")
    if not blob.startswith(len(parts[0]).to_bytes(4, "big") + parts[0].encode()):
        raise ValidationError("The key's type and its content do not match.")
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


def ssh_key_create(*, user, name: str, public_key: str) -> SSHKey:
    fingerprint = public_key_fingerprint(public_key)
    if SSHKey.objects.filter(user=user, name=name).exists():
        raise ValidationError(f"You already have a key named “{name}”.")
    return SSHKey.objects.create(user=user, name=name, public_key=public_key.strip(), fingerprint=fingerprint)


def ssh_key_delete(*, key: SSHKey) -> None:
    """Forget the key, and remove the Nova keypair the portal imported it as (the person's own,
    under the key's name) if it still holds this key."""
    scope = _any_scope(key.user)
    if scope is not None:
        for name in (key.name, f"{key.name}-{key.fingerprint.removeprefix('SHA256:')[:8]}"):
            found = compute.keypair_get(scope=scope, name=name)
            if found and found.public_key.split()[:2] == key.public_key.split()[:2]:
                compute.keypair_delete(scope=scope, name=name)
    key.delete()


def _any_scope(user):
    """Keypairs belong to the Keystone user, not a project: any project of theirs will do."""
    from allocations.scopes import NoCloudAccess, member_scope
    from allocations.selectors import allocation_list_for_user

    for allocation in allocation_list_for_user(user=user).exclude(openstack_project_id=""):
        try:
            return member_scope(user=user, allocation=allocation)
        except NoCloudAccess:
            continue
    return None
