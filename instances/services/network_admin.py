"""Security groups and floating IPs made by hand from their pages (short calls, no task).

Each call runs as the person in the allocation's project, so Neutron refuses other projects'
groups and addresses by itself; the listing check is a second fence with a clearer message.
"""
from __future__ import annotations

from django.core.exceptions import ValidationError

from allocations.scopes import member_scope
from portal.cloud import network
from portal.cloud.errors import CloudError, Conflict, NotFound


def security_group_name_taken(*, name: str, groups) -> bool:
    """Neutron allows two groups of one name; people (and the launch form) cannot tell them apart."""
    return any(g.name.casefold() == name.strip().casefold() for g in groups)


def security_group_create(*, user, allocation, name: str, description: str = "", allow_ssh: bool = True,
                          allow_icmp: bool = True, region: str = "") -> network.SecurityGroup:
    """A group in the project (in `region`, "" the primary) with SSH and ping in by default;
    ValidationError if the name is taken there."""
    scope = member_scope(user=user, allocation=allocation, creating=True, region=region)
    if security_group_name_taken(name=name, groups=network.security_group_list(scope=scope)):
        raise ValidationError(f"The project already has a security group named “{name}”; pick another name.")
    group = network.security_group_create(scope=scope, name=name, description=description)
    if allow_ssh:
        network.security_group_rule_create(scope=scope, group_id=group.id, protocol="tcp", port=22)
    if allow_icmp:
        network.security_group_rule_create(scope=scope, group_id=group.id, protocol="icmp")
    return group


def security_group_delete(*, user, allocation, group_id: str, region: str = "") -> None:
    scope = member_scope(user=user, allocation=allocation, region=region)
    group = _group_in_project(scope, group_id)
    try:
        network.security_group_delete(scope=scope, group_id=group_id)
    except Conflict as exc:
        if "in use" in exc.detail:
            raise Conflict(f"The group “{group.name}” is still used by an instance: take it off the instance "
                           "(or delete the instance) first.", detail=exc.detail) from exc
        raise


def _group_in_project(scope, group_id: str) -> network.SecurityGroup:
    group = next((g for g in network.security_group_list(scope=scope) if g.id == group_id), None)
    if group is None:
        raise NotFound("That security group is not in this project.")
    return group


def security_group_rule_add(*, user, allocation, group_id: str, protocol: str, port_min: int | None = None,
                            port_max: int | None = None, cidr: str = "0.0.0.0/0",
                            region: str = "") -> network.SecurityGroupRule:
    """Let traffic in: `protocol` on `port_min`..`port_max` (none for ICMP) from the `cidr` network."""
    scope = member_scope(user=user, allocation=allocation, creating=True, region=region)
    group = _group_in_project(scope, group_id)
    try:
        return network.security_group_rule_create(scope=scope, group_id=group.id, protocol=protocol, port=port_min,
                                                  port_max=port_max, remote_ip_prefix=cidr)
    except Conflict as exc:
        if "already exists" in exc.detail:
            raise Conflict(f"The group “{group.name}” already has this rule.", detail=exc.detail) from exc
        raise


def security_group_rule_remove(*, user, allocation, group_id: str, rule_id: str,
                               region: str = "") -> network.SecurityGroupRule:
    scope = member_scope(user=user, allocation=allocation, region=region)
    group = _group_in_project(scope, group_id)
    rule = next((r for r in group.rules if r.id == rule_id), None)
    if rule is None:
        raise NotFound("That rule is not in this security group.")
    network.security_group_rule_delete(scope=scope, rule_id=rule.id)
    return rule


# Well-known services, for rules in words and the presets of the add-a-rule form.
SERVICES = {("tcp", 22): "SSH", ("tcp", 80): "HTTP", ("tcp", 443): "HTTPS", ("tcp", 3389): "Remote desktop",
            ("tcp", 8888): "Jupyter", ("tcp", 5432): "PostgreSQL", ("tcp", 3306): "MySQL"}
ANYWHERE = {"0.0.0.0/0", "::/0", ""}


def rule_words(rule: network.SecurityGroupRule, groups_by_id: dict | None = None) -> str:
    """“SSH (22/tcp) from anywhere”, “TCP ports 8000–8080 from 10.0.0.0/8”, “Ping (ICMP) from …”."""
    protocol = (rule.protocol or "any").lower()
    if protocol in ("any", "none"):
        what = "All traffic"
    elif protocol in ("icmp", "ipv6-icmp", "icmpv6"):
        what = "Ping and other ICMP"
    elif rule.port_min is None:
        what = f"All {protocol.upper()} ports"
    elif rule.port_max in (None, rule.port_min):
        name = SERVICES.get((protocol, rule.port_min))
        what = f"{name} ({rule.port_min}/{protocol})" if name else f"{protocol.upper()} port {rule.port_min}"
    else:
        what = f"{protocol.upper()} ports {rule.port_min}–{rule.port_max}"
    if rule.remote_group_id:
        other = (groups_by_id or {}).get(rule.remote_group_id)
        source = f"from instances in the group “{other.name}”" if other else "from instances in another group"
    elif rule.remote_ip_prefix in ANYWHERE:
        source = "from anywhere"
    else:
        source = f"from {rule.remote_ip_prefix}"
    if rule.ethertype == "IPv6" and ":" not in rule.remote_ip_prefix:
        source += " over IPv6"
    return f"{what} {source}"


def floating_ip_allocate(*, user, allocation, region: str = "") -> network.FloatingIP:
    scope = member_scope(user=user, allocation=allocation, creating=True, region=region)
    external = next((n for n in network.network_list(scope=scope) if n.is_external), None)
    if external is None:
        raise CloudError("The cloud has no public network to take a public IP from.")
    return network.floating_ip_create(scope=scope, external_network_id=external.id)


def floating_ip_release(*, user, allocation, floating_ip_id: str, region: str = "") -> None:
    scope = member_scope(user=user, allocation=allocation, region=region)
    if not any(f.id == floating_ip_id for f in network.floating_ip_list(scope=scope)):
        raise NotFound("That public IP is not in this project.")
    network.floating_ip_delete(scope=scope, floating_ip_id=floating_ip_id)
