"""The mirror of the cloud and the record of what people asked it to do: staff read it here.

Nothing is added, changed or deleted in admin: a changed row would not change the server,
volume or key in the cloud, it would only make the mirror lie (and the next sync undo it).
"""
from django.contrib import admin

from allocations.admin import ReadOnlyModelAdmin

from .models import CloudAction, Instance, LaunchRequest, ProjectSync, SSHKey, Volume


@admin.register(Instance)
class InstanceAdmin(ReadOnlyModelAdmin):
    list_display = ["name", "status", "flavor_name", "allocation", "created_by", "cloud_created_at", "deleted_at"]
    list_filter = ["status", "flavor_name"]
    search_fields = ["name", "server_id", "project_id"]


@admin.register(Volume)
class VolumeAdmin(ReadOnlyModelAdmin):
    list_display = ["name", "volume_id", "size_gb", "status", "allocation", "deleted_at"]
    list_filter = ["status"]
    search_fields = ["name", "volume_id", "project_id"]


@admin.register(LaunchRequest)
class LaunchRequestAdmin(ReadOnlyModelAdmin):
    list_display = ["name", "count", "flavor_name", "state", "step", "requested_by", "created_at"]
    list_filter = ["state", "flavor_name"]
    search_fields = ["name", "idempotency_key"]


@admin.register(CloudAction)
class CloudActionAdmin(ReadOnlyModelAdmin):
    list_display = ["action", "target_type", "target_name", "state", "requested_by", "created_at"]
    list_filter = ["state", "action", "target_type"]
    search_fields = ["target_id", "target_name"]


@admin.register(SSHKey)
class SSHKeyAdmin(ReadOnlyModelAdmin):
    list_display = ["name", "user", "fingerprint", "created_at"]
    search_fields = ["name", "user__email", "fingerprint"]


@admin.register(ProjectSync)
class ProjectSyncAdmin(ReadOnlyModelAdmin):
    list_display = ["project_id", "changes_since", "last_sync_at", "last_full_sync_at"]
    search_fields = ["project_id"]
