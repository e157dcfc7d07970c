"""Connections made for a person reach the endpoints the service cloud names in clouds.yaml
(e.g. a proxy in front of Nova), not only those of the catalog. No cloud is reached."""
import pytest
import yaml

from portal.cloud.connection import Identity, Scope, _cloud_settings, _connection_build

OVERRIDES = {
    "compute_endpoint_override": "http://127.0.0.1:41001/v2.1",
    "network_endpoint_override": "http://127.0.0.1:41002",
    "block_storage_endpoint_override": "http://127.0.0.1:41003/v3",
    "image_endpoint_override": "http://127.0.0.1:41004/v2",
    "image_api_version": "2",
}
AUTH = {"auth_url": "http://127.0.0.1:15000/v3", "username": "svc", "password": "x", "project_name": "portal",
        "user_domain_name": "Default", "project_domain_name": "Default"}


@pytest.fixture
def clouds_yaml(tmp_path, settings):
    path = tmp_path / "clouds.yaml"
    path.write_text(yaml.safe_dump({"clouds": {
        "proxied": {"auth": AUTH, "region_name": "RegionOne", "interface": "public", "identity_api_version": 3,
                    **OVERRIDES},
        "plain": {"auth": AUTH, "region_name": "RegionOne"},
    }}))
    settings.OS_CLIENT_CONFIG_FILE = str(path)
    return path


def person_scope() -> Scope:
    return Scope(identity=Identity(key="user:u1", username="alice", password="pw"), project_id="p1")


def test_the_service_clouds_endpoint_overrides_are_read_without_credentials(clouds_yaml):
    cloud = _cloud_settings("proxied")
    assert OVERRIDES.items() <= cloud["endpoint_overrides"].items()  # (and the SDK's default API versions)
    assert cloud["auth_url"] == AUTH["auth_url"] and "password" not in str(cloud)


def test_a_persons_connection_uses_the_service_clouds_endpoint_overrides_and_the_timeout(clouds_yaml, settings):
    settings.PORTAL_SERVICE_CLOUD = "proxied"
    conn = _connection_build(person_scope(), timeout=7)
    assert conn.config.get_endpoint("compute") == OVERRIDES["compute_endpoint_override"]
    assert conn.config.get_endpoint("network") == OVERRIDES["network_endpoint_override"]
    assert conn.config.get_endpoint("block-storage") == OVERRIDES["block_storage_endpoint_override"]
    assert conn.config.get_endpoint("image") == OVERRIDES["image_endpoint_override"]
    assert conn.config.get_api_version("image") == "2"
    assert conn.config.config["api_timeout"] == 7
    # still the person, in their project, signing in at Keystone itself
    assert conn.config.auth["username"] == "alice" and conn.config.auth["project_id"] == "p1"
    assert conn.config.auth["auth_url"] == AUTH["auth_url"]


def test_without_overrides_the_catalog_decides(clouds_yaml, settings):
    settings.PORTAL_SERVICE_CLOUD = "plain"
    conn = _connection_build(person_scope(), timeout=30)
    assert not any(k.endswith("_endpoint_override") for k in _cloud_settings("plain")["endpoint_overrides"])
    assert conn.config.get_endpoint("compute") is None


class _Session:
    """A keystoneauth session's `request`, failing as told: each item is raised or returned."""

    def __init__(self, *outcomes):
        self.outcomes, self.sent = list(outcomes), []

    def request(self, url, method, **kwargs):
        self.sent.append(method)
        outcome = self.outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome


class _Response:
    def __init__(self, status_code):
        self.status_code = status_code


def test_a_dropped_or_503_read_is_sent_again_but_a_write_never_is():
    from keystoneauth1 import exceptions as ksa_exc

    from portal.cloud.connection import retry_reads

    reads = _Session(ksa_exc.ConnectFailure("reset"), _Response(503), _Response(200))
    retry_reads(reads)
    assert reads.request("http://nova/servers", "GET").status_code == 200 and reads.sent == ["GET"] * 3

    gives_up = _Session(*[ksa_exc.ConnectFailure("reset")] * 3)
    retry_reads(gives_up)
    with pytest.raises(ksa_exc.ConnectFailure):
        gives_up.request("http://nova/servers", "GET")

    writes = _Session(ksa_exc.ConnectFailure("reset after the cloud made it"))
    retry_reads(writes)
    with pytest.raises(ksa_exc.ConnectFailure):
        writes.request("http://nova/servers", "POST", json={})
    assert writes.sent == ["POST"]  # a lost create is looked up by the services, never blindly repeated
