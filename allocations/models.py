"""Allocations: a PI's award of service units (SUs) on the cloud, its members and its ledger.

The balance is never stored: it is the sum of the append-only ledger (awards in, usage out).
"""
from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.db import models
from django.db.models import Q, Sum


class Cloud(models.Model):
    """A region of the cloud the portal drives (from Keystone's catalog; `regions_refresh`), and
    whether it answers. One shared Keystone serves them all, so a project and its members are the
    same in every region; servers, volumes, networks and quotas are each region's own."""

    name = models.CharField(max_length=64, unique=True, help_text="Shown to users, e.g. 'Primary'.")
    os_cloud = models.CharField(max_length=64, help_text="The cloud's entry in clouds.yaml.")
    region_name = models.CharField(max_length=64, blank=True)
    is_primary = models.BooleanField(default=False)
    failing_since = models.DateTimeField(null=True, blank=True,
                                         help_text="Since when the region's services have not answered the portal.")
    last_error = models.TextField(blank=True)
    last_ok_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["is_primary"], condition=Q(is_primary=True),
                                               name="one_primary_cloud")]
        verbose_name = "region"

    def __str__(self) -> str:
        return self.name


class AllocationKind(models.TextChoices):
    RESEARCH_CPU = "research_cpu", "Research (CPU)"
    RESEARCH_GPU = "research_gpu", "Research (GPU)"
    LARGE_MEMORY = "large_memory", "Large memory"
    EDUCATION = "education", "Education"
    TRIAL = "trial", "Trial"


class AllocationStatus(models.TextChoices):
    REQUESTED = "requested", "Requested"
    UNDER_REVIEW = "under_review", "Under review"
    APPROVED = "approved", "Approved"  # awarded; the project is being provisioned
    REJECTED = "rejected", "Rejected"
    ACTIVE = "active", "Active"
    EXHAUSTED = "exhausted", "Exhausted"
    EXPIRED = "expired", "Expired"
    CLOSED = "closed", "Closed"


# Statuses whose project may still hold resources that the meter must charge.
METERED_STATUSES = (AllocationStatus.ACTIVE, AllocationStatus.EXHAUSTED, AllocationStatus.EXPIRED)


class Allocation(models.Model):
    title = models.CharField(max_length=200)
    pi = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="allocations_led",
                           verbose_name="PI")
    kind = models.CharField(max_length=16, choices=AllocationKind.choices)
    justification = models.TextField(help_text="What the SUs are for, and how the request was sized.")
    requested_sus = models.DecimalField(max_digits=12, decimal_places=2, verbose_name="requested SUs")
    awarded_sus = models.DecimalField(max_digits=12, decimal_places=2, null=True, blank=True,
                                      verbose_name="awarded SUs")
    storage_gb = models.PositiveIntegerField(default=1000, verbose_name="storage award (GB)")
    start_date = models.DateField()
    end_date = models.DateField()
    status = models.CharField(max_length=16, choices=AllocationStatus.choices,
                              default=AllocationStatus.REQUESTED, db_index=True)
    reviewer = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                 related_name="allocations_reviewed")
    decision_note = models.TextField(blank=True)
    reviewed_at = models.DateTimeField(null=True, blank=True)
    openstack_project_id = models.CharField(max_length=64, blank=True, db_index=True)
    openstack_project_name = models.CharField(max_length=128, blank=True)
    # Enforcement timeline: when each step happened, so sweeps act once.
    disabled_at = models.DateTimeField(null=True, blank=True, help_text="No new launches since.")
    shelved_at = models.DateTimeField(null=True, blank=True)
    purged_at = models.DateTimeField(null=True, blank=True)
    warned_25_at = models.DateTimeField(null=True, blank=True)
    warned_10_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        permissions = [("review_allocation", "Can review allocations (approve, reject, extend, add SUs, close)")]

    def __str__(self) -> str:
        return f"{self.title} ({self.get_kind_display()})"

    @property
    def is_usable(self) -> bool:
        """Members may launch only into an active, provisioned, not-disabled allocation."""
        return (self.status == AllocationStatus.ACTIVE and bool(self.openstack_project_id)
                and self.disabled_at is None)

    def balance(self) -> Decimal:
        totals = self.ledger.aggregate(
            credits=Sum("sus", filter=Q(sus__gt=0)), debits=Sum("sus", filter=Q(sus__lt=0)))
        return (totals["credits"] or Decimal(0)) + (totals["debits"] or Decimal(0))


class MembershipRole(models.TextChoices):
    PI = "pi", "PI"
    MANAGER = "manager", "Manager"
    MEMBER = "member", "Member"


class Membership(models.Model):
    allocation = models.ForeignKey(Allocation, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=8, choices=MembershipRole.choices, default=MembershipRole.MEMBER)
    # Whether the user's Keystone user holds a role on the allocation's project right now.
    keystone_role_granted = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["allocation", "user"], name="one_membership_per_user")]

    def __str__(self) -> str:
        return f"{self.user} in {self.allocation} as {self.get_role_display()}"

    @property
    def can_manage(self) -> bool:
        return self.role in (MembershipRole.PI, MembershipRole.MANAGER)


class FlavorFamilyRate(models.Model):
    """The SU multiplier of a flavor family (the flavor name's prefix before the dot)."""

    family = models.CharField(max_length=32, unique=True, help_text="Flavor name prefix, e.g. 'g3'.")
    description = models.CharField(max_length=100, blank=True)
    multiplier = models.DecimalField(max_digits=6, decimal_places=2, default=Decimal(1))

    def __str__(self) -> str:
        return f"{self.family}.* x{self.multiplier}"


class LedgerKind(models.TextChoices):
    AWARD = "award", "Award"
    USAGE = "usage", "Usage"
    ADJUSTMENT = "adjustment", "Adjustment"


class LedgerEntry(models.Model):
    """One append-only line of an allocation's books. Awards are positive, usage negative."""

    allocation = models.ForeignKey(Allocation, on_delete=models.PROTECT, related_name="ledger")
    kind = models.CharField(max_length=12, choices=LedgerKind.choices)
    sus = models.DecimalField(max_digits=14, decimal_places=4, verbose_name="SUs")
    resource_id = models.CharField(max_length=64, blank=True)
    resource_name = models.CharField(max_length=255, blank=True)
    flavor = models.CharField(max_length=64, blank=True)
    vcpus = models.PositiveIntegerField(default=0)
    state = models.CharField(max_length=32, blank=True, help_text="Server status charged for.")
    su_rate = models.DecimalField(max_digits=10, decimal_places=4, default=Decimal(0),
                                  help_text="SUs per hour at this state and flavor.")
    period_start = models.DateTimeField(null=True, blank=True)
    period_end = models.DateTimeField(null=True, blank=True)
    note = models.CharField(max_length=255, blank=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                             related_name="+", help_text="Who the usage belongs to, when known.")
    # The one-time key of the form that made this entry: a resubmitted form cannot award twice.
    idempotency_key = models.CharField(max_length=64, null=True, blank=True, unique=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "ledger entries"
        constraints = [
            # Metering the same server's same interval twice is refused by the database.
            models.UniqueConstraint(fields=["allocation", "resource_id", "period_start"],
                                    condition=Q(kind="usage"), name="one_charge_per_interval"),
        ]
        indexes = [models.Index(fields=["allocation", "created_at"])]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.sus:+} SU {self.resource_name}".strip()


class AllocationRegion(models.Model):
    """A region beyond the primary where an allocation may also run servers, with its quotas there.
    An allocation lives on the primary region; an admin enables more (Django admin), which sets
    these quotas in that region's services. SUs are one balance across all regions."""

    class State(models.TextChoices):
        PENDING = "pending", "Being set up"
        READY = "ready", "Ready"
        FAILED = "failed", "Failed"

    allocation = models.ForeignKey("Allocation", on_delete=models.CASCADE, related_name="regions")
    region_name = models.CharField(max_length=64)
    cores = models.PositiveIntegerField(default=32)
    ram_gb = models.PositiveIntegerField(default=125)
    instances = models.PositiveIntegerField(default=10)
    volume_gb = models.PositiveIntegerField(default=500)
    floating_ips = models.PositiveIntegerField(default=2)
    state = models.CharField(max_length=16, choices=State.choices, default=State.PENDING)
    error = models.TextField(blank=True)
    enabled_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    enabled_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["allocation", "region_name"], name="one_row_per_region")]

    def __str__(self) -> str:
        return f"{self.allocation} in {self.region_name}"


class MeterCursor(models.Model):
    """How far each server of an allocation has been charged."""

    allocation = models.ForeignKey(Allocation, on_delete=models.CASCADE, related_name="meter_cursors")
    resource_id = models.CharField(max_length=64)
    region = models.CharField(max_length=64, blank=True, help_text="Empty: the primary region.")
    metered_until = models.DateTimeField()
    last_state = models.CharField(max_length=32, blank=True)
    gone = models.BooleanField(default=False, help_text="The server no longer exists.")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["allocation", "resource_id"], name="one_cursor_per_server")]

    def __str__(self) -> str:
        return f"{self.resource_id} metered until {self.metered_until:%Y-%m-%d %H:%M}"


class KeystoneIdentity(models.Model):
    """The Keystone user the portal made for a portal user, so the CLI sees the same cloud."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="keystone")
    keystone_user_id = models.CharField(max_length=64, unique=True)
    keystone_username = models.CharField(max_length=255)
    # Encrypted with PORTAL_ENCRYPTION_KEYS (portal.crypto); the portal signs in as this user to act for them.
    encrypted_password = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.keystone_username


class ApplicationCredential(models.Model):
    """An application credential a user minted from the Credentials page (the secret is not kept)."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="app_credentials")
    allocation = models.ForeignKey(Allocation, on_delete=models.CASCADE, related_name="app_credentials")
    keystone_id = models.CharField(max_length=64, unique=True)
    name = models.CharField(max_length=255)
    expires_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.name


class KindFlavorAccess(models.Model):
    """Which flavors an allocation kind may boot. Private flavors (GPU, large memory) matching
    these patterns are opened to the kind's projects in Nova, so the cloud itself refuses the
    rest, from the portal and from the CLI alike."""

    kind = models.CharField(max_length=16, choices=AllocationKind.choices, unique=True)
    flavors = models.CharField(
        max_length=255, help_text="Flavor name patterns, comma-separated, e.g. “m3.*, g3.small”.")

    class Meta:
        verbose_name = "flavor access by allocation kind"
        verbose_name_plural = "flavor access by allocation kind"

    def __str__(self) -> str:
        return f"{self.get_kind_display()}: {self.flavors}"

    @property
    def patterns(self) -> list[str]:
        return [p.strip() for p in self.flavors.split(",") if p.strip()]


INVITATION_DAYS = 14


class Invitation(models.Model):
    """An email asked to join an allocation before it has a verified portal account.

    The link mailed to the address carries a random token; only its SHA-256 is kept. The
    invitation binds when an account whose verified email is this address signs in or confirms
    it (allocations/signals.py), so the link itself is a convenience, not the key.
    """

    allocation = models.ForeignKey(Allocation, on_delete=models.CASCADE, related_name="invitations")
    email = models.EmailField()
    role = models.CharField(max_length=8, choices=MembershipRole.choices, default=MembershipRole.MEMBER)
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    invited_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    accepted_at = models.DateTimeField(null=True, blank=True)
    accepted_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                    related_name="+")
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["email", "accepted_at", "revoked_at"])]

    def __str__(self) -> str:
        return f"{self.email} to {self.allocation}"

    @property
    def is_pending(self) -> bool:
        from django.utils import timezone

        return self.accepted_at is None and self.revoked_at is None and self.expires_at > timezone.now()


class ServerStateChange(models.Model):
    """A server status the mirror saw, and since when it has held.

    Written by the mirror's sync (instances.services.sync) only when a server's status differs
    from the last one recorded. `since` is Nova's updated_at at that sighting: every state change
    moves it, so the status held from `since` until the mirror saw it. The meter uses these, with
    Nova's action log, to split a charged interval where the state changed, including changes no
    action records (a guest that powered itself off, an error). Flavor and maker are kept so a
    server that came and went between two meter runs can still be priced.
    """

    project_id = models.CharField(max_length=64)
    region = models.CharField(max_length=64, blank=True, help_text="Empty: the primary region.")
    server_id = models.CharField(max_length=64)
    status = models.CharField(max_length=32)
    since = models.DateTimeField()
    flavor_name = models.CharField(max_length=64, blank=True)
    vcpus = models.PositiveIntegerField(default=0)
    name = models.CharField(max_length=255, blank=True)
    cloud_user_id = models.CharField(max_length=64, blank=True, help_text="The Keystone user Nova says made it.")
    seen_at = models.DateTimeField()

    class Meta:
        constraints = [
            # Two syncs seeing the same change record it once.
            models.UniqueConstraint(fields=["server_id", "since", "status"], name="one_state_change_per_sighting"),
        ]
        indexes = [models.Index(fields=["server_id", "since"]), models.Index(fields=["project_id", "since"])]

    def __str__(self) -> str:
        return f"{self.server_id} {self.status} since {self.since:%Y-%m-%d %H:%M:%S}"
