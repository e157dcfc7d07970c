from django.contrib import admin

from .models import Operation


@admin.register(Operation)
class OperationAdmin(admin.ModelAdmin):
    list_display = ("id", "kind", "target", "state", "step", "progress", "requested_by", "created_at")
    list_filter = ("state", "kind")
    search_fields = ("kind", "target", "celery_task_id", "error")
    readonly_fields = [f.name for f in Operation._meta.fields]
    date_hierarchy = "created_at"

    def has_add_permission(self, request):
        return False
