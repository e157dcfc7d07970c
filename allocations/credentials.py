"""Application credentials, so a portal user works from the CLI, Terraform or Horizon as well.

Minting one is a single short Keystone call the user waits for (the secret is shown once), so
it runs in the request rather than a task.
"""
from __future__ import annotations

import base64
import hashlib
import json
import logging
import secrets
import shlex
from dataclasses import asdict, dataclass
from datetime import timedelta

import yaml
from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from django.core.cache import cache
from django.utils import timezone

from portal.cloud import identity
from portal.cloud.errors import CloudError

from .models import Allocation, ApplicationCredential
from .scopes import NoCloudAccess, member_scope
from .services import single_line

log = logging.getLogger(__name__)


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
        if others := _other_regions(credential):  # `openstack --os-region-name <region>` reaches them
            cloud["regions"] = [endpoint.region_name, *others]
    return yaml.safe_dump({"clouds": {_cloud_name(credential): cloud}}, sort_keys=False)


def _other_regions(credential: ApplicationCredential) -> list[str]:
    """The regions beside the primary the credential's allocation is enabled in (Keystone is shared:
    the credential works in each)."""
    from .regions import allocation_region_keys

    return [key for key in allocation_region_keys(allocation=credential.allocation) if key]


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
        *(f"# In {single_line(region)} too: openstack --os-region-name {shlex.quote(region)} server list"
          for region in _other_regions(credential)),
    ]
    return "\n".join(lines) + "\n"


# --- Terraform starter ------------------------------------------------------------------------
# main.tf: the OpenStack provider with the credential, a network with a subnet and a router to
# the external network, a keypair from var.public_key, an SSH security group, and one server with
# a public IP, from the smallest m3 flavor and a Featured image the project can use.


@dataclass(frozen=True)
class TerraformChoices:
    flavor: str  # names, as `terraform plan` looks them up; "" when the cloud could not be asked
    image: str
    external_network: str = "public"


def terraform_choices(*, user, allocation: Allocation) -> TerraformChoices:
    """What the starter boots, as the person sees the project: the smallest m3 flavor, a Featured
    image (Ubuntu first), the cloud's external network."""
    from instances import selectors
    from portal.cloud import network

    options = selectors.launch_options(user=user, allocation=allocation)
    flavor = min((f for f in options["flavors"] if f.name.startswith("m3.")),
                 key=lambda f: (f.vcpus, f.ram_mb, f.disk_gb, f.name), default=None)
    image = min((i for i in options["images"] if i.group == "featured"),
                key=lambda i: ("ubuntu" not in i.name.lower(), i.name), default=None)
    scope = member_scope(user=user, allocation=allocation)
    external = next((n.name for n in network.network_list(scope=scope) if n.is_external), "public")
    return TerraformChoices(flavor=flavor.name if flavor else "", image=image.name if image else "",
                            external_network=external)


def terraform_choices_or_blank(*, user, allocation: Allocation) -> TerraformChoices:
    """terraform_choices, or blanks when the cloud does not answer (main.tf then asks for them)."""
    try:
        return terraform_choices(user=user, allocation=allocation)
    except (CloudError, NoCloudAccess) as exc:
        log.warning("Terraform starter for allocation %s without defaults: %s", allocation.pk, exc)
        return TerraformChoices(flavor="", image="")


def _hcl(value: str) -> str:
    """A quoted HCL string: JSON's escapes, and no template sequence (`${`, `%{`) stays live."""
    return json.dumps(value).replace("${", "$${").replace("%{", "%%{")


def _variable(name: str, description: str, default: str) -> str:
    lines = [f'variable "{name}" {{', f"  description = {_hcl(description)}", "  type        = string"]
    if default:  # unknown: terraform asks for it
        lines.append(f"  default     = {_hcl(default)}")
    return "\n".join(lines + ["}"])


def main_tf(*, credential: ApplicationCredential, secret: str, choices: TerraformChoices) -> str:
    endpoint = identity.cloud_endpoint_get()
    provider = [f"  auth_url                      = {_hcl(endpoint.auth_url)}"]
    if endpoint.region_name:
        provider.append(f"  region                        = {_hcl(endpoint.region_name)}")
    provider += [f"  application_credential_id     = {_hcl(credential.keystone_id)}",
                 f"  application_credential_secret = {_hcl(secret)}"]
    allocation = credential.allocation
    return TERRAFORM_TEMPLATE.format(
        title=single_line(allocation.title), project=single_line(allocation.openstack_project_name),
        credential=single_line(credential.name), provider="\n".join(provider),
        variables="\n\n".join([
            _variable("public_key", "Your SSH public key, e.g. the contents of ~/.ssh/id_ed25519.pub", ""),
            _variable("flavor_name", "A flavor of the project (the smallest m3 one)", choices.flavor),
            _variable("image_name", "An image (a Featured one)", choices.image),
            _variable("external_network", "The cloud's public network, for the router and the public IP",
                      choices.external_network)]))


TERRAFORM_TEMPLATE = """\
# Terraform starter for {title} (project {project}), from the Research Cloud Portal.
# It signs in with the application credential {credential}: keep this file private.
#   terraform init
#   terraform apply -var "public_key=$(cat ~/.ssh/id_ed25519.pub)"
# Servers made here are charged to the allocation like any other.

terraform {{
  required_providers {{
    openstack = {{
      source  = "terraform-provider-openstack/openstack"
      version = "~> 3.0"
    }}
  }}
}}

provider "openstack" {{
{provider}
}}

{variables}

data "openstack_networking_network_v2" "public" {{
  name     = var.external_network
  external = true
}}

resource "openstack_networking_network_v2" "starter" {{
  name           = "starter-net"
  admin_state_up = true
}}

resource "openstack_networking_subnet_v2" "starter" {{
  name       = "starter-subnet"
  network_id = openstack_networking_network_v2.starter.id
  cidr       = "192.168.42.0/24"
  ip_version = 4
}}

resource "openstack_networking_router_v2" "starter" {{
  name                = "starter-router"
  external_network_id = data.openstack_networking_network_v2.public.id
}}

resource "openstack_networking_router_interface_v2" "starter" {{
  router_id = openstack_networking_router_v2.starter.id
  subnet_id = openstack_networking_subnet_v2.starter.id
}}

resource "openstack_networking_secgroup_v2" "ssh" {{
  name        = "starter-ssh"
  description = "SSH in from anywhere"
}}

resource "openstack_networking_secgroup_rule_v2" "ssh" {{
  security_group_id = openstack_networking_secgroup_v2.ssh.id
  direction         = "ingress"
  ethertype         = "IPv4"
  protocol          = "tcp"
  port_range_min    = 22
  port_range_max    = 22
  remote_ip_prefix  = "0.0.0.0/0"
}}

resource "openstack_compute_keypair_v2" "starter" {{
  name       = "starter-key"
  public_key = var.public_key
}}

resource "openstack_networking_port_v2" "starter" {{
  name               = "starter-port"
  network_id         = openstack_networking_network_v2.starter.id
  security_group_ids = [openstack_networking_secgroup_v2.ssh.id]
  fixed_ip {{
    subnet_id = openstack_networking_subnet_v2.starter.id
  }}
}}

resource "openstack_compute_instance_v2" "starter" {{
  name        = "starter"
  flavor_name = var.flavor_name
  image_name  = var.image_name
  key_pair    = openstack_compute_keypair_v2.starter.name
  network {{
    port = openstack_networking_port_v2.starter.id
  }}
  depends_on = [openstack_networking_router_interface_v2.starter]
}}

resource "openstack_networking_floatingip_v2" "starter" {{
  pool    = data.openstack_networking_network_v2.public.name
  port_id = openstack_networking_port_v2.starter.id
}}

output "fixed_ip" {{
  value = openstack_compute_instance_v2.starter.access_ip_v4
}}

output "public_ip" {{
  value = openstack_networking_floatingip_v2.starter.address
}}
"""


# One-time downloads of a new credential's secret. The create response shows the secret and three
# links, one per file, each with its own random token. The cache (Redis) holds, under a hash of
# the token and for a few minutes, only the secret encrypted with a key derived from the token:
# without the link the portal cannot read it, and a download deletes it first, so a link works
# once, for the person who made the credential.

DOWNLOAD_FORMATS = {"clouds.yaml": "application/x-yaml", "openrc.sh": "text/x-shellscript",
                    "main.tf": "text/plain"}
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


def credential_download_tokens_issue(*, credential: ApplicationCredential, secret: str,
                                     terraform: TerraformChoices | None = None) -> dict[str, str]:
    """A fresh one-time token per file format, for the response that created the credential.
    `terraform`: what main.tf boots (terraform_choices_or_blank, looked up while the person is here)."""
    choices = terraform or TerraformChoices(flavor="", image="")
    tokens = {}
    for fmt in DOWNLOAD_FORMATS:
        token = secrets.token_urlsafe(32)
        entry = {"user_id": credential.user_id, "credential_id": credential.pk, "format": fmt,
                 "secret": _download_cipher(token).encrypt(secret.encode()).decode()}
        if fmt == "main.tf":
            entry["terraform"] = asdict(choices)  # names only, nothing secret
        cache.set(_download_cache_key(token), entry, timeout=DOWNLOAD_TTL_SECONDS)
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
    if fmt == "main.tf":
        body = main_tf(credential=credential, secret=secret, choices=TerraformChoices(**entry["terraform"]))
    else:
        body = (clouds_yaml if fmt == "clouds.yaml" else openrc)(credential=credential, secret=secret)
    return Download(filename=fmt, content_type=DOWNLOAD_FORMATS[fmt], body=body)
