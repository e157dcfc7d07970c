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
from tests.factories import UserFactory

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
    return minted


def create(client, allocation):
    return client.post(reverse("allocations:credentials"), {
        "allocation": allocation.pk, "name": "laptop", "expires_in_days": "30"})


def links(body: str) -> dict[str, str]:
    return {name: url for url, name in re.findall(r'href="(/credentials/download/[^"]+/)" download="([^"]+)"', body)}


def test_the_create_response_shows_the_secret_once_with_two_one_time_links(user_client, allocation, cloud):
    response = create(user_client, allocation)
    body = response.content.decode()
    assert response["Cache-Control"] == "no-store"
    assert 'data-testid="credential-secret"' in body and "s3cret-" in body and "data-copy-target" in body
    assert set(links(body)) == {"clouds.yaml", "openrc.sh"}

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
