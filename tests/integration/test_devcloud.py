"""The devcloud is a real OpenStack: checked through openstacksdk, as the portal will use it."""

import os
import time
import uuid
import warnings

import openstack
import openstack.config
import pytest

from tests.integration.conftest import REGION2, cleanup_project

pytestmark = pytest.mark.integration


VGPU_FLAVORS = {
    "g3.small": ("CUSTOM_NVIDIA_A100_8C", "1/5", "8"),
    "g3.medium": ("CUSTOM_NVIDIA_A100_10C", "1/4", "10"),
    "g3.large": ("CUSTOM_NVIDIA_A100_20C", "1/2", "20"),
    "g3.xl": ("CUSTOM_NVIDIA_A100_40C", "1", "40"),
}
CPU_FLAVORS = {  # name: (vCPUs, RAM GB)
    "m3.tiny": (1, 3), "m3.small": (2, 6), "m3.quad": (4, 15), "m3.medium": (8, 30), "m3.large": (16, 60),
    "m3.xl": (32, 125), "m3.2xl": (64, 250), "r3.large": (64, 500), "r3.xl": (128, 1000),
}


def wait_for(fetch, done, timeout=90.0, what="resource"):
    deadline = time.monotonic() + timeout
    while True:
        obj = fetch()
        if done(obj):
            return obj
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not ready after {timeout}s: {obj}")
        time.sleep(0.5)


def wait_server(conn, server, timeout=90.0):
    return wait_for(lambda: conn.compute.get_server(server.id), lambda s: s.status in ("ACTIVE", "ERROR"),
                    timeout, f"server {server.id}")


def image_id(conn, name="Featured-Ubuntu24"):
    img = conn.image.find_image(name)
    assert img is not None, f"image {name} not seeded"
    return img.id


def test_seeded_flavors_carry_vgpu_extra_specs(os_project, devcloud):
    # a plain project sees the public m3 flavors only; g3 (GPU) and r3 (large memory) are private,
    # opened per project by the portal for allocation kinds that may use them
    visible = {f.name: f for f in os_project.compute.flavors()}
    assert not any(name.startswith(("g3.", "r3.")) for name in visible)
    flavors = {f.name: f for f in devcloud.conn.compute.flavors(is_public=None)}
    for name, (vcpus, ram_gb) in CPU_FLAVORS.items():
        assert flavors[name].vcpus == vcpus and flavors[name].ram == ram_gb * 1024, name
        assert flavors[name].is_public is name.startswith("m3."), name
    for name, (trait, fraction, mem_gb) in VGPU_FLAVORS.items():
        assert flavors[name].is_public is False, name
        specs = devcloud.conn.compute.fetch_flavor_extra_specs(flavors[name]).extra_specs
        assert specs["resources:VGPU"] == "1", name
        assert specs[f"trait:{trait}"] == "required", name
        assert specs["portal:gpu_fraction"] == fraction and specs["portal:gpu_memory_gb"] == mem_gb, name
        assert specs["portal:family"] == "gpu", name
    images = {i.name: i for i in os_project.image.images()}
    assert images["Featured-Rocky9"].os_distro == "rocky" and images["Featured-Rocky9"].os_version == "9"
    assert images["Featured-Ubuntu24"].min_disk == 20


def test_server_on_private_network_with_floating_ip_and_volume(os_project, devcloud):
    conn = os_project
    public = conn.network.find_network("public")
    assert public is not None and public.is_router_external
    net = conn.network.create_network(name="private")
    subnet = conn.network.create_subnet(network_id=net.id, ip_version=4, cidr="10.10.0.0/24", name="private")
    router = conn.network.create_router(name="router", external_gateway_info={"network_id": public.id})
    conn.network.add_interface_to_router(router, subnet_id=subnet.id)

    flavor = conn.compute.find_flavor("m3.tiny")
    server = conn.compute.create_server(name="vm1", flavor_id=flavor.id, image_id=image_id(conn),
                                        networks=[{"uuid": net.id}])
    server = wait_server(conn, server)
    assert server.status == "ACTIVE", server.fault

    port = next(conn.network.ports(device_id=server.id))
    assert port.status == "ACTIVE"
    assert devcloud.conn.network.get_port(port.id).binding_vif_type == "ovs"  # bound by devcloud's ML2 driver
    fip = conn.network.create_ip(floating_network_id=public.id, port_id=port.id)
    assert fip.floating_ip_address.startswith("203.0.113.")
    assert conn.network.get_ip(fip.id).fixed_ip_address == port.fixed_ips[0]["ip_address"]

    volume = conn.block_storage.create_volume(size=1, name="data")
    volume = wait_for(lambda: conn.block_storage.get_volume(volume.id),
                      lambda v: v.status in ("available", "error"), 60, "volume")
    assert volume.status == "available"
    conn.compute.create_volume_attachment(server, volume_id=volume.id)
    volume = wait_for(lambda: conn.block_storage.get_volume(volume.id),
                      lambda v: v.status in ("in-use", "error"), 60, "volume attachment")
    assert volume.status == "in-use" and volume.attachments[0]["server_id"] == server.id

    # delete everything (the fixture would too; this checks that deletion works)
    conn.compute.delete_volume_attachment(server, volume.id)
    wait_for(lambda: conn.block_storage.get_volume(volume.id), lambda v: v.status == "available", 60, "detach")
    conn.block_storage.delete_volume(volume)
    conn.network.delete_ip(fip)
    conn.compute.delete_server(server)
    conn.compute.wait_for_delete(server, wait=60)
    conn.network.remove_interface_from_router(router, subnet_id=subnet.id)
    conn.network.delete_router(router)
    conn.network.delete_network(net)
    assert conn.compute.find_server(server.id) is None


def test_gpu_flavor_holds_a_vgpu_allocation_in_placement(os_project, devcloud):
    conn = os_project
    g3 = devcloud.conn.compute.find_flavor("g3.small", is_public=None, ignore_missing=False)
    devcloud.conn.compute.flavor_add_tenant_access(g3, conn.current_project_id)  # as the portal does for GPU
    server = conn.compute.create_server(name="gpu1", flavor_id=conn.compute.find_flavor("g3.small").id,
                                        image_id=image_id(conn), networks="none")
    server = wait_server(conn, server)
    assert server.status == "ACTIVE", server.fault

    placement = devcloud.conn.placement
    allocations = placement.get(f"/allocations/{server.id}", microversion="1.39").json()["allocations"]
    vgpu_rps = [rp for rp, a in allocations.items() if a["resources"].get("VGPU") == 1]
    assert len(vgpu_rps) == 1, allocations
    traits = placement.get(f"/resource_providers/{vgpu_rps[0]}/traits", microversion="1.39").json()["traits"]
    assert "CUSTOM_NVIDIA_A100_8C" in traits
    conn.compute.delete_server(server)
    conn.compute.wait_for_delete(server, wait=60)
    # nova-compute removes the allocation after the server is gone from the API: on a busy cloud, a while after
    wait_for(lambda: placement.get(f"/allocations/{server.id}", microversion="1.39").json()["allocations"],
             lambda allocations: allocations == {}, 60, f"server {server.id}'s Placement allocation to go")


def test_more_vgpus_than_exist_is_no_valid_host(os_project, devcloud):
    admin = devcloud.conn
    flavor = admin.compute.create_flavor(name=f"test-vgpu50-{uuid.uuid4().hex[:8]}", vcpus=1, ram=1024, disk=20,
                                         is_public=False)
    try:
        admin.compute.create_flavor_extra_specs(flavor, {"resources:VGPU": "50"})
        admin.compute.flavor_add_tenant_access(flavor, os_project.current_project_id)
        server = os_project.compute.create_server(name="too-big", flavor_id=flavor.id,
                                                  image_id=image_id(os_project), networks="none")
        server = wait_server(os_project, server)
        assert server.status == "ERROR"
        assert "No valid host" in (server.fault or {}).get("message", ""), server.fault
    finally:
        admin.compute.delete_flavor(flavor, ignore_missing=True)


@pytest.fixture
def os_project_r2(os_project, region_two):
    """The os_project member's Connection in RegionTwo (same Keystone token); what it made there is deleted
    afterwards (os_project's own cleanup looks in RegionOne only)."""
    conn = openstack.connection.Connection(session=os_project.session, region_name=REGION2, interface="public",
                                           identity_api_version="3")
    yield conn
    problems = cleanup_project(region_two, os_project.current_project_id)
    if problems:
        warnings.warn(f"{REGION2}: left behind: {'; '.join(problems)}", stacklevel=1)


def test_region_two_is_a_cloud_of_its_own(os_project, os_project_r2, region_two, devcloud):
    """`up --regions 2`: RegionTwo, in the same Keystone, with its own Nova, Neutron, Cinder, Glance and
    Placement, seeded like RegionOne; what a project makes there is not seen in RegionOne."""
    r1, r2, admin2 = os_project, os_project_r2, region_two
    # Keystone's catalog has both regions: each service its own endpoint in each, Keystone the same one in both
    types = {s.id: s.type for s in devcloud.conn.identity.services()}
    urls = {}
    for e in devcloud.conn.identity.endpoints(interface="public"):
        urls.setdefault(types[e.service_id], {})[e.region_id] = e.url
    for service_type in ("compute", "network", "volumev3", "block-storage", "image", "placement"):
        assert set(urls[service_type]) == {"RegionOne", REGION2}, (service_type, urls[service_type])
        assert urls[service_type]["RegionOne"] != urls[service_type][REGION2], service_type
    assert urls["identity"]["RegionOne"] == urls["identity"][REGION2]
    assert "orchestration" not in urls or set(urls["orchestration"]) == {"RegionOne"}
    assert r2.compute.get_endpoint().rstrip("/") == urls["compute"][REGION2]

    # clouds.yaml: RegionOne unless a region is named; RegionTwo when it is
    config = openstack.config.OpenStackConfig(config_files=[str(devcloud.clouds_yaml)], load_envvars=False)
    assert config.get_one(cloud=devcloud.cloud).region_name == "RegionOne"
    by_name = openstack.connection.Connection(config=config.get_one(cloud=devcloud.cloud, region_name=REGION2))
    assert by_name.compute.get_endpoint().rstrip("/") == urls["compute"][REGION2]

    # seeded through its own APIs: the public external network (its own floating-IP range), flavors, images
    public = r2.network.find_network("public")
    assert public is not None and public.is_router_external
    assert public.id != r1.network.find_network("public").id
    assert [s.cidr for s in admin2.network.subnets(network_id=public.id)] == ["198.51.100.0/24"]
    flavors = {f.name: f for f in admin2.compute.flavors(is_public=None)}
    for name, (vcpus, ram_gb) in CPU_FLAVORS.items():
        assert flavors[name].vcpus == vcpus and flavors[name].ram == ram_gb * 1024, name
    assert set(VGPU_FLAVORS) <= set(flavors)
    assert {f.name for f in r2.compute.flavors()} >= {n for n in CPU_FLAVORS if n.startswith("m3.")}
    assert {"Featured-Ubuntu24", "Featured-Rocky9"} <= {i.name for i in r2.image.images()}

    # a member's server on a network made in RegionTwo goes ACTIVE on RegionTwo's compute host
    net = r2.network.create_network(name="r2-private")
    r2.network.create_subnet(network_id=net.id, ip_version=4, cidr="10.30.0.0/24")
    server = r2.compute.create_server(name="r2-vm", flavor_id=r2.compute.find_flavor("m3.tiny").id,
                                      image_id=image_id(r2), networks=[{"uuid": net.id}])
    server = wait_server(r2, server)
    assert server.status == "ACTIVE", server.fault
    assert admin2.compute.get_server(server.id).compute_host == "devcloud-r2"
    volume = r2.block_storage.create_volume(size=1, name="r2-data")
    assert wait_for(lambda: r2.block_storage.get_volume(volume.id), lambda v: v.status in ("available", "error"),
                    60, "volume").status == "available"

    # listed in RegionTwo, and not in RegionOne
    assert server.id in {s.id for s in r2.compute.servers()}
    assert server.id not in {s.id for s in r1.compute.servers()}
    assert r1.compute.find_server(server.id) is None
    assert net.id not in {n.id for n in r1.network.networks()}
    assert volume.id not in {v.id for v in r1.block_storage.volumes()}


@pytest.mark.skipif(os.environ.get("DEVCLOUD_RESTART_TEST") != "1",
                    reason="restarts the whole cloud (slow); set DEVCLOUD_RESTART_TEST=1")
def test_down_and_up_keeps_state(os_project, devcloud):
    """Last in this module on purpose: the cloud is restarted, then used again."""
    conn = os_project
    net = conn.network.create_network(name="survivor")
    conn.network.create_subnet(network_id=net.id, ip_version=4, cidr="10.20.0.0/24")
    server = conn.compute.create_server(name="survivor", flavor_id=conn.compute.find_flavor("m3.small").id,
                                        image_id=image_id(conn), networks=[{"uuid": net.id}])
    assert wait_server(conn, server).status == "ACTIVE"

    assert devcloud.run("down", timeout=120).returncode == 0
    t = time.monotonic()
    r = devcloud.run("up", timeout=300)
    took = time.monotonic() - t
    assert r.returncode == 0, r.stdout + r.stderr
    assert took < 60, f"up from saved state took {took:.0f}s"
    devcloud.reconnect()

    assert conn.network.get_network(net.id).name == "survivor"
    assert conn.compute.get_server(server.id).status == "ACTIVE"
    again = conn.compute.create_server(name="after-restart", flavor_id=conn.compute.find_flavor("m3.tiny").id,
                                       image_id=image_id(conn), networks=[{"uuid": net.id}])
    assert wait_server(conn, again).status == "ACTIVE"


HEAT_TEMPLATE = """
heat_template_version: "2021-04-16"
description: A server on a private network of its own, with a data volume attached.
parameters:
  image: {type: string}
  flavor: {type: string, default: m3.tiny, constraints: [{allowed_values: [m3.tiny, m3.small]}]}
resources:
  net: {type: OS::Neutron::Net}
  subnet:
    type: OS::Neutron::Subnet
    properties: {network: {get_resource: net}, cidr: 10.20.0.0/24}
  server:
    type: OS::Nova::Server
    depends_on: subnet
    properties:
      image: {get_param: image}
      flavor: {get_param: flavor}
      networks: [{network: {get_resource: net}}]
  data: {type: OS::Cinder::Volume, properties: {size: 1}}
  attached:
    type: OS::Cinder::VolumeAttachment
    properties: {instance_uuid: {get_resource: server}, volume_id: {get_resource: data}}
outputs:
  server_id: {value: {get_resource: server}}
"""


def test_a_member_builds_and_deletes_a_heat_stack(os_project, devcloud):
    """Heat runs in the devcloud (heat-api, heat-engine, its stack domain): a project member's stack
    of a network, a server and an attached volume goes CREATE_COMPLETE, and its delete leaves nothing."""
    import yaml

    conn = os_project
    template = yaml.safe_load(HEAT_TEMPLATE)
    # a parameter value outside its constraint is refused before anything is made
    with pytest.raises(Exception, match="is not an allowed value"):
        conn.orchestration.create_stack(name="refused", template=template,
                                        parameters={"image": "Featured-Ubuntu24", "flavor": "m3.2xl"})
    assert not list(conn.orchestration.stacks())
    stack = conn.orchestration.create_stack(name="stack1", template=template,
                                            parameters={"image": "Featured-Ubuntu24"}, timeout_mins=5)
    stack = wait_for(lambda: conn.orchestration.get_stack(stack.id),
                     lambda s: s.status in ("CREATE_COMPLETE", "CREATE_FAILED"), 180, "stack")
    assert stack.status == "CREATE_COMPLETE", stack.status_reason
    server_id = next(o["output_value"] for o in stack.outputs if o["output_key"] == "server_id")
    server = conn.compute.get_server(server_id)
    assert server.status == "ACTIVE" and len(server.attached_volumes) == 1
    conn.orchestration.delete_stack(stack)
    wait_for(lambda: conn.orchestration.find_stack(stack.id),
             lambda s: s is None or s.status in ("DELETE_COMPLETE", "DELETE_FAILED"), 180, "stack delete")
    assert conn.compute.find_server(server_id) is None
    assert not list(conn.block_storage.volumes()) and not [n for n in conn.network.networks()
                                                            if n.project_id == conn.current_project_id]
