from django.contrib import admin

from .models import CloudAction, Instance, LaunchRequest, ProjectSync, SSHKey, Volume


@admin.register(Instance)
class InstanceAdmin(admin.ModelAdmin):
    list_display = ["name", "status", "flavor_name", "allocation", "created_by", "cloud_created_at", "deleted_at"]
    list_filter = ["status", "flavor_name"]
    search_fields = ["name", "server_id", "project_id"]
    readonly_fields = [f.name for f in Instance._meta.fields]


@admin.register(Volume)
class VolumeAdmin(admin.ModelAdmin):
    list_display = ["name", "volume_id", "size_gb", "status", "allocation", "deleted_at"]
    list_filter = ["status"]
    search_fields = ["name", "volume_id", "project_id"]


@admin.register(LaunchRequest)
class LaunchRequestAdmin(admin.ModelAdmin):
    list_display = ["name", "count", "flavor_name", "state", "step", "requested_by", "created_at"]
    list_filter = ["state", "flavor_name"]
    search_fields = ["name", "idempotency_key"]


@admin.register(CloudAction)
class CloudActionAdmin(admin.ModelAdmin):
    list_display = ["action", "target_type", "target_name", "state", "requested_by", "created_at"]
    list_filter = ["state", "action", "target_type"]
    search_fields = ["target_id", "target_name"]


admin.site.register(SSHKey)
admin.site.register(ProjectSync)
