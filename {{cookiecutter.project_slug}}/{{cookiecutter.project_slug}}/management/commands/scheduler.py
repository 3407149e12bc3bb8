"""The `scheduler` process (Procfile): runs Wagtail's `publish_scheduled` about every minute.

Scheduled go-live and expiry times (pages and snippets) take effect when `publish_scheduled`
runs; its publish/unpublish signals invalidate the page cache (and the edge cache, if one is
configured) like a publish in the admin. Between runs the loop sleeps for --interval seconds, or
less when something is due sooner, so a scheduled page goes live within a second or so of its
time rather than up to a minute late.

Two schedulers at once (a second instance, or a deploy overlapping the old one) do no harm: each
run holds a PostgreSQL advisory lock, so runs never overlap and the second finds nothing left to
do. The lock is tied to the database session: a scheduler that dies releases it.
"""

import logging
import time
import zlib

from django.apps import apps
from django.core.management import call_command
from django.core.management.base import BaseCommand
from django.db import close_old_connections, connection
from django.db.models import Min
from django.utils import timezone
from wagtail.models import DraftStateMixin, Page, Revision

logger = logging.getLogger(__name__)

# One lock number for every scheduler of this database (advisory locks are per database).
LOCK_ID = zlib.crc32(b"wagtail publish_scheduled")


def next_due():
    """The earliest scheduled go-live or expiry still to happen (None if nothing is scheduled),
    over the same objects `publish_scheduled` looks at."""
    models = [Page] + [
        model
        for model in apps.get_models()
        if issubclass(model, DraftStateMixin) and not issubclass(model, Page)
    ]
    times = [model.objects.filter(live=True).aggregate(t=Min("expire_at"))["t"] for model in models]
    times.append(Revision.objects.aggregate(t=Min("approved_go_live_at"))["t"])
    return min(filter(None, times), default=None)


class Command(BaseCommand):
    help = "Run Wagtail's publish_scheduled every --interval seconds, one run at a time."

    def add_arguments(self, parser):
        parser.add_argument(
            "--interval", type=float, default=60, help="seconds between runs (default 60)"
        )
        parser.add_argument(
            "--once", action="store_true", help="run once and exit (e.g. from cron)"
        )

    def handle(self, *args, interval, once, **options):
        while True:
            try:
                self.run_once()
                due = next_due()
            except Exception:
                if once:
                    raise
                # A failed run (database down, a broken revision) is logged and retried.
                logger.exception("scheduler: publish_scheduled failed")
                due = None
            if once:
                return
            wait = interval
            if due is not None:
                # Wake just after the next scheduled time if it comes before the next run.
                until_due = (due - timezone.now()).total_seconds() + 0.5
                if 0 < until_due < interval:
                    wait = until_due
            time.sleep(wait)
            close_old_connections()  # a connection that died meanwhile is replaced

    def run_once(self):
        postgres = connection.vendor == "postgresql"
        if postgres:
            with connection.cursor() as cursor:
                # Waits while another scheduler runs, then runs (and usually finds nothing due).
                cursor.execute("SELECT pg_advisory_lock(%s)", [LOCK_ID])
        try:
            due = next_due()
            if due is not None and due <= timezone.now():
                logger.info("scheduler: publishing and unpublishing what was due (since %s)", due)
            call_command("publish_scheduled")
        finally:
            if postgres:
                with connection.cursor() as cursor:
                    cursor.execute("SELECT pg_advisory_unlock(%s)", [LOCK_ID])
