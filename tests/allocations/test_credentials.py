"""Application credentials: the secret is shown and downloadable once, and openrc.sh is inert.

The cloud is faked at the gateway (portal.cloud.identity)."""
import os
import re
import shutil
import subprocess
from types import SimpleNamespace

import pytest
import yaml
from django.core.cache import cache
from django.urls import reverse

from allocations import credentials
from allocations.models import ApplicationCredential, KeystoneIdentity
from portal import crypto
from portal.cloud.image import Image
from tests.factories import UserFactory
from tests.instances.conftest import FLAVORS, NETWORKS

# A project image first by name, a non-Ubuntu Featured one, and the Featured Ubuntu the starter picks.
IMAGES = [Image("img-own", "Aardvark-own", "active", "private", "proj-1", 0, 1, False),
          Image("img-alma", "Featured-AlmaLinux9", "active", "public", "admin", 0, 1, True),
          Image("img-ubuntu", "Featured-Ubuntu24", "active", "public", "admin", 0, 1, True)]

pytestmark = pytest.mark.django_db

SECRET = "s3cret-'\"$(touch SECRET_MARKER)`id`-x"
ENDPOINT = SimpleNamespace(auth_url="http://127.0.0.1:5000/v3", region_name="RegionOne", interface="public",
                           identity_api_version="3")


@pytest.fixture
def cloud(monkeypatch, allocation):
    """Keystone as the portal sees it: the endpoint, and minting a credential as the member."""
    KeystoneIdentity.objects.get_or_create(user=allocation.pi, defaults={
        "keystone_user_id": f"ks-{allocation.pi.pk}", "keystone_username": allocation.pi.email,
        "encrypted_password": crypto.encrypt("unit-test")})
    monkeypatch.setattr("allocations.provisioning.keystone_identity_ensure",
                        lambda user: KeystoneIdentity.objects.get(user=user))
    minted = []

    def app_credential_create(**kwargs):
        minted.append(kwargs)
        return SimpleNamespace(id=f"cred-{len(minted)}", name=kwargs["name"], secret=SECRET)

    monkeypatch.setattr("portal.cloud.identity.app_credential_create", app_credential_create)
    monkeypatch.setattr("portal.cloud.identity.cloud_endpoint_get", lambda: ENDPOINT)
    # What the Terraform starter picks from: the project's flavors, images and networks.
    monkeypatch.setattr("portal.cloud.compute.flavor_list", lambda **kw: FLAVORS)
    monkeypatch.setattr("portal.cloud.image.image_list", lambda **kw: IMAGES)
    monkeypatch.setattr("portal.cloud.network.network_list", lambda **kw: NETWORKS)
    monkeypatch.setattr("portal.cloud.network.security_group_list", lambda **kw: [])
    return minted


def create(client, allocation):
    return client.post(reverse("allocations:credentials"), {
        "allocation": allocation.pk, "name": "laptop", "expires_in_days": "30"})


def links(body: str) -> dict[str, str]:
    return {name: url for url, name in re.findall(r'href="(/credentials/download/[^"]+/)" download="([^"]+)"', body)}


def test_the_create_response_shows_the_secret_once_with_three_one_time_links(user_client, allocation, cloud):
    response = create(user_client, allocation)
    body = response.content.decode()
    assert response["Cache-Control"] == "no-store"
    assert 'data-testid="credential-secret"' in body and "s3cret-" in body and "data-copy-target" in body
    assert set(links(body)) == {"clouds.yaml", "openrc.sh", "main.tf"}

    # Afterwards the page shows neither the secret nor a link.
    later = user_client.get(reverse("allocations:credentials")).content.decode()
    assert "s3cret" not in later and "/credentials/download/" not in later and "laptop-" in later


def test_each_link_downloads_once_then_404(user_client, allocation, cloud):
    urls = links(create(user_client, allocation).content.decode())

    first = user_client.get(urls["clouds.yaml"])
    assert first.status_code == 200 and first["Cache-Control"] == "no-store"
    assert first["Content-Disposition"] == 'attachment; filename="clouds.yaml"'
    cloud_entry = yaml.safe_load(first.content)["clouds"][allocation.openstack_project_name]
    assert cloud_entry["auth"] == {"auth_url": ENDPOINT.auth_url, "application_credential_id": "cred-1",
                                   "application_credential_secret": SECRET}
    assert user_client.get(urls["clouds.yaml"]).status_code == 404

    assert user_client.get(urls["openrc.sh"]).status_code == 200
    assert user_client.get(urls["openrc.sh"]).status_code == 404


def test_someone_else_with_the_link_gets_404_and_the_owner_still_can(client, allocation, cloud):
    client.force_login(allocation.pi)
    url = links(create(client, allocation).content.decode())["openrc.sh"]
    client.force_login(UserFactory())
    assert client.get(url).status_code == 404
    client.logout()
    assert client.get(url).status_code in (302, 404)  # signed out: to the sign-in page, never the file
    client.force_login(allocation.pi)
    assert client.get(url).status_code == 200


def test_a_download_that_loses_the_race_gets_404(user_client, allocation, cloud, monkeypatch):
    url = links(create(user_client, allocation).content.decode())["clouds.yaml"]
    real_get = cache.get

    def get_then_someone_else_downloads(key, *args, **kwargs):
        value = real_get(key, *args, **kwargs)
        cache.delete(key)  # a concurrent download of the same link deletes it between our read and delete
        return value

    monkeypatch.setattr(credentials.cache, "get", get_then_someone_else_downloads)
    assert user_client.get(url).status_code == 404


def test_the_cache_holds_only_ciphertext_under_a_hash_of_the_token(user_client, allocation, cloud):
    url = links(create(user_client, allocation).content.decode())["openrc.sh"]
    token = url.rstrip("/").rsplit("/", 1)[1]
    entry = cache.get(credentials._download_cache_key(token))
    assert entry is not None and token not in credentials._download_cache_key(token)
    assert "s3cret" not in repr(entry) and set(entry) == {"user_id", "credential_id", "format", "secret"}
    ttl = cache._cache.get_client().ttl(cache.make_and_validate_key(credentials._download_cache_key(token)))
    assert 0 < ttl <= 600
    assert "s3cret" not in str(user_client.session.items())  # nothing in the session either


def test_an_unknown_or_malformed_token_is_404(user_client):
    assert user_client.get(reverse("allocations:credential_download", args=["x" * 43])).status_code == 404
    assert user_client.get("/credentials/1/clouds.yaml").status_code == 404  # the old, reusable route is gone


HOSTILE_TITLES = [
    'x"; touch /tmp/MARKER; echo "',
    "$(touch MARKER)",
    "`touch MARKER`",
    "x\ntouch MARKER\n#",
    "x'; touch MARKER; echo '",
]


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
@pytest.mark.parametrize("title", HOSTILE_TITLES)
def test_openrc_for_a_hostile_title_sources_without_running_anything(allocation, monkeypatch, tmp_path, title):
    monkeypatch.setattr("portal.cloud.identity.cloud_endpoint_get", lambda: ENDPOINT)
    marker_dir = tmp_path / "cwd"
    marker_dir.mkdir()
    absolute_marker = tmp_path / "MARKER"
    type(allocation).objects.filter(pk=allocation.pk).update(
        title=title.replace("/tmp/MARKER", str(absolute_marker)))
    credential = ApplicationCredential.objects.create(
        user=allocation.pi, allocation=type(allocation).objects.get(pk=allocation.pk),
        keystone_id="0123abcd", name="laptop-alloc-proj-1")
    script = tmp_path / "openrc.sh"
    script.write_text(credentials.openrc(credential=credential, secret=SECRET))

    shown = subprocess.run(
        ["bash", "-c", 'source "$1" && env -0 | grep -z "^OS_"', "bash", str(script)],
        cwd=marker_dir, capture_output=True, env={"PATH": os.environ["PATH"], "HOME": str(tmp_path)}, timeout=10)

    assert shown.returncode == 0, shown.stderr
    assert list(marker_dir.iterdir()) == [] and not absolute_marker.exists()
    assert shown.stderr == b""
    variables = dict(line.split("=", 1) for line in shown.stdout.decode().split("\0") if line)
    assert variables == {
        "OS_AUTH_TYPE": "v3applicationcredential", "OS_AUTH_URL": ENDPOINT.auth_url,
        "OS_IDENTITY_API_VERSION": "3", "OS_INTERFACE": "public", "OS_APPLICATION_CREDENTIAL_ID": "0123abcd",
        "OS_APPLICATION_CREDENTIAL_SECRET": SECRET, "OS_REGION_NAME": "RegionOne"}
    comment_lines = [line for line in script.read_text().splitlines() if not line.startswith("export ")]
    assert all(line.startswith("#") for line in comment_lines)


# --- main.tf, the Terraform starter ------------------------------------------------------------

def unquote(value):
    return value[1:-1] if isinstance(value, str) and value[:1] == value[-1:] == '"' else value


def blocks(parsed: dict, kind: str) -> dict:
    """{"openstack_compute_instance_v2.starter": {...}} from python-hcl2's nesting, quotes removed."""
    found = {}
    for block in parsed.get(kind, []):
        for type_name, body in block.items():
            if kind in ("resource", "data"):
                for name, inner in body.items():
                    found[f"{unquote(type_name)}.{unquote(name)}"] = {k: unquote(v) for k, v in inner.items()}
            else:
                found[unquote(type_name)] = {k: unquote(v) for k, v in body.items()}
    return found


def download_main_tf(client, allocation) -> str:
    response = client.get(links(create(client, allocation).content.decode())["main.tf"])
    assert response.status_code == 200 and response["Cache-Control"] == "no-store"
    assert response["Content-Disposition"] == 'attachment; filename="main.tf"'
    return response.content.decode()


def test_main_tf_is_a_terraform_starter_for_the_allocation(user_client, allocation, cloud):
    import hcl2

    text = download_main_tf(user_client, allocation)
    parsed = hcl2.loads(text)

    provider = blocks(parsed, "provider")["openstack"]
    assert provider["application_credential_id"] == "cred-1"
    assert provider["auth_url"] == ENDPOINT.auth_url and provider["region"] == "RegionOne"
    assert hcl2.loads(f'x = {text.split("application_credential_secret = ")[1].splitlines()[0]}')["x"]
    resources = blocks(parsed, "resource")
    assert {"openstack_networking_network_v2.starter", "openstack_networking_subnet_v2.starter",
            "openstack_networking_router_v2.starter", "openstack_networking_router_interface_v2.starter",
            "openstack_compute_keypair_v2.starter", "openstack_compute_instance_v2.starter",
            "openstack_networking_floatingip_v2.starter"} <= set(resources)
    assert resources["openstack_compute_keypair_v2.starter"]["public_key"] == "${var.public_key}"
    router = resources["openstack_networking_router_v2.starter"]
    assert router["external_network_id"] == "${data.openstack_networking_network_v2.public.id}"
    assert blocks(parsed, "data")["openstack_networking_network_v2.public"] == {
        "name": "${var.external_network}", "external": True, "__is_block__": True}
    server = resources["openstack_compute_instance_v2.starter"]
    assert (server["flavor_name"], server["image_name"]) == ("${var.flavor_name}", "${var.image_name}")
    variables = blocks(parsed, "variable")
    assert "default" not in variables["public_key"]
    # The smallest m3 flavor and the Featured Ubuntu image this allocation can use, and the cloud's
    # own external network.
    assert unquote(variables["flavor_name"]["default"]) == "m3.small"
    assert unquote(variables["image_name"]["default"]) == "Featured-Ubuntu24"
    assert unquote(variables["external_network"]["default"]) == "public"
    assert {"m3.small"} == {f.name for f in FLAVORS if f.name == unquote(variables["flavor_name"]["default"])}
    assert set(blocks(parsed, "output")) == {"fixed_ip", "public_ip"}


def test_main_tf_keeps_a_hostile_secret_and_title_inert(user_client, allocation, cloud, monkeypatch):
    import hcl2

    hostile = 'x"\n}\nresource "evil" "x" {\n  y = "${file("/etc/passwd")}%{ if true }'
    type(allocation).objects.filter(pk=allocation.pk).update(title='Lab"\nprovider "evil" {}')
    monkeypatch.setattr("portal.cloud.identity.app_credential_create",
                        lambda **kw: SimpleNamespace(id="cred-x", name=kw["name"], secret=hostile))

    parsed = hcl2.loads(download_main_tf(user_client, type(allocation).objects.get(pk=allocation.pk)))

    assert set(blocks(parsed, "provider")) == {"openstack"}
    assert not [r for r in blocks(parsed, "resource") if r.startswith("evil")]
    secret = blocks(parsed, "provider")["openstack"]["application_credential_secret"]
    assert "${file" not in secret.replace("$${", "") and "%{ if" not in secret.replace("%%{", "")


def test_main_tf_asks_for_the_flavor_and_image_when_the_cloud_does_not_answer(user_client, allocation, cloud,
                                                                                monkeypatch):
    import hcl2

    from portal.cloud.errors import CloudUnavailable

    def down(**kwargs):
        raise CloudUnavailable("down")

    monkeypatch.setattr("portal.cloud.compute.flavor_list", down)
    variables = blocks(hcl2.loads(download_main_tf(user_client, allocation)), "variable")
    assert "default" not in variables["flavor_name"] and "default" not in variables["image_name"]


def test_the_downloads_name_the_other_regions_the_allocation_is_enabled_in(user_client, allocation, cloud,
                                                                            monkeypatch):
    from allocations.models import AllocationRegion

    monkeypatch.setattr("allocations.regions.primary_region", lambda: "RegionOne")
    AllocationRegion.objects.create(allocation=allocation, region_name="RegionTwo", state="ready")
    urls = links(create(user_client, allocation).content.decode())
    entry = yaml.safe_load(user_client.get(urls["clouds.yaml"]).content)["clouds"][allocation.openstack_project_name]
    assert entry["region_name"] == "RegionOne" and entry["regions"] == ["RegionOne", "RegionTwo"]
    openrc = user_client.get(urls["openrc.sh"]).content.decode()
    assert "export OS_REGION_NAME=RegionOne" in openrc
    assert "# In RegionTwo too: openstack --os-region-name RegionTwo server list" in openrc
