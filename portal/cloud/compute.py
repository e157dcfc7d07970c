"""Nova: servers, flavors, keypairs, server actions, consoles."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation

from django.utils.dateparse import parse_datetime

from .connection import Scope, connection_for, service_home_scope
from .errors import CloudError, NotFound, NoValidHost, cloud_errors

# Metadata keys the portal writes on every server it creates (to find it again on a retry; who
# made a server is Nova's user_id, never metadata, which anyone can write).
META_REQUEST = "portal:request"
META_INDEX = "portal:request_index"

GPU_SPEC = "resources:VGPU"


def compute_ping(*, timeout: float | None = None) -> str:
    """Ask Nova for its version document (as the portal's service identity); returns the API's
    current microversion."""
    with cloud_errors():
        conn = connection_for(service_home_scope(), timeout=timeout)
        response = conn.compute.get("/", microversion=None)
        response.raise_for_status()
        version = response.json().get("version", {})
        return version.get("version") or version.get("id", "")


@dataclass(frozen=True)
class Flavor:
    id: str
    name: str
    vcpus: int
    ram_mb: int
    disk_gb: int
    extra_specs: dict = field(default_factory=dict)

    @property
    def vgpus(self) -> int:
        try:
            return int(self.extra_specs.get(GPU_SPEC, 0))
        except (TypeError, ValueError):
            return 0

    @property
    def is_gpu(self) -> bool:
        return self.vgpus > 0 or "portal:gpu_fraction" in self.extra_specs

    @property
    def gpu_fraction(self) -> Decimal | None:
        """The share of one A100 this flavor gets (1 = a whole GPU), if it has a GPU."""
        raw = self.extra_specs.get("portal:gpu_fraction")
        if raw is None:
            return Decimal(self.vgpus) if self.vgpus else None
        try:
            top, _, bottom = str(raw).partition("/")  # "1/5" or "0.2" or "1"
            return (Decimal(top) / Decimal(bottom or 1)).quantize(Decimal("0.001"))
        except (InvalidOperation, ZeroDivisionError):
            return None

    @property
    def gpu_memory_gb(self) -> int | None:
        raw = self.extra_specs.get("portal:gpu_memory_gb")
        try:
            return int(float(raw)) if raw is not None else None
        except ValueError:
            return None

    @property
    def family(self) -> str:
        """cpu, large_memory or gpu: how the launch form groups flavors."""
        spec = self.extra_specs.get("portal:family", "").replace("-", "_")
        if spec in ("cpu", "large_memory", "gpu"):
            return spec
        if self.vgpus:
            return "gpu"
        return "large_memory" if self.name.startswith("r") else "cpu"


@dataclass(frozen=True)
class Address:
    network: str
    addr: str
    kind: str  # "fixed" or "floating"
    version: int = 4


@dataclass(frozen=True)
class Server:
    id: str
    name: str
    status: str
    task_state: str
    project_id: str
    user_id: str  # the Keystone user that made it (Nova records it; metadata can be set by anyone)
    flavor: Flavor
    image_id: str
    addresses: tuple[Address, ...]
    metadata: dict
    key_name: str
    security_groups: tuple[str, ...]
    volume_ids: tuple[str, ...]
    is_locked: bool
    fault: str
    created_at: datetime | None
    updated_at: datetime | None


def _when(value) -> datetime | None:
    if not value:
        return None
    parsed = parse_datetime(str(value).replace("Z", "+00:00"))
    if parsed is not None and parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed


def _flavor(raw) -> Flavor:
    """A flavor from a server's embedded flavor (microversion >= 2.47) or a flavor resource."""
    if raw is None:
        return Flavor(id="", name="", vcpus=0, ram_mb=0, disk_gb=0)
    get = raw.get if isinstance(raw, dict) else lambda k, d=None: getattr(raw, k, d)
    name = get("original_name") or get("name") or ""
    return Flavor(id=get("id") or "", name=name, vcpus=int(get("vcpus") or 0),
                  ram_mb=int(get("ram") or 0), disk_gb=int(get("disk") or 0),
                  extra_specs=dict(get("extra_specs") or {}))


def _server(raw) -> Server:
    addresses = []
    for network, entries in (raw.addresses or {}).items():
        for entry in entries:
            addresses.append(Address(network=network, addr=entry.get("addr", ""),
                                     kind=entry.get("OS-EXT-IPS:type", "fixed"),
                                     version=int(entry.get("version") or 4)))
    image = raw.image or {}
    fault = raw.fault or {}
    return Server(
        id=raw.id, name=raw.name or "", status=(raw.status or "").upper(),
        task_state=raw.task_state or "", project_id=raw.project_id or "", user_id=raw.user_id or "",
        flavor=_flavor(raw.flavor), image_id=(image.get("id", "") if isinstance(image, dict) else ""),
        addresses=tuple(addresses), metadata=dict(raw.metadata or {}), key_name=raw.key_name or "",
        security_groups=tuple(sorted({g.get("name", "") for g in (raw.security_groups or [])})),
        volume_ids=tuple(v.get("id", "") for v in (raw.attached_volumes or [])),
        is_locked=bool(raw.is_locked), fault=fault.get("message", "") if isinstance(fault, dict) else "",
        created_at=_when(raw.created_at), updated_at=_when(raw.updated_at),
    )


def server_list(*, scope: Scope, changes_since: datetime | None = None,
                name: str | None = None) -> list[Server]:
    """The project's servers with details; deleted ones (status DELETED) are included when
    `changes_since` is given, as Nova returns them. Pages follow Nova's own next links (no
    client-side `limit`: with one, the SDK re-asks past the last page and some filters make
    it see the same marker twice)."""
    query: dict = {}
    if changes_since is not None:
        query["changes_since"] = changes_since.isoformat()
    if name:
        query["name"] = name
    with cloud_errors():
        conn = connection_for(scope)
        return [_server(s) for s in conn.compute.servers(details=True, **query)]


def server_get(*, scope: Scope, server_id: str) -> Server:
    with cloud_errors():
        conn = connection_for(scope)
        return _server(conn.compute.get_server(server_id))


def server_create(*, scope: Scope, name: str, flavor_id: str, image_id: str | None,
                  network_ids: list[str], metadata: dict, key_name: str = "",
                  security_groups: list[str] | None = None, user_data: str = "",
                  boot_volume_gb: int | None = None, boot_volume_id: str | None = None) -> Server:
    """Create one server. With `boot_volume_gb` it boots from a new volume made from the image
    (deleted with the server), with `boot_volume_id` from an existing volume."""
    import base64

    attrs = {"name": name, "flavor_id": flavor_id, "metadata": metadata,
             "networks": [{"uuid": n} for n in network_ids] or "none"}
    if key_name:
        attrs["key_name"] = key_name
    if security_groups:
        attrs["security_groups"] = [{"name": g} for g in security_groups]
    if user_data:
        attrs["user_data"] = base64.b64encode(user_data.encode()).decode()
    if boot_volume_id:
        attrs["block_device_mapping"] = [{"boot_index": 0, "uuid": boot_volume_id, "source_type": "volume",
                                          "destination_type": "volume", "delete_on_termination": False}]
    elif boot_volume_gb:
        attrs["block_device_mapping"] = [{"boot_index": 0, "uuid": image_id, "source_type": "image",
                                          "destination_type": "volume", "volume_size": boot_volume_gb,
                                          "delete_on_termination": True}]
    else:
        attrs["image_id"] = image_id
    with cloud_errors():
        conn = connection_for(scope)
        return _server(conn.compute.create_server(**attrs))


def server_delete(*, scope: Scope, server_id: str) -> None:
    with cloud_errors():
        conn = connection_for(scope)
        conn.compute.delete_server(server_id, ignore_missing=True)


def server_metadata_set(*, scope: Scope, server_id: str, metadata: dict) -> None:
    """Add or update these metadata keys on a server (others are kept), e.g. the cluster a server
    belongs to. Metadata is for finding things again; it decides nothing (anyone can write it)."""
    with cloud_errors():
        conn = connection_for(scope)
        conn.compute.set_server_metadata(server_id, **metadata)


def server_fault_error(server: Server) -> CloudError:
    """The portal's exception for a server that ended in ERROR, from Nova's fault message."""
    fault = server.fault or "The server failed to build."
    if "no valid host" in fault.lower():
        return NoValidHost(detail=fault)
    return CloudError(f"The server failed: {fault}", detail=fault)


# action name -> (proxy method, extra positional args) for the simple server actions.
_ACTIONS = {
    "start": ("start_server", ()),
    "stop": ("stop_server", ()),
    "reboot_soft": ("reboot_server", ("SOFT",)),
    "reboot_hard": ("reboot_server", ("HARD",)),
    "suspend": ("suspend_server", ()),
    "resume": ("resume_server", ()),
    "shelve": ("shelve_server", ()),
    "unshelve": ("unshelve_server", ()),
    "lock": ("lock_server", ()),
    "unlock": ("unlock_server", ()),
    "resize_confirm": ("confirm_server_resize", ()),
    "resize_revert": ("revert_server_resize", ()),
}


def server_action(*, scope: Scope, server_id: str, action: str) -> None:
    """Run one of the simple actions (start, stop, reboot_soft, ..., resize_confirm)."""
    method, args = _ACTIONS[action]
    with cloud_errors():
        conn = connection_for(scope)
        getattr(conn.compute, method)(server_id, *args)


def server_rebuild(*, scope: Scope, server_id: str, image_id: str, user_data: str = "") -> None:
    """Re-image a server from `image_id` (its disk is replaced; its name, flavor, addresses and
    ports stay), with new user data run at its next first boot."""
    import base64

    attrs = {"user_data": base64.b64encode(user_data.encode()).decode()} if user_data else {}
    with cloud_errors():
        conn = connection_for(scope)
        conn.compute.rebuild_server(server_id, image_id, **attrs)


@dataclass(frozen=True)
class ServerEvent:
    """One entry of Nova's instance action log (what was asked, and whether it failed)."""
    action: str
    request_id: str
    message: str  # "Error" when it failed
    start_time: datetime | None


def server_event_list(*, scope: Scope, server_id: str) -> list[ServerEvent]:
    """The server's action log, newest first."""
    with cloud_errors():
        conn = connection_for(scope)
        events = [ServerEvent(action=a.action or "", request_id=a.request_id or "", message=a.message or "",
                              start_time=_when(a.start_time)) for a in conn.compute.server_actions(server_id)]
    return sorted(events, key=lambda e: e.start_time.timestamp() if e.start_time else 0, reverse=True)


def server_resize(*, scope: Scope, server_id: str, flavor_id: str) -> None:
    with cloud_errors():
        connection_for(scope).compute.resize_server(server_id, flavor_id)


def server_image_create(*, scope: Scope, server_id: str, name: str) -> str:
    """Snapshot the server into a new image; returns the image id."""
    with cloud_errors():
        image = connection_for(scope).compute.create_server_image(server_id, name)
        return image.id if hasattr(image, "id") else str(image)


def server_console_url(*, scope: Scope, server_id: str) -> str:
    with cloud_errors():
        conn = connection_for(scope)
        console = conn.compute.create_console(server_id, console_type="novnc")
        return (console or {}).get("url", "")


def server_console_log(*, scope: Scope, server_id: str, lines: int = 200) -> str:
    with cloud_errors():
        conn = connection_for(scope)
        return (conn.compute.get_server_console_output(server_id, length=lines) or {}).get("output", "")


def server_volume_attach(*, scope: Scope, server_id: str, volume_id: str) -> None:
    with cloud_errors():
        connection_for(scope).compute.create_volume_attachment(server_id, volume_id=volume_id)


def server_volume_detach(*, scope: Scope, server_id: str, volume_id: str) -> None:
    with cloud_errors():
        connection_for(scope).compute.delete_volume_attachment(server_id, volume_id)


def flavor_list(*, scope: Scope) -> list[Flavor]:
    """The flavors the scope's project may boot: public ones and private ones it was given access
    to (Nova decides), with their extra specs (one call; Nova >= 2.61 embeds them)."""
    with cloud_errors():
        conn = connection_for(scope)
        flavors = [_flavor(f) for f in conn.compute.flavors(details=True)]
    return sorted(flavors, key=lambda f: (f.family, f.vcpus, f.ram_mb, f.name))


def flavor_get(*, scope: Scope, flavor_id: str) -> Flavor:
    for flavor in flavor_list(scope=scope):
        if flavor.id == flavor_id or flavor.name == flavor_id:
            return flavor
    raise NotFound("That flavor does not exist or is not available to this project.")


@dataclass(frozen=True)
class Keypair:
    name: str
    fingerprint: str
    public_key: str


def keypair_get(*, scope: Scope, name: str) -> Keypair | None:
    """The scope's person's own Nova keypair with this name (keypairs belong to a Keystone user)."""
    with cloud_errors():
        found = connection_for(scope).compute.find_keypair(name, ignore_missing=True)
        return Keypair(name=found.name, fingerprint=found.fingerprint or "",
                       public_key=found.public_key or "") if found else None


def keypair_create(*, scope: Scope, name: str, public_key: str) -> Keypair:
    with cloud_errors():
        made = connection_for(scope).compute.create_keypair(name=name, public_key=public_key)
        return Keypair(name=made.name, fingerprint=made.fingerprint or "", public_key=made.public_key or "")


def keypair_delete(*, scope: Scope, name: str) -> None:
    with cloud_errors():
        connection_for(scope).compute.delete_keypair(name, ignore_missing=True)


@dataclass(frozen=True)
class Quota:
    instances: int
    cores: int
    ram_mb: int


def quota_get(*, scope: Scope) -> Quota:
    with cloud_errors():
        q = connection_for(scope).compute.get_quota_set(scope.project_id)
        return Quota(instances=int(q.instances), cores=int(q.cores), ram_mb=int(q.ram))
