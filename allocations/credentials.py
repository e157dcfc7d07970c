"""Application credentials, so a portal user works from the CLI, Terraform or Horizon as well.

Minting one is a single short Keystone call the user waits for (the secret is shown once), so
it runs in the request rather than a task.
"""
from __future__ import annotations

import base64
import hashlib
import secrets
import shlex
from dataclasses import dataclass
from datetime import timedelta

import yaml
from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from django.core.cache import cache
from django.utils import timezone

from portal.cloud import identity

from .models import Allocation, ApplicationCredential
from .scopes import member_scope
from .services import single_line


def credential_create(*, user, allocation: Allocation, name: str, expires_in_days: int):
    """Returns (row, secret), minted as the person in the allocation's project. The secret is not
    stored by the portal. Raises NoCloudAccess (a PermissionDenied) if they may not act there."""
    scope = member_scope(user=user, allocation=allocation, creating=True)
    expires_at = timezone.now() + timedelta(days=expires_in_days)
    full_name = f"{name}-{allocation.openstack_project_name}"[:255]
    cred = identity.app_credential_create(scope=scope, name=full_name, roles=[settings.PORTAL_MEMBER_ROLE],
                                          expires_at=expires_at)
    row = ApplicationCredential.objects.create(user=user, allocation=allocation, keystone_id=cred.id,
                                               name=cred.name, expires_at=expires_at)
    return row, cred.secret


def credential_delete(*, credential: ApplicationCredential) -> None:
    """Delete it in Keystone as its owner (any of their projects will do), then here."""
    from .scopes import NoCloudAccess

    try:
        scope = member_scope(user=credential.user, allocation=credential.allocation)
    except NoCloudAccess:
        scope = None  # the project is gone or closed: Keystone deleted the credential's roles with it
    if scope is not None:
        identity.app_credential_delete(scope=scope, credential_id=credential.keystone_id)
    credential.delete()


def _cloud_name(credential: ApplicationCredential) -> str:
    return credential.allocation.openstack_project_name or "research-cloud"


def clouds_yaml(*, credential: ApplicationCredential, secret: str) -> str:
    endpoint = identity.cloud_endpoint_get()
    cloud = {
        "auth_type": "v3applicationcredential",
        "auth": {"auth_url": endpoint.auth_url, "application_credential_id": credential.keystone_id,
                 "application_credential_secret": secret},
        "interface": endpoint.interface,
        "identity_api_version": 3,
    }
    if endpoint.region_name:
        cloud["region_name"] = endpoint.region_name
    return yaml.safe_dump({"clouds": {_cloud_name(credential): cloud}}, sort_keys=False)


def openrc(*, credential: ApplicationCredential, secret: str) -> str:
    """A script people `source`: every value is shell-quoted, and names in the comment are kept to
    one line, so nothing in a title, name or secret can run as a command."""
    endpoint = identity.cloud_endpoint_get()
    variables = {
        "OS_AUTH_TYPE": "v3applicationcredential",
        "OS_AUTH_URL": endpoint.auth_url,
        "OS_IDENTITY_API_VERSION": "3",
        "OS_INTERFACE": endpoint.interface,
        "OS_APPLICATION_CREDENTIAL_ID": credential.keystone_id,
        "OS_APPLICATION_CREDENTIAL_SECRET": secret,
    }
    if endpoint.region_name:
        variables["OS_REGION_NAME"] = endpoint.region_name
    lines = [
        "#!/usr/bin/env bash",
        f"# Application credential {single_line(credential.name)} for {single_line(credential.allocation.title)}.",
        "# Use with: source openrc.sh && openstack server list",
        *(f"export {name}={shlex.quote(value)}" for name, value in variables.items()),
    ]
    return "\n".join(lines) + "\n"


# One-time downloads of a new credential's secret. The create response shows the secret and two
# links, one per file, each with its own random token. The cache (Redis) holds, under a hash of
# the token and for a few minutes, only the secret encrypted with a key derived from the token:
# without the link the portal cannot read it, and a download deletes it first, so a link works
# once, for the person who made the credential.

DOWNLOAD_FORMATS = {"clouds.yaml": "application/x-yaml", "openrc.sh": "text/x-shellscript"}
DOWNLOAD_TTL_SECONDS = 600


@dataclass(frozen=True)
class Download:
    filename: str
    content_type: str
    body: str


def _download_cache_key(token: str) -> str:
    return "allocations:credential-download:" + hashlib.sha256(token.encode()).hexdigest()


def _download_cipher(token: str) -> Fernet:
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
               info=b"portal application credential download").derive(token.encode())
    return Fernet(base64.urlsafe_b64encode(key))


def credential_download_tokens_issue(*, credential: ApplicationCredential, secret: str) -> dict[str, str]:
    """A fresh one-time token per file format, for the response that created the credential."""
    tokens = {}
    for fmt in DOWNLOAD_FORMATS:
        token = secrets.token_urlsafe(32)
        cache.set(_download_cache_key(token), {
            "user_id": credential.user_id, "credential_id": credential.pk, "format": fmt,
            "secret": _download_cipher(token).encrypt(secret.encode()).decode(),
        }, timeout=DOWNLOAD_TTL_SECONDS)
        tokens[fmt] = token
    return tokens


def credential_download_redeem(*, token: str, user) -> Download | None:
    """The file behind a one-time token, or None if it is unknown, used, expired or not theirs."""
    key = _download_cache_key(token)
    entry = cache.get(key)
    if not entry or entry.get("user_id") != user.pk:
        return None
    if not cache.delete(key):
        return None  # another download of the same link got there first
    credential = (ApplicationCredential.objects.select_related("allocation")
                  .filter(pk=entry["credential_id"], user=user).first())
    if credential is None:
        return None
    try:
        secret = _download_cipher(token).decrypt(entry["secret"].encode()).decode()
    except InvalidToken:
        return None
    fmt = entry["format"]
    render = clouds_yaml if fmt == "clouds.yaml" else openrc
    return Download(filename=fmt, content_type=DOWNLOAD_FORMATS[fmt], body=render(credential=credential, secret=secret))
