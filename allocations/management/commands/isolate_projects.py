"""Bring allocation projects made by an older portal under the isolation rule (idempotent)."""
from django.core.management.base import BaseCommand

from allocations import provisioning
from allocations.models import METERED_STATUSES, Allocation


class Command(BaseCommand):
    help = ("Take the admin role (and any other role) of the portal's admin user out of allocation projects, "
            "give the portal's service user the member role and each member their own, and open or close "
            "private flavors by allocation kind. Safe to run again.")

    def handle(self, *args, **options):
        allocations = Allocation.objects.filter(status__in=METERED_STATUSES).exclude(openstack_project_id="")
        for line in provisioning.projects_isolate(allocations=allocations):
            self.stdout.write(line)
        self.stdout.write(f"{allocations.count()} project(s) checked.")
