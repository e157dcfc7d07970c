"""`manage.py regions`: the regions the portal knows; `--refresh` reads them from Keystone's catalog
first; `--queues` prints only the Celery queues of the regions beside the primary, comma-separated
(scripts/run.sh starts a worker for them)."""
from django.core.management.base import BaseCommand, CommandError

from portal.cloud.errors import CloudError
from portal.runner import region_queue


class Command(BaseCommand):
    help = "List the regions (from Keystone's catalog with --refresh); --queues: their Celery queues."

    def add_arguments(self, parser):
        parser.add_argument("--refresh", action="store_true", help="read the regions from Keystone's catalog")
        parser.add_argument("--queues", action="store_true", help="print the queues of the non-primary regions")

    def handle(self, *args, refresh=False, queues=False, **options):
        from allocations.regions import region_list, regions_refresh

        if refresh:
            try:
                regions_refresh()
            except CloudError as exc:
                raise CommandError(f"The catalog could not be read: {exc}") from exc
        regions = region_list()
        if queues:
            self.stdout.write(",".join(q for r in regions if r.key for q in (region_queue(r.key),
                                                                             region_queue(r.key, "sync"))))
            return
        for r in regions:
            self.stdout.write(f"{r.name}{' (primary)' if r.is_primary else ''}"
                              f"{': not answering since ' + r.failing_since.isoformat() if r.failing_since else ''}")
