from django.contrib import admin

from .models import Stack, StackOperation, StackResource, StackTemplate


@admin.register(StackTemplate)
class StackTemplateAdmin(admin.ModelAdmin):
    list_display = ("name", "builtin", "created_at")


class ReadOnly(admin.ModelAdmin):
    """Mirrors of the cloud and status rows: the portal writes them, nobody edits them here."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Stack)
class StackAdmin(ReadOnly):
    list_display = ("name", "allocation", "status", "created_by", "made_in_portal", "created_at", "deleted_at")
    list_filter = ("status", "made_in_portal")
    search_fields = ("name", "stack_id", "project_id")


@admin.register(StackResource)
class StackResourceAdmin(ReadOnly):
    list_display = ("stack", "logical_name", "type", "physical_resource_id", "status")
    search_fields = ("physical_resource_id", "logical_name")


@admin.register(StackOperation)
class StackOperationAdmin(ReadOnly):
    list_display = ("stack", "kind", "state", "step", "created_at")
    list_filter = ("kind", "state")
