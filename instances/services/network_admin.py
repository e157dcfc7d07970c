"""Security groups and floating IPs made by hand from their pages (short calls, no task)."""
from __future__ import annotations

from portal.cloud import network
from portal.cloud.errors import NotFound


def security_group_create(*, allocation, name: str, description: str = "", allow_ssh: bool = True,
                          allow_icmp: bool = True) -> network.SecurityGroup:
    project_id = allocation.openstack_project_id
    group = network.security_group_create(project_id=project_id, name=name, description=description)
    if allow_ssh:
        network.security_group_rule_create(project_id=project_id, group_id=group.id, protocol="tcp", port=22)
    if allow_icmp:
        network.security_group_rule_create(project_id=project_id, group_id=group.id, protocol="icmp")
    return group


def security_group_delete(*, allocation, group_id: str) -> None:
    # The portal is admin in the project, and Neutron's admin reaches every project: check ownership.
    project_id = allocation.openstack_project_id
    if not any(g.id == group_id for g in network.security_group_list(project_id=project_id)):
        raise NotFound("That security group is not in this project.")
    network.security_group_delete(project_id=project_id, group_id=group_id)


def floating_ip_allocate(*, allocation) -> network.FloatingIP:
    from portal.cloud.errors import CloudError

    project_id = allocation.openstack_project_id
    external = next((n for n in network.network_list(project_id=project_id) if n.is_external), None)
    if external is None:
        raise CloudError("The cloud has no public network to take a public IP from.")
    return network.floating_ip_create(project_id=project_id, external_network_id=external.id)


def floating_ip_release(*, allocation, floating_ip_id: str) -> None:
    project_id = allocation.openstack_project_id
    if not any(f.id == floating_ip_id for f in network.floating_ip_list(project_id=project_id)):
        raise NotFound("That public IP is not in this project.")
    network.floating_ip_delete(project_id=project_id, floating_ip_id=floating_ip_id)
