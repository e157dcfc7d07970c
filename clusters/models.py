"""Elastic Slurm clusters: a head node the portal launches, and workers it launches and deletes when
the head's slurmctld asks (its ResumeProgram and SuspendProgram call the portal's API).

Every server of a cluster is made through the instances app's launch path (LaunchRequest) and
deleted through its action path (CloudAction), as the cluster's creator: it is charged, visible and
enforced like any other server. A ClusterOperation is the status row that follows one long step of
the cluster (create, a worker's resume or suspend, delete) until its launch or delete is done.
"""
from __future__ import annotations

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models

from portal.models import StatusRow

# A cluster's name becomes its servers' names and the head's hostname: lowercase, starting with a letter.
NAME_VALIDATOR = RegexValidator(r"^[a-z][a-z0-9-]{0,23}$",
                                "Use 1-24 lowercase letters, digits and dashes, starting with a letter.")
MAX_WORKERS_LIMIT = 32
HEAD_NODE = "head"


class ImageFamily(models.TextChoices):
    UBUNTU = "ubuntu", "Ubuntu 24.04"
    ROCKY = "rocky", "Rocky Linux 9"


class ClusterState(models.TextChoices):
    CREATING = "creating", "Creating"
    READY = "ready", "Ready"
    FAILED = "failed", "Failed"
    DELETING = "deleting", "Deleting"
    DELETED = "deleted", "Deleted"


class Cluster(models.Model):
    allocation = models.ForeignKey("allocations.Allocation", on_delete=models.PROTECT, related_name="clusters")
    # The person whose Keystone identity makes and deletes the cluster's servers (and whose
    # servers they are in Nova), as for any launch of theirs.
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL,
                                   related_name="clusters_created")
    name = models.CharField(max_length=24, validators=[NAME_VALIDATOR])
    image_id = models.CharField(max_length=64)
    image_name = models.CharField(max_length=255, blank=True)
    image_family = models.CharField(max_length=16, choices=ImageFamily.choices)
    head_flavor_id = models.CharField(max_length=64)
    head_flavor_name = models.CharField(max_length=64)
    head_vcpus = models.PositiveSmallIntegerField(default=0)
    worker_flavor_id = models.CharField(max_length=64)
    worker_flavor_name = models.CharField(max_length=64)
    worker_vcpus = models.PositiveSmallIntegerField()
    worker_ram_mb = models.PositiveIntegerField()
    worker_gpus = models.PositiveSmallIntegerField(default=0, help_text="vGPUs per worker (Slurm Gres=gpu).")
    max_workers = models.PositiveSmallIntegerField(
        default=4, validators=[MinValueValidator(1), MaxValueValidator(MAX_WORKERS_LIMIT)])
    idle_minutes = models.PositiveSmallIntegerField(
        default=10, validators=[MinValueValidator(1), MaxValueValidator(24 * 60)],
        help_text="A worker idle this long is removed (Slurm SuspendTime).")
    # Worker names in the head's slurm.conf (w1..wN, State=CLOUD). The batch partition holds the
    # first max_workers of them, so max workers can go up to this (and down) while the head runs:
    # the head's report timer applies the change with scontrol. 0: a cluster made before, whose
    # slurm.conf names only its first max_workers.
    node_ceiling = models.PositiveSmallIntegerField(default=0)
    ssh_key = models.ForeignKey("instances.SSHKey", null=True, blank=True, on_delete=models.SET_NULL,
                                related_name="+")
    state = models.CharField(max_length=16, choices=ClusterState.choices, default=ClusterState.CREATING,
                             db_index=True)
    error = models.TextField(blank=True)
    # Shared by the head and every worker; encrypted with PORTAL_ENCRYPTION_KEYS (portal.crypto,
    # rotated with the other stored secrets).
    encrypted_munge_key = models.TextField()
    # The head's ResumeProgram/SuspendProgram token, limited to this cluster's API; only its hash.
    token_hash = models.CharField(max_length=64, unique=True)
    head_address = models.CharField(max_length=64, blank=True, help_text="The head's fixed IP, for workers' NFS.")
    head_public_address = models.CharField(max_length=64, blank=True, help_text="The head's public IP, for SSH.")
    # The head's last report (sinfo/squeue summaries), and when it came.
    report = models.JSONField(default=dict, blank=True)
    reported_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    deleted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [models.UniqueConstraint(fields=["allocation", "name"], condition=models.Q(deleted_at=None),
                                               name="one_live_cluster_per_name")]

    def __str__(self) -> str:
        return self.name

    @property
    def head_hostname(self) -> str:
        return f"{self.name}-{HEAD_NODE}"

    def server_name(self, node: str) -> str:
        return f"{self.name}-{node}"

    def worker_names(self) -> list[str]:
        """The workers Slurm may use now (the batch partition's nodes)."""
        return [f"w{i}" for i in range(1, self.max_workers + 1)]

    def slurm_node_names(self) -> list[str]:
        """Every worker name the head's slurm.conf defines."""
        return [f"w{i}" for i in range(1, max(self.node_ceiling, self.max_workers) + 1)]

    @property
    def is_live(self) -> bool:
        return self.state not in (ClusterState.DELETING, ClusterState.DELETED)


class NodeRole(models.TextChoices):
    HEAD = "head", "Head"
    WORKER = "worker", "Worker"


class NodeState(models.TextChoices):
    POWERED_DOWN = "powered_down", "Powered down"  # no server (Slurm's idle~)
    BUILDING = "building", "Building"
    ACTIVE = "active", "Active"
    DELETING = "deleting", "Deleting"
    REFUSED = "refused", "Refused"
    FAILED = "failed", "Failed"


class ClusterNode(models.Model):
    """One Slurm node name of a cluster; a worker's server comes and goes, the row stays."""

    cluster = models.ForeignKey(Cluster, on_delete=models.CASCADE, related_name="nodes")
    name = models.CharField(max_length=16, help_text="The Slurm node name (head, w1, w2, ...).")
    role = models.CharField(max_length=8, choices=NodeRole.choices)
    state = models.CharField(max_length=16, choices=NodeState.choices, default=NodeState.POWERED_DOWN)
    server_id = models.CharField(max_length=64, blank=True)
    launch = models.ForeignKey("instances.LaunchRequest", null=True, blank=True, on_delete=models.SET_NULL,
                               related_name="+")
    slurm_state = models.CharField(max_length=64, blank=True, help_text="As the head last reported it.")
    reason = models.TextField(blank=True, help_text="Why it was refused or failed, or Slurm's reason.")
    # Slurm holds the node DOWN because the portal refused its resume: once the allocation can
    # carry a worker again, the head's next report is answered with "return it to service".
    held = models.BooleanField(default=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["role", "name"]
        constraints = [models.UniqueConstraint(fields=["cluster", "name"], name="one_node_per_name")]

    def __str__(self) -> str:
        return f"{self.cluster.name}/{self.name}"


class EventKind(models.TextChoices):
    CREATED = "created", "Created"
    SCALE_OUT = "scale_out", "Scale out"
    SCALE_IN = "scale_in", "Scale in"
    REFUSED = "refused", "Refused"
    RETURNED = "returned", "Returned to service"
    RESIZED = "resized", "Max workers changed"
    FAILED = "failed", "Failed"
    DELETED = "deleted", "Deleted"


class ClusterEvent(models.Model):
    cluster = models.ForeignKey(Cluster, on_delete=models.CASCADE, related_name="events")
    node_name = models.CharField(max_length=16, blank=True)
    kind = models.CharField(max_length=16, choices=EventKind.choices)
    reason = models.TextField(blank=True)
    su_per_hour = models.DecimalField(max_digits=10, decimal_places=2, null=True, blank=True,
                                      help_text="What the change adds (scale out) or saves (scale in) per hour.")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return f"{self.cluster.name} {self.kind} {self.node_name}".strip()


class OperationKind(models.TextChoices):
    CREATE = "create", "Create"
    RESUME = "resume", "Resume a worker"
    SUSPEND = "suspend", "Suspend a worker"
    DELETE = "delete", "Delete"


class ClusterOperation(StatusRow):
    """One long step of a cluster, moved by clusters.tasks.operation_run (portal.runner) until the
    launch or deletes it started are done."""

    cluster = models.ForeignKey(Cluster, on_delete=models.CASCADE, related_name="operations")
    node = models.ForeignKey(ClusterNode, null=True, blank=True, on_delete=models.CASCADE, related_name="operations")
    kind = models.CharField(max_length=16, choices=OperationKind.choices)
    launch = models.ForeignKey("instances.LaunchRequest", null=True, blank=True, on_delete=models.SET_NULL,
                               related_name="+")
    action = models.ForeignKey("instances.CloudAction", null=True, blank=True, on_delete=models.SET_NULL,
                               related_name="+")

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["state", "updated_at"])]

    def __str__(self) -> str:
        return f"{self.cluster.name} {self.kind} {self.node.name if self.node else ''} ({self.state})"
