"""Seed, once, a demo allocation approved for the demo admin, so a newcomer can launch at once."""
from datetime import timedelta
from decimal import Decimal

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from allocations import provisioning, services
from allocations.models import Allocation
from portal import services as portal_services
from portal.cloud.errors import CloudError
from portal.models import Operation

TITLE = "Demo: CPU and GPU research"


class Command(BaseCommand):
    help = "Create and provision the demo allocation (10,000 SUs) for the demo admin if it does not exist."

    def add_arguments(self, parser):
        parser.add_argument("--username", default="admin")

    def handle(self, *args, username, **options):
        admin = get_user_model().objects.filter(username=username).first()
        if admin is None:
            raise CommandError(f"No user {username!r}; run ensure_demo_admin first.")
        allocation = Allocation.objects.filter(pi=admin, title=TITLE).first()
        if allocation is None:
            today = timezone.localdate()
            allocation = services.allocation_request(
                pi=admin, title=TITLE, kind="research_gpu", requested_sus=Decimal(10000),
                justification="Seeded by `make run` so the portal can be tried at once.",
                start_date=today, end_date=today + timedelta(days=365))
            services.allocation_approve(allocation=allocation, reviewer=admin, awarded_sus=Decimal(10000),
                                        start_date=today, end_date=today + timedelta(days=365),
                                        note="Demo allocation.")
        allocation.refresh_from_db()
        if allocation.status == "approved":
            # Provision right here rather than waiting for the worker, so `make run` starts ready.
            operation = Operation.objects.filter(kind="allocation.provision", target=f"allocation:{allocation.pk}",
                                                 state="queued").first()
            operation = operation or portal_services.operation_create(
                kind="allocation.provision", target=f"allocation:{allocation.pk}", user=admin)
            try:
                provisioning.allocation_provision(operation=operation)
            except CloudError as exc:
                portal_services.status_row_fail(row=operation, error=str(exc))
                raise CommandError(f"Could not set up the demo project: {exc}") from exc
            allocation.refresh_from_db()
        self.stdout.write(f"Demo allocation: {allocation.title} ({allocation.get_status_display()}), "
                          f"project {allocation.openstack_project_name}, {allocation.balance():,.0f} SUs")
