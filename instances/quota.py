"""Whether a launch or a new volume fits the project's remaining quota, in the person's units.

Pure functions over a `ProjectQuota` (read through the gateway by instances.selectors), so the
forms can refuse at the field what Nova or Cinder would refuse later in their own words.
"""
from __future__ import annotations

from dataclasses import dataclass

from portal.cloud.quotas import QuotaUse


@dataclass(frozen=True)
class ProjectQuota:
    rows: tuple[QuotaUse, ...]

    def get(self, key: str) -> QuotaUse | None:
        return next((row for row in self.rows if row.key == key), None)

    def free(self, key: str) -> int | None:
        """How many more of `key` fit; None when unlimited or not known."""
        row = self.get(key)
        return row.free if row is not None else None

    @property
    def has_gpu_limit(self) -> bool:
        return self.get("gpus") is not None

    def pick(self, keys) -> list[QuotaUse]:
        """The rows named by `keys`, in that order (those the cloud reported)."""
        return [row for key in keys if (row := self.get(key)) is not None]


def _n(value: int) -> str:
    return f"{value:,}"


def _need(flavor, count: int) -> list[tuple[str, int]]:
    """(quota key, amount needed) for `count` servers of `flavor`."""
    ram_gb = -(-flavor.ram_mb // 1024)
    needs = [("cores", flavor.vcpus * count), ("ram_gb", ram_gb * count)]
    if flavor.vgpus:
        needs.append(("gpus", flavor.vgpus * count))
    return needs


def _amount(key: str, amount: int) -> str:
    """An amount in the person's units: "64 vCPUs", "250 GB of RAM", "1 GPU"."""
    if key == "ram_gb":
        return f"{_n(amount)} GB of RAM"
    word = "GPU" if key == "gpus" else "vCPU"
    return f"{_n(amount)} {word}{'' if amount == 1 else 's'}"


def _gb(key: str) -> str:
    return " GB" if key == "ram_gb" else ""


def flavor_refusal(*, quota: ProjectQuota | None, flavor) -> str:
    """Why not even one server of this flavor fits, for the flavor's option text ("" if it fits):
    "needs 64 vCPUs, 44 free"."""
    if quota is None:
        return ""
    reasons = []
    for key, amount in _need(flavor, 1):
        free = quota.free(key)
        if free is not None and amount > free:
            reasons.append(f"needs {_amount(key, amount)}, {_n(free)}{_gb(key)} free")
    return "; ".join(reasons)


def launch_refusals(*, quota: ProjectQuota | None, flavor, count: int, new_volume_gb: int | None = None,
                    public_ip: bool = False) -> dict[str, str]:
    """Field name -> why `count` servers of `flavor` (with a new root volume of `new_volume_gb`
    each, and a public IP each) do not fit what is left of the project's quota."""
    if quota is None or flavor is None:
        return {}
    errors: dict[str, str] = {}
    instances = quota.get("instances")
    if instances is not None and instances.free is not None and count > instances.free:
        errors["count"] = (
            f"The project has {_n(instances.used)} of {_n(instances.limit)} instances, so no more can start. "
            "Delete an instance first." if instances.free == 0 else
            f"{count} instances would exceed the project's instance limit: {_n(instances.limit)} allowed, "
            f"{_n(instances.used)} in use, {_n(instances.free)} free.")
    per_server = dict(_need(flavor, 1))
    for key, amount in _need(flavor, count):
        row = quota.get(key)
        if row is None or row.free is None or amount <= row.free:
            continue
        who = f"{count} × {flavor.name} need" if count > 1 else f"{flavor.name} needs"
        message = f"{who} {_amount(key, amount)}; {_n(row.free)}{_gb(key)} of {_n(row.limit)}{_gb(key)} are free."
        # One server already too big is the flavor's fault; otherwise it is the count's.
        errors.setdefault("flavor" if per_server[key] > row.free else "count", message)
    if new_volume_gb:
        errors.update(_volume_refusals(quota, size_gb=new_volume_gb * count, volumes=count, field="root_disk_gb",
                                       what=f"{count} root disks of {_n(new_volume_gb)} GB" if count > 1
                                       else f"A root disk of {_n(new_volume_gb)} GB"))
    ips = quota.get("floating_ips")
    if public_ip and ips is not None and ips.free is not None and count > ips.free:
        who = "The instance needs a public IP" if count == 1 else f"{count} instances need {count} public IPs"
        errors["assign_floating_ip"] = (
            "The project's quota allows no public IPs: launch without one." if ips.limit == 0 else
            f"{who}; {_n(ips.free)} of the project's {_n(ips.limit)} {'is' if ips.free == 1 else 'are'} free. "
            "Release one you no longer use (Public IPs), or launch without one.")
    return errors


def volume_refusals(*, quota: ProjectQuota | None, size_gb: int) -> dict[str, str]:
    """Field name -> why a new volume of `size_gb` does not fit."""
    if quota is None:
        return {}
    return _volume_refusals(quota, size_gb=size_gb, volumes=1, field="size_gb", what=f"{_n(size_gb)} GB")


def _volume_refusals(quota: ProjectQuota, *, size_gb: int, volumes: int, field: str, what: str) -> dict[str, str]:
    storage, count = quota.get("volume_gb"), quota.get("volumes")
    if storage is not None and storage.free is not None and size_gb > storage.free:
        return {field: f"{what} would exceed the project's volume storage: {_n(storage.limit)} GB allowed, "
                       f"{_n(storage.used)} used, {_n(storage.free)} GB free."}
    if count is not None and count.free is not None and volumes > count.free:
        if count.free == 0:
            return {field: f"The project already has {_n(count.used)} of its {_n(count.limit)} volumes; "
                           "delete one you no longer need first."}
        return {field: f"{what} need {volumes} new volumes; {_n(count.free)} of {_n(count.limit)} are free."}
    return {}
