"""Classes in Django admin: the templates educators choose from (admins add their own here), and
the classes and seats, read-mostly (seats are made and acted on through the class pages)."""
from __future__ import annotations

from django.contrib import admin

from .models import ClassTemplate, Course, Seat


@admin.register(ClassTemplate)
class ClassTemplateAdmin(admin.ModelAdmin):
    list_display = ("name", "image_name", "flavor_name", "access", "volume_gb", "builtin")
    list_filter = ("builtin", "access")
    search_fields = ("name", "description", "image_name")


class SeatInline(admin.TabularInline):
    model = Seat
    extra = 0
    fields = ("email", "name", "username", "user", "state", "server_id", "invited_at", "last_seen_at")
    readonly_fields = fields
    can_delete = False
    show_change_link = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Course)
class CourseAdmin(admin.ModelAdmin):
    list_display = ("name", "title", "allocation", "owner", "starts_on", "ends_on", "state")
    list_filter = ("state",)
    search_fields = ("name", "title", "owner__email", "allocation__title")
    raw_id_fields = ("allocation", "owner", "instructors", "template")
    readonly_fields = ("schedule_phase", "reminders_sent", "created_at")
    inlines = [SeatInline]
