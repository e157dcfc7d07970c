"""Fixtures for tests against the real local cloud (devcloud/). No Django needed.

    devcloud    (session) brings the devcloud up once (`devcloud/devcloud up`, a quick no-op when it
                already runs) and returns a DevcloudHandle: .clouds_yaml, .cloud, .conn (admin), ...
    os_project  (function) a fresh Keystone project and user (member role); yields an
                openstack.connection.Connection as that user, scoped to that project; afterwards
                deletes what was made in the project, then the user and the project.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
import uuid
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import openstack
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DEVCLOUD_CMD = ROOT / "devcloud" / "devcloud"
VAR = ROOT / "var" / "devcloud"
CLOUD_NAME = "devcloud-admin"


def _run_devcloud(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
    return subprocess.run([str(DEVCLOUD_CMD), *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout)


def connect(auth_url: str, username: str, password: str, project_id: str | None = None,
            project_name: str | None = None, region: str = "RegionOne") -> openstack.connection.Connection:
    """A Connection built from explicit credentials: no clouds.yaml, no OS_* variables."""
    auth = {"auth_url": auth_url, "username": username, "password": password, "user_domain_name": "Default"}
    if project_id:
        auth["project_id"] = project_id
    else:
        auth.update(project_name=project_name, project_domain_name="Default")
    return openstack.connection.Connection(auth=auth, region_name=region, interface="public",
                                           identity_api_version="3")


@dataclass
class DevcloudHandle:
    """What the `devcloud` fixture returns."""

    clouds_yaml: Path  # var/devcloud/clouds.yaml of this checkout
    cloud: str  # "devcloud-admin", the cloud's name in clouds_yaml
    auth_url: str  # Keystone v3 public endpoint, http://127.0.0.1:15000/v3
    region: str  # "RegionOne"
    conn: openstack.connection.Connection  # admin user, admin project
    up_output: str = ""  # what `devcloud/devcloud up` printed
    command: Path = DEVCLOUD_CMD
    admin_auth: dict = field(default_factory=dict, repr=False)

    def connect(self, username: str, password: str, project_id: str) -> openstack.connection.Connection:
        """A Connection as another user, scoped to a project."""
        return connect(self.auth_url, username, password, project_id=project_id, region=self.region)

    def run(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
        """Run devcloud/devcloud with arguments (e.g. "down", "up", "status")."""
        return _run_devcloud(*args, timeout=timeout)

    def reconnect(self) -> None:
        """A fresh admin Connection (after a restart of the cloud)."""
        self.conn = connect(**self.admin_auth)


@pytest.fixture(scope="session")
def devcloud() -> DevcloudHandle:
    try:
        r = _run_devcloud("up")
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"devcloud/devcloud up timed out after {e.timeout}s:\n{e.stdout or ''}", pytrace=False)
    if r.returncode != 0:
        pytest.fail(f"devcloud/devcloud up failed (exit {r.returncode}):\n{r.stdout}\n{r.stderr}", pytrace=False)
    clouds_yaml = VAR / "clouds.yaml"
    cfg = yaml.safe_load(clouds_yaml.read_text())["clouds"][CLOUD_NAME]
    a = cfg["auth"]
    admin_auth = {"auth_url": a["auth_url"], "username": a["username"], "password": a["password"],
                  "project_name": a["project_name"], "region": cfg["region_name"]}
    return DevcloudHandle(clouds_yaml=clouds_yaml, cloud=CLOUD_NAME, auth_url=a["auth_url"],
                          region=cfg["region_name"], conn=connect(**admin_auth), up_output=r.stdout,
                          admin_auth=admin_auth)


def _wait_gone(fetch, timeout=60.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if fetch() is None:
                return True
        except openstack.exceptions.NotFoundException:
            return True
        time.sleep(0.5)
    return False


def cleanup_project(admin: openstack.connection.Connection, project_id: str,
                    user_conn: openstack.connection.Connection | None = None) -> list[str]:
    """Delete servers, floating IPs, routers, ports, networks, security groups, volume snapshots,
    volumes, images (and the user's keypairs) of a project. Returns what could not be deleted."""
    problems: list[str] = []

    def attempt(what, fn):
        try:
            fn()
        except openstack.exceptions.NotFoundException:
            pass
        except Exception as e:  # noqa: BLE001 - keep cleaning, report at the end
            problems.append(f"{what}: {type(e).__name__}: {e}")

    net, compute, bs = admin.network, admin.compute, admin.block_storage
    servers = list(compute.servers(all_projects=True, project_id=project_id))
    for s in servers:
        attempt(f"server {s.id}", lambda s=s: compute.delete_server(s, force=False))
    for s in servers:
        if not _wait_gone(lambda s=s: compute.find_server(s.id, ignore_missing=True, all_projects=True)):
            problems.append(f"server {s.id} not deleted")
    for ip in net.ips(project_id=project_id):
        attempt(f"floating IP {ip.floating_ip_address}", lambda ip=ip: net.delete_ip(ip))
    for router in net.routers(project_id=project_id):
        for port in net.ports(device_id=router.id, device_owner="network:router_interface"):
            attempt(f"router interface {port.id}",
                    lambda router=router, port=port: net.remove_interface_from_router(router, port_id=port.id))
        attempt(f"router {router.id}", lambda router=router: net.delete_router(router))
    for port in net.ports(project_id=project_id):
        if port.device_owner not in ("network:dhcp",):
            attempt(f"port {port.id}", lambda port=port: net.delete_port(port))
    for network in net.networks(project_id=project_id):
        attempt(f"network {network.id}", lambda network=network: net.delete_network(network))
    for sg in net.security_groups(project_id=project_id):
        attempt(f"security group {sg.id}", lambda sg=sg: net.delete_security_group(sg))
    for snap in bs.snapshots(all_projects=True, project_id=project_id):
        attempt(f"volume snapshot {snap.id}", lambda snap=snap: bs.delete_snapshot(snap, force=True))
    for snap in bs.snapshots(all_projects=True, project_id=project_id):
        _wait_gone(lambda snap=snap: bs.find_snapshot(snap.id, ignore_missing=True, all_projects=True), 30)
    for v in bs.volumes(all_projects=True, project_id=project_id):
        def delete_volume(v=v):
            deadline = time.monotonic() + 60
            while (cur := bs.get_volume(v)).status not in ("available", "error", "error_deleting") \
                    and time.monotonic() < deadline:
                time.sleep(0.5)
            if cur.status != "available":
                bs.reset_volume_status(cur, status="available", attach_status="detached", migration_status=None)
            bs.delete_volume(cur, force=cur.status != "available")
        attempt(f"volume {v.id}", delete_volume)
    for image in admin.image.images(owner=project_id):
        attempt(f"image {image.id}", lambda image=image: admin.image.delete_image(image))
    if user_conn is not None:
        for kp in user_conn.compute.keypairs():
            attempt(f"keypair {kp.name}", lambda kp=kp: user_conn.compute.delete_keypair(kp))
    return problems


@pytest.fixture
def os_project(devcloud: DevcloudHandle):
    """A Connection as a fresh member user of a fresh project; everything in it is deleted afterwards.

    The Connection's .current_project_id and .current_user_id name the project and user.
    """
    admin = devcloud.conn
    name = f"test-{uuid.uuid4().hex[:12]}"
    password = uuid.uuid4().hex
    project = admin.identity.create_project(name=name, domain_id="default", description="pytest os_project")
    user = None
    conn = None
    try:
        user = admin.identity.create_user(name=name, password=password, domain_id="default",
                                          default_project_id=project.id)
        admin.identity.assign_project_role_to_user(project, user, admin.identity.find_role("member"))
        conn = devcloud.connect(name, password, project.id)
        yield conn
    finally:
        problems = cleanup_project(admin, project.id, user_conn=conn)
        if user is not None:
            admin.identity.delete_user(user, ignore_missing=True)
        admin.identity.delete_project(project, ignore_missing=True)
        if problems:
            warnings.warn(f"os_project {name}: left behind: {'; '.join(problems)}", stacklevel=1)


# RegionTwo (devcloud `up --regions 2`): tests/integration/test_devcloud.py and test_regions.py.
REGION2 = "RegionTwo"
REGION2_NOVA_PORT = 28774  # devcloud/configs.py PORTS2


def _listening(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture(scope="module")
def region_two(devcloud):
    """RegionTwo beside RegionOne (`devcloud/devcloud up --regions 2`: ~20 s from saved state, ~40 s the first
    time); yields an admin Connection in RegionTwo. If RegionTwo was not running before, it is stopped again
    afterwards (`up --regions 1`, ~10 s): the rest of the suite gets the cloud as it was, one region by default."""
    was_running = _listening(REGION2_NOVA_PORT)
    r = devcloud.run("up", "--regions", "2", timeout=600)
    if r.returncode != 0:
        pytest.fail(f"devcloud/devcloud up --regions 2 failed (exit {r.returncode}):\n{r.stdout}\n{r.stderr}",
                    pytrace=False)
    yield connect(**{**devcloud.admin_auth, "region": REGION2})
    if not was_running:
        r = devcloud.run("up", "--regions", "1", timeout=300)
        assert r.returncode == 0, r.stdout + r.stderr
