"""Neutron: networks, security groups, floating IPs and ports."""
from __future__ import annotations

from dataclasses import dataclass

from .connection import Scope, connection_for
from .errors import CloudError, NotFound, QuotaExceeded, cloud_errors


@dataclass(frozen=True)
class Network:
    id: str
    name: str
    is_external: bool
    is_shared: bool
    project_id: str
    subnet_ids: tuple[str, ...]


@dataclass(frozen=True)
class SecurityGroupRule:
    id: str
    direction: str
    protocol: str
    port_min: int | None
    port_max: int | None
    remote_ip_prefix: str
    ethertype: str = "IPv4"
    remote_group_id: str = ""


@dataclass(frozen=True)
class SecurityGroup:
    id: str
    name: str
    description: str
    rules: tuple[SecurityGroupRule, ...]


@dataclass(frozen=True)
class FloatingIP:
    id: str
    address: str
    status: str
    port_id: str
    fixed_address: str
    network_id: str


def _network(raw) -> Network:
    return Network(id=raw.id, name=raw.name or raw.id, is_external=bool(raw.is_router_external),
                   is_shared=bool(raw.is_shared), project_id=raw.project_id or "",
                   subnet_ids=tuple(raw.subnet_ids or ()))


def network_list(*, scope: Scope) -> list[Network]:
    """Networks the project can use: its own, shared ones and external ones."""
    with cloud_errors():
        conn = connection_for(scope)
        return [_network(n) for n in conn.network.networks()]


def network_ensure_routed(*, scope: Scope, name: str, cidr: str, external_network_id: str) -> Network:
    """The project's private network `name` with one subnet, routed to the external network.

    Each part is looked up before it is made, so a call cut short (a worker that died after the
    subnet, an answer lost after the cloud made the router) is completed by the next call instead
    of leaving a network that has no subnet or a second one. Callers serialise it per project."""
    with cloud_errors():
        conn = connection_for(scope)
        net = next(iter(conn.network.networks(name=name, project_id=scope.project_id)), None) \
            or conn.network.create_network(name=name)
        subnet = next(iter(conn.network.subnets(network_id=net.id)), None) or conn.network.create_subnet(
            network_id=net.id, name=f"{name}-subnet", ip_version=4, cidr=cidr, dns_nameservers=["8.8.8.8"])
        router_name = f"{name}-router"
        router = next(iter(conn.network.routers(name=router_name, project_id=scope.project_id)), None)
        if router is None:
            router = conn.network.create_router(name=router_name,
                                                external_gateway_info={"network_id": external_network_id})
        elif not (router.external_gateway_info or {}).get("network_id"):
            router = conn.network.update_router(router, external_gateway_info={"network_id": external_network_id})
        attached = any(ip.get("subnet_id") == subnet.id for port in conn.network.ports(device_id=router.id)
                       if port.device_owner in _INTERFACE_OWNERS for ip in (port.fixed_ips or []))
        if not attached:
            conn.network.add_interface_to_router(router, subnet_id=subnet.id)
        return _network(conn.network.get_network(net.id))


def _group(raw) -> SecurityGroup:
    rules = tuple(SecurityGroupRule(id=r["id"], direction=r.get("direction", ""), protocol=r.get("protocol") or "any",
                                    port_min=r.get("port_range_min"), port_max=r.get("port_range_max"),
                                    remote_ip_prefix=r.get("remote_ip_prefix") or "",
                                    ethertype=r.get("ethertype") or "IPv4",
                                    remote_group_id=r.get("remote_group_id") or "")
                  for r in (raw.security_group_rules or []))
    return SecurityGroup(id=raw.id, name=raw.name, description=raw.description or "", rules=rules)


def security_group_list(*, scope: Scope) -> list[SecurityGroup]:
    with cloud_errors():
        conn = connection_for(scope)
        return sorted((_group(g) for g in conn.network.security_groups(project_id=scope.project_id)),
                      key=lambda g: g.name)


def security_group_create(*, scope: Scope, name: str, description: str = "") -> SecurityGroup:
    with cloud_errors():
        conn = connection_for(scope)
        return _group(conn.network.create_security_group(name=name, description=description))


def security_group_rule_create(*, scope: Scope, group_id: str, protocol: str, port: int | None = None,
                               remote_ip_prefix: str = "0.0.0.0/0", port_max: int | None = None) -> SecurityGroupRule:
    """An incoming rule: `port` alone, or `port`..`port_max`; IPv6 when the prefix is an IPv6 network."""
    attrs = {"security_group_id": group_id, "direction": "ingress",
             "ethertype": "IPv6" if ":" in remote_ip_prefix else "IPv4",
             "protocol": protocol, "remote_ip_prefix": remote_ip_prefix}
    if port:
        attrs.update(port_range_min=port, port_range_max=port_max or port)
    with cloud_errors():
        raw = connection_for(scope).network.create_security_group_rule(**attrs)
        return SecurityGroupRule(id=raw.id, direction=raw.direction or "ingress", protocol=raw.protocol or "any",
                                 port_min=raw.port_range_min, port_max=raw.port_range_max,
                                 remote_ip_prefix=raw.remote_ip_prefix or "", ethertype=raw.ether_type or "IPv4",
                                 remote_group_id=raw.remote_group_id or "")


def security_group_rule_delete(*, scope: Scope, rule_id: str) -> None:
    with cloud_errors():
        connection_for(scope).network.delete_security_group_rule(rule_id, ignore_missing=True)


def security_group_delete(*, scope: Scope, group_id: str) -> None:
    with cloud_errors():
        connection_for(scope).network.delete_security_group(group_id, ignore_missing=True)


def _fip(raw) -> FloatingIP:
    return FloatingIP(id=raw.id, address=raw.floating_ip_address or "", status=raw.status or "",
                      port_id=raw.port_id or "", fixed_address=raw.fixed_ip_address or "",
                      network_id=raw.floating_network_id or "")


def floating_ip_list(*, scope: Scope) -> list[FloatingIP]:
    with cloud_errors():
        conn = connection_for(scope)
        return [_fip(f) for f in conn.network.ips(project_id=scope.project_id)]


def floating_ip_create(*, scope: Scope, external_network_id: str, description: str = "") -> FloatingIP:
    try:
        with cloud_errors():
            conn = connection_for(scope)
            return _fip(conn.network.create_ip(floating_network_id=external_network_id,
                                               description=description))
    except QuotaExceeded as exc:
        try:
            limit = f" (its quota is {network_quota_get(scope=scope).floating_ips})"
        except CloudError:
            limit = ""
        raise QuotaExceeded(f"The project has no public IPs left{limit}. Release one it does not need on the "
                            f"Public IPs page, or ask for a larger quota.", detail=exc.detail,
                            request_id=exc.request_id) from exc


def floating_ip_tagged_list(*, scope: Scope, description: str) -> list[FloatingIP]:
    """The floating IPs the portal made for a request (tagged by their description): usually none or
    one; two when a create whose answer was lost got through after all."""
    with cloud_errors():
        conn = connection_for(scope)
        return [_fip(raw) for raw in conn.network.ips(project_id=scope.project_id, description=description)]


def floating_ip_associate(*, scope: Scope, floating_ip_id: str, server_id: str) -> FloatingIP:
    """Point the floating IP at the server's first port.

    Neutron answers "External network … is not reachable from subnet …" (a 404) when the server's
    network has no router to the public network; that becomes words naming both networks."""
    with cloud_errors():
        conn = connection_for(scope)
        ports = list(conn.network.ports(device_id=server_id))
        if not ports:
            raise NotFound("The instance has no network port to attach a public IP to.")
    try:
        with cloud_errors():
            return _fip(conn.network.update_ip(floating_ip_id, port_id=ports[0].id))
    except CloudError as exc:
        if "not reachable from subnet" not in (exc.detail or "").lower():
            raise
        raise CloudError(_unreachable_message(conn, floating_ip_id, ports[0].network_id), detail=exc.detail,
                         request_id=exc.request_id) from exc


def _name_of_network(conn, network_id: str) -> str:
    try:
        with cloud_errors():
            return conn.network.get_network(network_id).name or network_id
    except CloudError:
        return network_id


def _unreachable_message(conn, floating_ip_id: str, network_id: str) -> str:
    try:
        with cloud_errors():
            public = _name_of_network(conn, conn.network.get_ip(floating_ip_id).floating_network_id)
    except CloudError:
        public = "public"
    return (f"The public network “{public}” is not reachable from the instance's network "
            f"“{_name_of_network(conn, network_id)}”, which has no router to it. Launch on a network with a "
            f"router (or pick “Automatic”), or add a router to that network.")


def floating_ip_disassociate(*, scope: Scope, floating_ip_id: str) -> None:
    with cloud_errors():
        connection_for(scope).network.update_ip(floating_ip_id, port_id=None)


def floating_ip_delete(*, scope: Scope, floating_ip_id: str) -> None:
    with cloud_errors():
        connection_for(scope).network.delete_ip(floating_ip_id, ignore_missing=True)


@dataclass(frozen=True)
class NetworkQuota:
    floating_ips: int
    security_groups: int


def network_quota_get(*, scope: Scope) -> NetworkQuota:
    with cloud_errors():
        q = connection_for(scope).network.get_quota(scope.project_id)
        return NetworkQuota(floating_ips=int(q.floating_ips), security_groups=int(q.security_groups))


@dataclass(frozen=True)
class Router:
    id: str
    name: str
    project_id: str
    external_network_id: str  # "" when it has no external gateway
    subnet_ids: tuple[str, ...]  # the subnets it has an interface on


_INTERFACE_OWNERS = ("network:router_interface", "network:router_interface_distributed",
                     "network:ha_router_replicated_interface")


def router_list(*, scope: Scope) -> list[Router]:
    """The routers the project can see, each with its external gateway and interface subnets."""
    with cloud_errors():
        conn = connection_for(scope)
        routers = []
        for raw in conn.network.routers():
            gateway = raw.external_gateway_info or {}
            subnets = tuple(ip["subnet_id"] for port in conn.network.ports(device_id=raw.id)
                            if port.device_owner in _INTERFACE_OWNERS for ip in (port.fixed_ips or [])
                            if ip.get("subnet_id"))
            routers.append(Router(id=raw.id, name=raw.name or raw.id, project_id=raw.project_id or "",
                                  external_network_id=gateway.get("network_id") or "", subnet_ids=subnets))
        return routers

