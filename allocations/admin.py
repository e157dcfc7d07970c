"""Allocation review in Django admin: filters, search, the ledger, and the review actions.

The review actions need the `allocations.review_allocation` permission; staff who may only view
allocations see none of them, and a POST naming one is refused like any unknown action.
"""
from __future__ import annotations

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import DecimalField, Sum, Value
from django.db.models.functions import Coalesce
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from . import admin_forms, services
from .models import (
    Allocation,
    AllocationRegion,
    ApplicationCredential,
    Cloud,
    FlavorFamilyRate,
    KeystoneIdentity,
    KindFlavorAccess,
    LedgerEntry,
    Membership,
)

REVIEW_PERMISSION = "allocations.review_allocation"


def can_review(request) -> bool:
    return request.user.has_perm(REVIEW_PERMISSION)


class ReadOnlyModelAdmin(admin.ModelAdmin):
    """Rows that mirror the cloud or record what happened: staff look, nobody edits here (an
    edit would not reach the cloud, it would only make the record lie)."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    fields = ("user", "role", "keystone_role_granted", "created_at")
    readonly_fields = ("user", "keystone_role_granted", "created_at")
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False  # members are added through the portal so Keystone roles follow

    def has_change_permission(self, request, obj=None):
        return super().has_change_permission(request, obj) and can_review(request)


def _form_action(form_class, title: str, apply, *, single: bool = False, initial=None):
    """Build an admin action that first asks for `form_class` and then calls `apply` per row.

    A refusal from the service is shown on the form, with what was typed; only the refused rows
    stay selected, so sending the form again never repeats what was done.
    """

    def action(modeladmin, request, queryset):
        if not modeladmin.has_review_permission(request):
            raise PermissionDenied  # get_actions already hides it; this is the second fence
        if single and queryset.count() != 1:
            modeladmin.message_user(request, f"{title}: select exactly one allocation.", messages.WARNING)
            return None
        submitted = "apply" in request.POST
        form = form_class(request.POST if submitted else None,
                          initial=initial(queryset.first()) if initial else None)
        if submitted and form.is_valid():
            done, refused = 0, []
            for allocation in queryset:
                try:
                    apply(allocation, request.user, form.cleaned_data)
                    done += 1
                except ValidationError as exc:
                    refused.append(allocation.pk)
                    reason = " ".join(exc.messages)
                    form.add_error(None, reason if single else f"{allocation}: {reason}")
            if done:
                modeladmin.message_user(request, f"{title}: done for {done} allocation(s).", messages.SUCCESS)
            if not refused:
                return None
            queryset = queryset.filter(pk__in=refused)
        return TemplateResponse(request, "admin/allocations/action_form.html", {
            **modeladmin.admin_site.each_context(request), "title": title, "form": form,
            "queryset": queryset, "action": request.POST.get("action"), "opts": modeladmin.model._meta,
        })

    action.short_description = title
    action.__name__ = title.lower().replace(" ", "_")
    action.allowed_permissions = ("review",)
    return action


approve = _form_action(
    admin_forms.ApproveForm, "Approve",
    lambda a, user, d: services.allocation_approve(
        allocation=a, reviewer=user, awarded_sus=d["awarded_sus"], start_date=d["start_date"],
        end_date=d["end_date"], note=d["note"], existing_project_id=d["existing_project_id"].strip()),
    single=True,
    initial=lambda a: {"awarded_sus": a.requested_sus, "start_date": a.start_date, "end_date": a.end_date})
reject = _form_action(admin_forms.RejectForm, "Reject",
                      lambda a, user, d: services.allocation_reject(allocation=a, reviewer=user, note=d["note"]))
extend = _form_action(admin_forms.ExtendForm, "Extend",
                      lambda a, user, d: services.allocation_extend(allocation=a, end_date=d["end_date"], by=user))
add_sus = _form_action(admin_forms.AddSUsForm, "Add SUs",
                       lambda a, user, d: services.allocation_add_sus(allocation=a, sus=d["sus"], by=user,
                                                                      note=d["note"], key=f"{d['key']}:{a.pk}"))
close = _form_action(admin_forms.CloseForm, "Close",
                     lambda a, user, d: services.allocation_close(allocation=a, by=user, note=d["note"]))


@admin.action(description="Retry provisioning", permissions=["review"])
def retry_provisioning(modeladmin, request, queryset):
    if not modeladmin.has_review_permission(request):
        raise PermissionDenied
    for allocation in queryset:
        try:
            services.allocation_retry_provisioning(allocation=allocation, by=request.user)
            modeladmin.message_user(request, f"{allocation}: provisioning queued again.", messages.SUCCESS)
        except ValidationError as exc:
            modeladmin.message_user(request, f"{allocation}: {' '.join(exc.messages)}", messages.ERROR)


# Decided in review (the Approve form sets the award and dates), or never edited here.
ALWAYS_READ_ONLY = ("status", "awarded_sus", "reviewer", "reviewed_at", "openstack_project_id",
                    "openstack_project_name", "disabled_at", "shelved_at", "purged_at", "warned_25_at",
                    "warned_10_at", "created_at", "balance_sus", "recent_ledger", "pi", "requested_sus",
                    "start_date", "end_date")
# Review decisions: only a reviewer changes them. Kind and storage set the project's quotas and
# flavors when it is provisioned, so they are fixed once the review is over.
REVIEW_FIELDS = ("kind", "storage_gb", "decision_note")


@admin.register(Allocation)
class AllocationAdmin(admin.ModelAdmin):
    form = admin_forms.AllocationAdminForm
    list_display = ("title", "pi", "kind", "status", "requested_sus", "awarded_sus", "balance_sus",
                    "start_date", "end_date", "openstack_project_name")
    list_filter = ("status", "kind", "start_date")
    search_fields = ("title", "pi__email", "openstack_project_name", "openstack_project_id", "justification")
    date_hierarchy = "created_at"
    actions = [approve, reject, extend, add_sus, close, retry_provisioning]
    inlines = [MembershipInline]
    readonly_fields = ALWAYS_READ_ONLY
    fieldsets = (
        ("Request", {"fields": ("title", "pi", "kind", "justification", "requested_sus", "storage_gb",
                                "start_date", "end_date")}),
        ("Decision", {"fields": ("status", "awarded_sus", "reviewer", "reviewed_at", "decision_note")}),
        ("OpenStack", {"fields": ("openstack_project_name", "openstack_project_id")}),
        ("Balance and enforcement", {"fields": ("balance_sus", "recent_ledger", "disabled_at", "shelved_at",
                                                 "purged_at", "warned_25_at", "warned_10_at")}),
    )

    def has_review_permission(self, request) -> bool:
        return can_review(request)

    def has_add_permission(self, request):
        return False  # requests come from the portal, which makes the requester the PI member

    def has_delete_permission(self, request, obj=None):
        return False  # an allocation is closed (its project disabled), never deleted with its ledger

    def get_readonly_fields(self, request, obj=None):
        fields = list(super().get_readonly_fields(request, obj))
        if not self.has_review_permission(request):
            fields += REVIEW_FIELDS
        elif obj is not None and obj.status not in services.REVIEWABLE:
            fields += ("kind", "storage_gb")
        return fields

    def get_queryset(self, request):
        zero = Value(0, output_field=DecimalField(max_digits=14, decimal_places=4))
        return super().get_queryset(request).select_related("pi").annotate(
            _balance=Coalesce(Sum("ledger__sus"), zero))

    @admin.display(description="Balance (SUs)", ordering="_balance")
    def balance_sus(self, obj):
        value = getattr(obj, "_balance", None)
        return f"{(value if value is not None else obj.balance()):,.2f}"

    @admin.display(description="Ledger (latest 20)")
    def recent_ledger(self, obj):
        rows = obj.ledger.all()[:20]
        if not rows:
            return "No entries yet."
        url = reverse("admin:allocations_ledgerentry_changelist") + f"?allocation__id__exact={obj.pk}"
        row = "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td style='text-align:right'>{}</td></tr>"
        body = format_html_join("", row, (
            (r.created_at.strftime("%Y-%m-%d %H:%M"), r.get_kind_display(), r.resource_name or r.note, r.state,
             f"{r.sus:+,.2f}") for r in rows))
        return format_html("<table><tr><th>When</th><th>Kind</th><th>What</th><th>State</th><th>SUs</th></tr>{}</table>"
                           "<p><a href='{}'>All ledger entries</a></p>", body, url)


@admin.register(LedgerEntry)
class LedgerEntryAdmin(ReadOnlyModelAdmin):  # the ledger is append-only
    list_display = ("created_at", "allocation", "kind", "resource_name", "flavor", "state", "su_rate", "sus",
                    "period_start", "period_end", "user")
    list_filter = ("kind", "state")
    search_fields = ("resource_name", "resource_id", "allocation__title", "note")
    list_select_related = ("allocation", "user")


@admin.register(FlavorFamilyRate)
class FlavorFamilyRateAdmin(admin.ModelAdmin):
    list_display = ("family", "description", "multiplier")


@admin.register(Cloud)
class CloudAdmin(admin.ModelAdmin):
    """The regions, refreshed from Keystone's catalog, and whether each answers the portal."""

    list_display = ("name", "region_name", "is_primary", "answering", "last_ok_at", "last_error")
    readonly_fields = ("failing_since", "last_error", "last_ok_at")
    actions = ["refresh_from_catalog"]

    @admin.display(boolean=True, description="Answering")
    def answering(self, obj):
        return obj.failing_since is None

    @admin.action(description="Refresh the regions from Keystone's catalog")
    def refresh_from_catalog(self, request, queryset):
        from portal.cloud.errors import CloudError

        from .regions import regions_refresh
        try:
            found = regions_refresh()
        except CloudError as exc:
            self.message_user(request, f"The catalog could not be read: {exc}", messages.ERROR)
            return
        self.message_user(request, "Regions: " + ", ".join(c.region_name for c in found))


@admin.register(AllocationRegion)
class AllocationRegionAdmin(admin.ModelAdmin):
    """Enable a region beyond the primary for an allocation, with its quotas there. Saving sets the
    quotas in that region in the background (an operation row); the region is offered on the
    allocation's launch and volume pages once it is ready. SUs stay one balance."""

    list_display = ("allocation", "region_name", "state", "cores", "ram_gb", "instances", "volume_gb",
                    "floating_ips", "enabled_at")
    list_filter = ("region_name", "state")
    search_fields = ("allocation__title", "allocation__openstack_project_name")
    autocomplete_fields = ("allocation",)
    readonly_fields = ("state", "error", "enabled_by", "enabled_at")

    def get_form(self, request, obj=None, **kwargs):
        form = super().get_form(request, obj, **kwargs)
        from django import forms

        from .regions import region_key
        names = [c.region_name for c in Cloud.objects.order_by("region_name") if region_key(c.region_name)]
        form.base_fields["region_name"] = forms.ChoiceField(
            choices=[(n, n) for n in names], help_text="Regions beside the primary, from Keystone's catalog "
            "(Regions → Refresh the regions from Keystone's catalog, if one is missing).")
        return form

    def save_model(self, request, obj, form, change):
        from .regions import region_enable
        if not change:
            obj.enabled_by = request.user
        obj.state = AllocationRegion.State.PENDING
        super().save_model(request, obj, form, change)
        try:
            region_enable(row=obj, by=request.user)
        except ValidationError as exc:
            self.message_user(request, exc.messages[0], messages.ERROR)
            return
        self.message_user(request, f"Setting the quotas of {obj.allocation} in {obj.region_name}.")


@admin.register(KeystoneIdentity)
class KeystoneIdentityAdmin(ReadOnlyModelAdmin):
    list_display = ("user", "keystone_username", "keystone_user_id", "created_at")
    exclude = ("encrypted_password",)
    readonly_fields = ("user", "keystone_username", "keystone_user_id", "created_at")
    search_fields = ("user__email", "keystone_username")


@admin.register(ApplicationCredential)
class ApplicationCredentialAdmin(ReadOnlyModelAdmin):  # made and deleted by their owner, in Keystone too
    list_display = ("name", "user", "allocation", "expires_at", "created_at")
    search_fields = ("name", "user__email")


@admin.register(KindFlavorAccess)
class KindFlavorAccessAdmin(admin.ModelAdmin):
    """Which flavors each allocation kind may boot; saving opens/closes private flavors in Nova
    for every project of that kind (a task, on commit)."""

    list_display = ("kind", "flavors")

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        services.flavor_access_apply(kind=obj.kind)
        self.message_user(request, f"Flavor access is being applied to every {obj.get_kind_display()} project.",
                          messages.INFO)
