"""Security groups and floating IPs made by hand from their pages (short calls, no task)."""
from __future__ import annotations

from portal.cloud import network


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
    network.security_group_delete(project_id=allocation.openstack_project_id, group_id=group_id)


def floating_ip_allocate(*, allocation) -> network.FloatingIP:
    from portal.cloud.errors import CloudError

    project_id = allocation.openstack_project_id
    external = next((n for n in network.network_list(project_id=project_id) if n.is_external), None)
    if external is None:
        raise CloudError("The cloud has no public network to take a public IP from.")
    return network.floating_ip_create(project_id=project_id, external_network_id=external.id)


def floating_ip_release(*, allocation, floating_ip_id: str) -> None:
    network.floating_ip_delete(project_id=allocation.openstack_project_id, floating_ip_id=floating_ip_id)
