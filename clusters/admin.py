"""Clusters, their nodes, events and operations: staff read them here; nothing is edited (an edit
would not reach the cloud or the head's slurmctld). The munge key and the token's hash stay out."""
from django.contrib import admin

from allocations.admin import ReadOnlyModelAdmin

from .models import Cluster, ClusterEvent, ClusterNode, ClusterOperation


class ClusterNodeInline(admin.TabularInline):
    model = ClusterNode
    fields = ["name", "role", "state", "server_id", "slurm_state", "reason", "updated_at"]
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Cluster)
class ClusterAdmin(ReadOnlyModelAdmin):
    list_display = ["name", "allocation", "state", "head_flavor_name", "worker_flavor_name", "max_workers",
                    "created_by", "created_at"]
    list_filter = ["state", "image_family"]
    search_fields = ["name"]
    exclude = ["encrypted_munge_key", "token_hash"]
    inlines = [ClusterNodeInline]


@admin.register(ClusterNode)
class ClusterNodeAdmin(ReadOnlyModelAdmin):
    list_display = ["cluster", "name", "role", "state", "slurm_state", "server_id", "updated_at"]
    list_filter = ["state", "role"]
    search_fields = ["cluster__name", "server_id"]


@admin.register(ClusterEvent)
class ClusterEventAdmin(ReadOnlyModelAdmin):
    list_display = ["cluster", "kind", "node_name", "su_per_hour", "reason", "created_at"]
    list_filter = ["kind"]
    search_fields = ["cluster__name", "reason"]


@admin.register(ClusterOperation)
class ClusterOperationAdmin(ReadOnlyModelAdmin):
    list_display = ["cluster", "kind", "node", "state", "step", "error", "created_at"]
    list_filter = ["state", "kind"]
    search_fields = ["cluster__name"]
