"""Security groups and floating IPs made by hand from their pages (short calls, no task).

Each call runs as the person in the allocation's project, so Neutron refuses other projects'
groups and addresses by itself; the listing check is a second fence with a clearer message.
"""
from __future__ import annotations

from allocations.scopes import member_scope
from portal.cloud import network
from portal.cloud.errors import CloudError, NotFound


def security_group_create(*, user, allocation, name: str, description: str = "", allow_ssh: bool = True,
                          allow_icmp: bool = True) -> network.SecurityGroup:
    scope = member_scope(user=user, allocation=allocation, creating=True)
    group = network.security_group_create(scope=scope, name=name, description=description)
    if allow_ssh:
        network.security_group_rule_create(scope=scope, group_id=group.id, protocol="tcp", port=22)
    if allow_icmp:
        network.security_group_rule_create(scope=scope, group_id=group.id, protocol="icmp")
    return group


def security_group_delete(*, user, allocation, group_id: str) -> None:
    scope = member_scope(user=user, allocation=allocation)
    if not any(g.id == group_id for g in network.security_group_list(scope=scope)):
        raise NotFound("That security group is not in this project.")
    network.security_group_delete(scope=scope, group_id=group_id)


def floating_ip_allocate(*, user, allocation) -> network.FloatingIP:
    scope = member_scope(user=user, allocation=allocation, creating=True)
    external = next((n for n in network.network_list(scope=scope) if n.is_external), None)
    if external is None:
        raise CloudError("The cloud has no public network to take a public IP from.")
    return network.floating_ip_create(scope=scope, external_network_id=external.id)


def floating_ip_release(*, user, allocation, floating_ip_id: str) -> None:
    scope = member_scope(user=user, allocation=allocation)
    if not any(f.id == floating_ip_id for f in network.floating_ip_list(scope=scope)):
        raise NotFound("That public IP is not in this project.")
    network.floating_ip_delete(scope=scope, floating_ip_id=floating_ip_id)
