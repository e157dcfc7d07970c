"""The portal's mirror of each project's servers and volumes, and its long operations on them.

Pages read the mirror (one query per list), never the cloud per row. It is kept fresh by the
portal's own actions (each refreshes what it touched) and by a periodic sync that asks Nova only
for what changed since the last one, plus a full pass now and then to catch missed deletions.
"""
from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

from django.conf import settings
from django.db import models
from django.db.models import Q

from portal.models import StatusRow

# Nova statuses in which a server is still moving; pages poll while any row is in one.
SETTLED_STATUSES = frozenset({"ACTIVE", "SHUTOFF", "SUSPENDED", "PAUSED", "SHELVED", "SHELVED_OFFLOADED",
                              "ERROR", "DELETED", "SOFT_DELETED", "VERIFY_RESIZE", "RESCUE"})
SETTLED_VOLUME_STATUSES = frozenset({"available", "in-use", "error", "error_extending", "error_deleting"})


def gpu_share_label(fraction) -> str:
    """"1/5 of an A100", "1 whole A100": a flavor's GPU share as Jetstream2 shows it."""
    if fraction is None:
        return ""
    if fraction >= 1:
        return f"{int(fraction)} whole A100" if fraction == 1 else f"{int(fraction)} whole A100s"
    share = Fraction(str(fraction)).limit_denominator(16)
    return f"{share.numerator}/{share.denominator} of an A100"


class Instance(models.Model):
    """One server as last seen in the cloud (made by the portal or not)."""

    allocation = models.ForeignKey("allocations.Allocation", on_delete=models.CASCADE, related_name="instances")
    project_id = models.CharField(max_length=64, db_index=True)
    region = models.CharField(max_length=64, blank=True, db_index=True, help_text="Empty: the primary region.")
    server_id = models.CharField(max_length=64, unique=True)
    name = models.CharField(max_length=255)
    status = models.CharField(max_length=32, db_index=True)
    task_state = models.CharField(max_length=64, blank=True)
    flavor_name = models.CharField(max_length=64, blank=True)
    vcpus = models.PositiveIntegerField(default=0)
    ram_mb = models.PositiveIntegerField(default=0)
    disk_gb = models.PositiveIntegerField(default=0)
    vgpus = models.PositiveSmallIntegerField(default=0)
    gpu_fraction = models.DecimalField(max_digits=5, decimal_places=3, null=True, blank=True)
    gpu_memory_gb = models.PositiveIntegerField(null=True, blank=True)
    image_id = models.CharField(max_length=64, blank=True)
    image_name = models.CharField(max_length=255, blank=True)
    # [{"network": ..., "addr": ..., "kind": "fixed"|"floating"}]
    addresses = models.JSONField(default=list, blank=True)
    key_name = models.CharField(max_length=255, blank=True)
    security_groups = models.JSONField(default=list, blank=True)
    volume_ids = models.JSONField(default=list, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    is_locked = models.BooleanField(default=False)
    fault = models.TextField(blank=True)
    # Who made it: Nova's user_id mapped to the portal user whose Keystone identity it is (through
    # the portal, or their own CLI/Terraform); null = someone outside the portal.
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="instances_created")
    cloud_user_id = models.CharField(max_length=64, blank=True, help_text="The Keystone user Nova says made it.")
    launch_request = models.ForeignKey("LaunchRequest", null=True, blank=True, on_delete=models.SET_NULL,
                                       related_name="instances")
    cloud_created_at = models.DateTimeField(null=True, blank=True)
    cloud_updated_at = models.DateTimeField(null=True, blank=True)
    deleted_at = models.DateTimeField(null=True, blank=True, db_index=True)
    synced_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        indexes = [models.Index(fields=["project_id", "deleted_at"])]

    def __str__(self) -> str:
        return self.name

    @property
    def is_settled(self) -> bool:
        return self.status in SETTLED_STATUSES and not self.task_state

    @property
    def is_gpu(self) -> bool:
        return self.vgpus > 0 or self.gpu_fraction is not None

    @property
    def is_whole_gpu(self) -> bool:
        return self.is_gpu and (self.gpu_fraction or Decimal(0)) >= 1

    @property
    def gpu_share(self) -> str:
        return gpu_share_label(self.gpu_fraction) if self.is_gpu else ""

    @property
    def creator_label(self) -> str:
        """Who made it (through the portal or with their own credentials); "" = outside the portal."""
        if self.created_by_id:
            return self.created_by.email or self.created_by.get_username()
        return ""

    @property
    def fixed_ips(self) -> list[str]:
        return [a["addr"] for a in self.addresses if a.get("kind") != "floating"]

    @property
    def floating_ips(self) -> list[str]:
        return [a["addr"] for a in self.addresses if a.get("kind") == "floating"]


class Volume(models.Model):
    """One Cinder volume as last seen in the cloud."""

    allocation = models.ForeignKey("allocations.Allocation", on_delete=models.CASCADE, related_name="volumes")
    project_id = models.CharField(max_length=64, db_index=True)
    region = models.CharField(max_length=64, blank=True, db_index=True, help_text="Empty: the primary region.")
    volume_id = models.CharField(max_length=64, unique=True)
    name = models.CharField(max_length=255, blank=True)
    size_gb = models.PositiveIntegerField(default=0)
    status = models.CharField(max_length=32)
    is_bootable = models.BooleanField(default=False)
    # [{"server_id": ..., "device": ...}]
    attachments = models.JSONField(default=list, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    cloud_created_at = models.DateTimeField(null=True, blank=True)
    deleted_at = models.DateTimeField(null=True, blank=True, db_index=True)
    synced_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name", "volume_id"]

    def __str__(self) -> str:
        return self.name or self.volume_id

    @property
    def is_settled(self) -> bool:
        return self.status in SETTLED_VOLUME_STATUSES

    @property
    def attached_server_ids(self) -> list[str]:
        return [a["server_id"] for a in self.attachments]


class ProjectSync(models.Model):
    """How far the mirror of one project in one region is up to date."""

    project_id = models.CharField(max_length=64)
    region = models.CharField(max_length=64, blank=True, help_text="Empty: the primary region.")
    # The cloud's own updated_at of the newest change seen: the next changes-since.
    changes_since = models.DateTimeField(null=True, blank=True)
    last_sync_at = models.DateTimeField(null=True, blank=True)
    last_full_sync_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["project_id", "region"], name="one_sync_row_per_region")]

    def __str__(self) -> str:
        return f"{self.project_id} {self.region}".strip()


class SSHKey(models.Model):
    """A user's public key; imported into Nova under a per-user name when first used."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="ssh_keys")
    name = models.CharField(max_length=64)
    public_key = models.TextField()
    fingerprint = models.CharField(max_length=128, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["user", "name"], name="one_key_name_per_user")]

    def __str__(self) -> str:
        return self.name



class LaunchRequest(StatusRow):
    """One launch of `count` servers; the provisioning task moves it queued -> ... -> done."""

    allocation = models.ForeignKey("allocations.Allocation", on_delete=models.PROTECT, related_name="launches")
    project_id = models.CharField(max_length=64)
    region = models.CharField(max_length=64, blank=True, help_text="Empty: the primary region.")
    name = models.CharField(max_length=63)
    count = models.PositiveSmallIntegerField(default=1)
    flavor_id = models.CharField(max_length=64)
    flavor_name = models.CharField(max_length=64)
    image_id = models.CharField(max_length=64, blank=True)
    image_name = models.CharField(max_length=255, blank=True)
    boot_volume_gb = models.PositiveIntegerField(null=True, blank=True)
    boot_volume_id = models.CharField(max_length=64, blank=True)
    ssh_key = models.ForeignKey(SSHKey, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    security_groups = models.JSONField(default=list, blank=True)
    network_id = models.CharField(max_length=64, blank=True)
    user_data = models.TextField(blank=True)
    assign_floating_ip = models.BooleanField(default=False)
    # The step that failed after the servers were made (e.g. "assigning public IP"): the servers
    # are kept, and the page offers to try that step again.
    failed_step = models.CharField(max_length=64, blank=True)
    # What the task made, so a retry finds it and a failure cleans it up.
    server_ids = models.JSONField(default=list, blank=True)
    # Passes that set out to make the servers, counted (committed) before any create is sent: the
    # first needs no look in Nova for servers made earlier, since none can exist; any later one
    # (a retry, a redelivered or resumed message) looks them up by the request's key first.
    create_attempts = models.PositiveSmallIntegerField(default=0)
    floating_ip_ids = models.JSONField(default=list, blank=True)
    cloud_request_id = models.CharField(max_length=128, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["state", "updated_at"])]

    def __str__(self) -> str:
        return f"launch {self.count} x {self.flavor_name} {self.name} ({self.state})"

    def server_name(self, index: int) -> str:
        return self.name if self.count == 1 else f"{self.name}-{index}"


class ActionTarget(models.TextChoices):
    SERVER = "server", "Instance"
    VOLUME = "volume", "Volume"


class CloudAction(StatusRow):
    """One action on a server or volume (and the audit row for it: who, what, when, outcome)."""

    allocation = models.ForeignKey("allocations.Allocation", on_delete=models.PROTECT, related_name="actions")
    project_id = models.CharField(max_length=64)
    region = models.CharField(max_length=64, blank=True, help_text="Empty: the primary region.")
    target_type = models.CharField(max_length=16, choices=ActionTarget.choices, default=ActionTarget.SERVER)
    target_id = models.CharField(max_length=64, blank=True, db_index=True)
    target_name = models.CharField(max_length=255, blank=True)
    action = models.CharField(max_length=32)
    params = models.JSONField(default=dict, blank=True)
    result = models.JSONField(default=dict, blank=True)
    cloud_request_id = models.CharField(max_length=128, blank=True)
    # Whose Keystone identity the call runs as when it is not the requester's: a student's action on
    # their class seat runs as the class's owner (the student has no role in the project).
    acting_as = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                  related_name="+")
    # A failed action the person has read and put away (it leaves their lists, not the history).
    dismissed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["target_type", "target_id", "created_at"]),
                   models.Index(fields=["state", "updated_at"])]
        constraints = [
            # One action at a time per target: a double click is refused by the database.
            models.UniqueConstraint(fields=["target_type", "target_id"],
                                    condition=Q(state__in=["queued", "running"]) & ~Q(target_id=""),
                                    name="one_open_action_per_target"),
        ]

    def __str__(self) -> str:
        return f"{self.action} {self.target_name or self.target_id} ({self.state})"
