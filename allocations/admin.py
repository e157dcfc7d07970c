"""Allocation review in Django admin: filters, search, the ledger, and the review actions."""
from __future__ import annotations

from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db.models import DecimalField, Q, Sum, Value
from django.db.models.functions import Coalesce
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from . import admin_forms, services
from .models import (Allocation, AllocationStatus, ApplicationCredential, Cloud, FlavorFamilyRate,
                     KeystoneIdentity, LedgerEntry, Membership)


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    fields = ("user", "role", "keystone_role_granted", "created_at")
    readonly_fields = ("user", "keystone_role_granted", "created_at")
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False  # members are added through the portal so Keystone roles follow


def _form_action(form_class, title: str, apply, *, single: bool = False, initial=None):
    """Build an admin action that first asks for `form_class` and then calls `apply` per row."""

    def action(modeladmin, request, queryset):
        if single and queryset.count() != 1:
            modeladmin.message_user(request, f"{title}: select exactly one allocation.", messages.WARNING)
            return None
        form = form_class(request.POST if "apply" in request.POST else None,
                          initial=initial(queryset.first()) if initial else None)
        if "apply" in request.POST and form.is_valid():
            done = 0
            for allocation in queryset:
                try:
                    apply(allocation, request.user, form.cleaned_data)
                    done += 1
                except ValidationError as exc:
                    modeladmin.message_user(request, f"{allocation}: {' '.join(exc.messages)}", messages.ERROR)
            if done:
                modeladmin.message_user(request, f"{title}: done for {done} allocation(s).", messages.SUCCESS)
            return None
        return TemplateResponse(request, "admin/allocations/action_form.html", {
            **modeladmin.admin_site.each_context(request), "title": title, "form": form,
            "queryset": queryset, "action": request.POST.get("action"), "opts": modeladmin.model._meta,
        })

    action.short_description = title
    action.__name__ = title.lower().replace(" ", "_")
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
                                                                      note=d["note"]))
close = _form_action(admin_forms.CloseForm, "Close",
                     lambda a, user, d: services.allocation_close(allocation=a, by=user, note=d["note"]))


@admin.action(description="Retry provisioning")
def retry_provisioning(modeladmin, request, queryset):
    for allocation in queryset:
        try:
            services.allocation_retry_provisioning(allocation=allocation, by=request.user)
            modeladmin.message_user(request, f"{allocation}: provisioning queued again.", messages.SUCCESS)
        except ValidationError as exc:
            modeladmin.message_user(request, f"{allocation}: {' '.join(exc.messages)}", messages.ERROR)


@admin.register(Allocation)
class AllocationAdmin(admin.ModelAdmin):
    list_display = ("title", "pi", "kind", "status", "requested_sus", "awarded_sus", "balance_sus",
                    "start_date", "end_date", "openstack_project_name")
    list_filter = ("status", "kind", "clouds", "start_date")
    search_fields = ("title", "pi__email", "openstack_project_name", "openstack_project_id", "justification")
    date_hierarchy = "created_at"
    actions = [approve, reject, extend, add_sus, close, retry_provisioning]
    inlines = [MembershipInline]
    filter_horizontal = ("clouds",)
    readonly_fields = ("status", "awarded_sus", "reviewer", "reviewed_at", "openstack_project_id",
                       "openstack_project_name", "disabled_at", "shelved_at", "purged_at", "warned_25_at",
                       "warned_10_at", "created_at", "balance_sus", "recent_ledger")
    fieldsets = (
        ("Request", {"fields": ("title", "pi", "kind", "justification", "requested_sus", "storage_gb",
                                "start_date", "end_date")}),
        ("Decision", {"fields": ("status", "awarded_sus", "reviewer", "reviewed_at", "decision_note", "clouds")}),
        ("OpenStack", {"fields": ("openstack_project_name", "openstack_project_id")}),
        ("Balance and enforcement", {"fields": ("balance_sus", "recent_ledger", "disabled_at", "shelved_at",
                                                 "purged_at", "warned_25_at", "warned_10_at")}),
    )

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
        body = format_html_join("", "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td style='text-align:right'>{}</td></tr>", (
            (r.created_at.strftime("%Y-%m-%d %H:%M"), r.get_kind_display(), r.resource_name or r.note, r.state,
             f"{r.sus:+,.2f}") for r in rows))
        return format_html("<table><tr><th>When</th><th>Kind</th><th>What</th><th>State</th><th>SUs</th></tr>{}</table>"
                           "<p><a href='{}'>All ledger entries</a></p>", body, url)


@admin.register(LedgerEntry)
class LedgerEntryAdmin(admin.ModelAdmin):
    list_display = ("created_at", "allocation", "kind", "resource_name", "flavor", "state", "su_rate", "sus",
                    "period_start", "period_end", "user")
    list_filter = ("kind", "state")
    search_fields = ("resource_name", "resource_id", "allocation__title", "note")
    list_select_related = ("allocation", "user")

    def has_change_permission(self, request, obj=None):
        return False  # the ledger is append-only

    def has_delete_permission(self, request, obj=None):
        return False

    def has_add_permission(self, request):
        return False


@admin.register(FlavorFamilyRate)
class FlavorFamilyRateAdmin(admin.ModelAdmin):
    list_display = ("family", "description", "multiplier")


@admin.register(Cloud)
class CloudAdmin(admin.ModelAdmin):
    list_display = ("name", "os_cloud", "region_name", "is_primary")


@admin.register(KeystoneIdentity)
class KeystoneIdentityAdmin(admin.ModelAdmin):
    list_display = ("user", "keystone_username", "keystone_user_id", "created_at")
    exclude = ("encrypted_password",)
    readonly_fields = ("user", "keystone_username", "keystone_user_id", "created_at")
    search_fields = ("user__email", "keystone_username")


@admin.register(ApplicationCredential)
class ApplicationCredentialAdmin(admin.ModelAdmin):
    list_display = ("name", "user", "allocation", "expires_at", "created_at")
    search_fields = ("name", "user__email")
