"""Seed the devcloud through its APIs (openstacksdk). Idempotent. Run by devcloud/devcloud with the devcloud's venv.

    seed.py identity   service project, service users and roles, the catalog
    seed.py cloud      flavors, vGPU resource providers, images, the public network, volume type
    seed.py identity RegionTwo   the region RegionTwo and its endpoints (after `identity`)
    seed.py cloud RegionTwo      RegionTwo's flavors, vGPU providers, images, public network, volume type
    seed.py forget RegionTwo     remove RegionTwo's endpoints and the region (when it stops: `up --regions 1`)
"""

import os
import sys
import time
from pathlib import Path

import openstack

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import configs as C  # noqa: E402

P = C.PORTS
KEYSTONE = f"http://127.0.0.1:{P['keystone']}/v3"
CATALOG = [
    # (service name, type, public URL)
    ("nova", "compute", f"http://127.0.0.1:{P['nova-api']}/v2.1"),
    ("placement", "placement", f"http://127.0.0.1:{P['placement']}"),
    ("glance", "image", f"http://127.0.0.1:{P['glance']}"),
    ("cinderv3", "volumev3", f"http://127.0.0.1:{P['cinder-api']}/v3"),
    ("cinder", "block-storage", f"http://127.0.0.1:{P['cinder-api']}/v3"),
    ("neutron", "network", f"http://127.0.0.1:{P['neutron']}"),
    ("heat", "orchestration", f"http://127.0.0.1:{P['heat-api']}/v1/%(tenant_id)s"),
]
SERVICE_USERS = ["nova", "placement", "glance", "cinder", "neutron", "heat"]
P2 = {**P, **C.PORTS2}
# RegionTwo's public endpoints: its own services; Keystone (shared) is listed in it too, so that services and
# clients with region_name RegionTwo find the identity service. No Heat there.
CATALOG2 = [
    ("keystone", "identity", KEYSTONE),
    ("nova", "compute", f"http://127.0.0.1:{P2['nova-api']}/v2.1"),
    ("placement", "placement", f"http://127.0.0.1:{P2['placement']}"),
    ("glance", "image", f"http://127.0.0.1:{P2['glance']}"),
    ("cinderv3", "volumev3", f"http://127.0.0.1:{P2['cinder-api']}/v3"),
    ("cinder", "block-storage", f"http://127.0.0.1:{P2['cinder-api']}/v3"),
    ("neutron", "network", f"http://127.0.0.1:{P2['neutron']}"),
]
# Per region: the compute/volume host and the floating-IP network's first three octets
REGION_HOST = {C.REGION: C.HOST, C.REGION2: C.HOST2}
REGION_FLOATING = {C.REGION: "203.0.113", C.REGION2: C.FLOATING2}

# A100 40 GB vGPU profiles: (trait, fraction of a GPU, framebuffer GB, slices in the devcloud)
VGPU_TYPES = {
    "CUSTOM_NVIDIA_A100_8C": ("1/5", 8, 10),
    "CUSTOM_NVIDIA_A100_10C": ("1/4", 10, 10),
    "CUSTOM_NVIDIA_A100_20C": ("1/2", 20, 10),
    "CUSTOM_NVIDIA_A100_40C": ("1", 40, 10),
}
GB = 1024
# Jetstream2-like flavors: name -> (vCPUs, RAM MB, root disk GB, family, vGPU trait or None)
FLAVORS = {
    "m3.tiny": (1, 3 * GB, 20, "cpu", None),
    "m3.small": (2, 6 * GB, 20, "cpu", None),
    "m3.quad": (4, 15 * GB, 20, "cpu", None),
    "m3.medium": (8, 30 * GB, 60, "cpu", None),
    "m3.large": (16, 60 * GB, 60, "cpu", None),
    "m3.xl": (32, 125 * GB, 60, "cpu", None),
    "m3.2xl": (64, 250 * GB, 60, "cpu", None),
    "r3.large": (64, 500 * GB, 60, "large-memory", None),
    "r3.xl": (128, 1000 * GB, 60, "large-memory", None),
    "g3.small": (4, 15 * GB, 60, "gpu", "CUSTOM_NVIDIA_A100_8C"),
    "g3.medium": (8, 30 * GB, 60, "gpu", "CUSTOM_NVIDIA_A100_10C"),
    "g3.large": (16, 60 * GB, 60, "gpu", "CUSTOM_NVIDIA_A100_20C"),
    "g3.xl": (32, 125 * GB, 60, "gpu", "CUSTOM_NVIDIA_A100_40C"),
}
IMAGES = {
    "Featured-Ubuntu24": {"os_distro": "ubuntu", "os_version": "24.04", "min_disk": 20},
    "Featured-Rocky9": {"os_distro": "rocky", "os_version": "9", "min_disk": 20},
}


def say(msg):
    print(f"seed: {msg}", flush=True)


def admin(region=C.REGION):
    return openstack.connection.Connection(
        auth={"auth_url": KEYSTONE, "username": "admin", "password": C.ADMIN_PASSWORD, "project_name": "admin",
              "user_domain_name": "Default", "project_domain_name": "Default"},
        region_name=region, interface="public", identity_api_version="3")


def identity(conn):
    idn = conn.identity
    project = idn.find_project("service", domain_id="default") or idn.create_project(
        name="service", domain_id="default", description="OpenStack services")
    roles = {}
    for r in ("admin", "member", "reader", "service"):
        roles[r] = idn.find_role(r) or idn.create_role(name=r)
    for name in SERVICE_USERS:
        user = idn.find_user(name, domain_id="default") or idn.create_user(
            name=name, password=C.SERVICE_PASSWORD, domain_id="default", default_project_id=project.id)
        for r in ("admin", "service"):
            idn.assign_project_role_to_user(project, user, roles[r])
    catalog(idn, CATALOG, C.REGION)
    heat_stack_domain(idn, roles["admin"])
    say(f"identity: project service, users {', '.join(SERVICE_USERS)}, catalog of {len(CATALOG)} services, "
        f"Heat's stack domain")


def catalog(idn, entries, region):
    """The services (one per type, shared by the regions) and each one's public endpoint in `region`."""
    for name, type_, url in entries:
        svc = next((s for s in idn.services() if s.type == type_), None) or idn.create_service(
            name=name, type=type_, is_enabled=True)
        eps = [e for e in idn.endpoints(service_id=svc.id, region_id=region)
               if e.interface == "public" and e.region_id == region]
        if not eps:
            idn.create_endpoint(service_id=svc.id, interface="public", url=url, region_id=region)
        elif eps[0].url != url:
            idn.update_endpoint(eps[0], url=url)


def identity_region2(conn):
    idn = conn.identity
    if not any(r.id == C.REGION2 for r in idn.regions()):
        idn.create_region(id=C.REGION2, description="devcloud's second region (devcloud up --regions 2)")
    catalog(idn, CATALOG2, C.REGION2)
    say(f"identity: region {C.REGION2}, its endpoints: {', '.join(t for _, t, _ in CATALOG2)}")


def forget_region2(conn):
    """While RegionTwo does not run, the catalog is RegionOne's alone, as before there were two regions."""
    idn = conn.identity
    gone = [e for e in idn.endpoints(region_id=C.REGION2) if e.region_id == C.REGION2]
    for e in gone:
        idn.delete_endpoint(e, ignore_missing=True)
    if any(r.id == C.REGION2 for r in idn.regions()):
        idn.delete_region(C.REGION2, ignore_missing=True)
    say(f"identity: region {C.REGION2} and its {len(gone)} endpoints removed")


def heat_stack_domain(idn, admin_role):
    """Heat's domain for the users it makes for stacks, its admin, and the role those users get."""
    domain = idn.find_domain(C.HEAT_DOMAIN) or idn.create_domain(
        name=C.HEAT_DOMAIN, description="Users and projects Heat makes for stacks")
    user = idn.find_user(C.HEAT_DOMAIN_ADMIN, domain_id=domain.id) or idn.create_user(
        name=C.HEAT_DOMAIN_ADMIN, password=C.SERVICE_PASSWORD, domain_id=domain.id)
    idn.assign_domain_role_to_user(domain, user, admin_role)
    idn.find_role("heat_stack_user") or idn.create_role(name="heat_stack_user")


def placement_req(conn, method, url, **kw):
    r = conn.placement.request(url, method, microversion="1.39", raise_exc=False, **kw)
    if r.status_code >= 400 and r.status_code != 409:
        raise RuntimeError(f"placement {method} {url}: {r.status_code} {r.text[:300]}")
    return r


def wait_compute(conn, host, timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = placement_req(conn, "GET", f"/resource_providers?name={host}")
        rps = r.json()["resource_providers"]
        if rps:
            inv = placement_req(conn, "GET", f"/resource_providers/{rps[0]['uuid']}/inventories").json()
            if "VCPU" in inv["inventories"]:
                return rps[0]
        time.sleep(1)
    raise RuntimeError(f"no resource provider for compute host {host} in placement after {timeout}s")


def vgpu_providers(conn, host=C.HOST):
    root = wait_compute(conn, host)
    for trait, (_frac, _mem, slices) in VGPU_TYPES.items():
        placement_req(conn, "PUT", f"/traits/{trait}")
        name = f"{host}_vgpu_{trait.removeprefix('CUSTOM_').lower()}"
        found = placement_req(conn, "GET", f"/resource_providers?name={name}").json()["resource_providers"]
        if found:
            rp = found[0]
        else:
            rp = placement_req(conn, "POST", "/resource_providers",
                               json={"name": name, "parent_provider_uuid": root["uuid"]}).json()
        inv = placement_req(conn, "GET", f"/resource_providers/{rp['uuid']}/inventories").json()
        want = {"VGPU": {"total": slices, "max_unit": slices, "min_unit": 1, "step_size": 1, "reserved": 0,
                         "allocation_ratio": 1.0}}
        if inv["inventories"] != want:
            placement_req(conn, "PUT", f"/resource_providers/{rp['uuid']}/inventories",
                          json={"resource_provider_generation": inv["resource_provider_generation"],
                                "inventories": want})
        traits = placement_req(conn, "GET", f"/resource_providers/{rp['uuid']}/traits").json()
        if traits["traits"] != [trait]:
            placement_req(conn, "PUT", f"/resource_providers/{rp['uuid']}/traits",
                          json={"resource_provider_generation": traits["resource_provider_generation"],
                                "traits": [trait]})
    say(f"placement: {len(VGPU_TYPES)} vGPU child providers under {host} ({root['uuid']})")


def flavor_specs(family, trait):
    specs = {"portal:family": family}
    if trait:
        frac, mem, _ = VGPU_TYPES[trait]
        specs.update({
            "resources:VGPU": "1",
            f"trait:{trait}": "required",
            "portal:gpu_model": "NVIDIA A100 40GB",
            "portal:gpu_fraction": frac,
            "portal:gpu_memory_gb": str(mem),
            "portal:vgpu_type": trait.removeprefix("CUSTOM_"),
        })
    return specs


def flavors(conn):
    """m3 flavors are public; r3 (large memory) and g3 (GPU) are private, so only projects whose
    allocation kind allows them (the portal grants flavor access) can see or boot them."""
    existing = {f.name: f for f in conn.compute.flavors(is_public=None)}
    for name, (vcpus, ram, disk, family, trait) in FLAVORS.items():
        public = family == "cpu"
        f = existing.get(name)
        if f is not None and bool(f.is_public) != public:
            # Nova cannot change is_public: make the flavor again under the same id.
            conn.compute.delete_flavor(f)
            f = conn.compute.create_flavor(id=f.id, name=name, vcpus=vcpus, ram=ram, disk=disk, is_public=public,
                                           description=f"Jetstream2-like {family} flavor")
        if f is None:
            f = conn.compute.create_flavor(name=name, vcpus=vcpus, ram=ram, disk=disk, is_public=public,
                                           description=f"Jetstream2-like {family} flavor")
        specs = flavor_specs(family, trait)
        have = conn.compute.fetch_flavor_extra_specs(f).extra_specs or {}
        if any(have.get(k) != v for k, v in specs.items()):
            conn.compute.create_flavor_extra_specs(f, {k: v for k, v in specs.items() if have.get(k) != v})
    say(f"flavors: {', '.join(FLAVORS)}")


def images(conn):
    for name, props in IMAGES.items():
        found = conn.image.find_image(name)
        if found is not None and found.status == "active":
            continue
        if found is not None:  # an upload that did not finish: start over
            conn.image.delete_image(found)
        # A small raw disk made here: a recognisable header, then zeros (no downloads).
        data = (f"devcloud image {name}\n".encode() + b"\0" * (1024 * 1024))
        img = conn.image.create_image(name=name, disk_format="raw", container_format="bare", visibility="public",
                                      min_disk=props["min_disk"], os_distro=props["os_distro"],
                                      os_version=props["os_version"], os_type="linux",
                                      allow_duplicates=True)
        conn.image.put(f"/images/{img.id}/file", data=data, headers={"Content-Type": "application/octet-stream"})
        deadline = time.monotonic() + 60
        while conn.image.get_image(img.id).status != "active":
            if time.monotonic() > deadline:
                raise RuntimeError(f"image {name} not active after 60s")
            time.sleep(0.3)
    say(f"images: {', '.join(IMAGES)}")


def network(conn, prefix="203.0.113"):
    net = conn.network.find_network("public")
    if net is None:
        net = conn.network.create_network(name="public", is_router_external=True, is_shared=False,
                                          provider_network_type="flat", provider_physical_network="public",
                                          description="External network for floating IPs")
    if not list(conn.network.subnets(network_id=net.id)):
        conn.network.create_subnet(name="public-subnet", network_id=net.id, ip_version=4,
                                   cidr=f"{prefix}.0/24", gateway_ip=f"{prefix}.1", is_dhcp_enabled=False,
                                   allocation_pools=[{"start": f"{prefix}.10", "end": f"{prefix}.250"}])
    say(f"network: public (router:external, {prefix}.0/24)")


def volume_type(conn):
    vt = next((t for t in conn.block_storage.types() if t.name == "default"), None)
    if vt is None:
        vt = conn.block_storage.create_type(name="default", description="devcloud fake backend",
                                            extra_specs={"volume_backend_name": "fake"})
    say("volume type: default (backend fake)")


def portal_identity(conn):
    """The portal's service identity: a user with the member role on its own project and nowhere
    else (the portal's provisioning gives it member on each allocation's project; never admin)."""
    idn = conn.identity
    project = idn.find_project(C.PORTAL_PROJECT, domain_id="default") or idn.create_project(
        name=C.PORTAL_PROJECT, domain_id="default", description="The research cloud portal's own project")
    user = idn.find_user(C.PORTAL_USER, domain_id="default")
    if user is None:
        user = idn.create_user(name=C.PORTAL_USER, password=C.PORTAL_PASSWORD, domain_id="default",
                               default_project_id=project.id, description="Research cloud portal (service)")
    idn.assign_project_role_to_user(project, user, idn.find_role("member"))
    say(f"portal identity: user {C.PORTAL_USER}, member of project {C.PORTAL_PROJECT} only")


def wait_services(conn, timeout=120):
    """nova-conductor/scheduler/compute and cinder-scheduler/volume report up."""
    deadline = time.monotonic() + timeout
    want_nova = {"nova-conductor", "nova-scheduler", "nova-compute"}
    want_cinder = {"cinder-scheduler", "cinder-volume"}
    while True:
        up = {s.binary for s in conn.compute.services() if s.state == "up" and s.status == "enabled"}
        up |= {s.binary for s in conn.block_storage.services() if s.state == "up"}
        missing = (want_nova | want_cinder) - up
        if not missing:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"services not up after {timeout}s: {', '.join(sorted(missing))}")
        time.sleep(1)


def main():
    phase = sys.argv[1]
    region = sys.argv[2] if len(sys.argv) > 2 else C.REGION
    if region not in REGION_HOST:
        raise SystemExit(f"unknown region {region}")
    # Keystone is reached through RegionOne's catalog: RegionTwo's has no identity endpoint before `identity`.
    conn = admin(C.REGION if phase in ("identity", "forget") else region)
    say(f"region {region}")
    if phase == "identity" and region == C.REGION:
        identity(conn)
    elif phase == "identity":
        identity_region2(conn)
    elif phase == "forget" and region == C.REGION2:
        forget_region2(conn)
    elif phase == "cloud":
        flavors(conn)
        if region == C.REGION:
            portal_identity(conn)  # Keystone's: shared by the regions
        network(conn, REGION_FLOATING[region])
        volume_type(conn)
        images(conn)
        vgpu_providers(conn, REGION_HOST[region])
        wait_services(conn)
    else:
        raise SystemExit(f"unknown phase {phase}")


if __name__ == "__main__":
    os.environ.pop("OS_CLOUD", None)
    main()
