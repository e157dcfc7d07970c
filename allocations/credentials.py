"""Application credentials, so a portal user works from the CLI, Terraform or Horizon as well.

Minting one is a single short Keystone call the user waits for (the secret is shown once), so
it runs in the request rather than a task.
"""
from __future__ import annotations

from datetime import timedelta

import yaml
from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.utils import timezone

from portal import crypto
from portal.cloud import identity

from . import provisioning
from .models import Allocation, ApplicationCredential, Membership


def credential_create(*, user, allocation: Allocation, name: str, expires_in_days: int):
    """Returns (row, secret). The secret is not stored by the portal."""
    membership = Membership.objects.filter(user=user, allocation=allocation).first()
    if membership is None or not allocation.openstack_project_id:
        raise PermissionDenied("You are not a member of that allocation's project.")
    if not membership.keystone_role_granted:
        provisioning.membership_grant(membership=membership)
    ks = provisioning.keystone_identity_ensure(user=user)
    expires_at = timezone.now() + timedelta(days=expires_in_days)
    full_name = f"{name}-{allocation.openstack_project_name}"[:255]
    cred = identity.app_credential_create(
        user_id=ks.keystone_user_id, username=ks.keystone_username, password=crypto.decrypt(ks.encrypted_password),
        domain=settings.PORTAL_KEYSTONE_DOMAIN, project_id=allocation.openstack_project_id, name=full_name,
        roles=[settings.PORTAL_MEMBER_ROLE],
        expires_at=expires_at)
    row = ApplicationCredential.objects.create(user=user, allocation=allocation, keystone_id=cred.id,
                                               name=cred.name, expires_at=expires_at)
    return row, cred.secret


def credential_delete(*, credential: ApplicationCredential) -> None:
    ks = credential.user.keystone
    identity.app_credential_delete(user_id=ks.keystone_user_id, credential_id=credential.keystone_id)
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
    endpoint = identity.cloud_endpoint_get()
    lines = [
        "#!/usr/bin/env bash",
        f"# Application credential {credential.name} for {credential.allocation.title}.",
        "# Use with: source openrc.sh && openstack server list",
        "export OS_AUTH_TYPE=v3applicationcredential",
        f"export OS_AUTH_URL={endpoint.auth_url}",
        "export OS_IDENTITY_API_VERSION=3",
        f"export OS_INTERFACE={endpoint.interface}",
        f"export OS_APPLICATION_CREDENTIAL_ID={credential.keystone_id}",
        f"export OS_APPLICATION_CREDENTIAL_SECRET={secret}",
    ]
    if endpoint.region_name:
        lines.append(f"export OS_REGION_NAME={endpoint.region_name}")
    return "\n".join(lines) + "\n"
