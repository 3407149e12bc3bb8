"""The `scheduler` process (Procfile): one run publishes what is due and unpublishes what expired;
the loop wakes when the next scheduled time comes."""

import time
from datetime import timedelta

from django.core.management import call_command
from django.utils import timezone

from home.models import ContentPage
from {{ cookiecutter.project_slug }}.management.commands.scheduler import next_due


def test_one_run_publishes_due_pages_and_unpublishes_expired_ones(client, home):
    at = timezone.now() + timedelta(seconds=1)
    soon = home.add_child(instance=ContentPage(title="Soon", slug="soon", live=False))
    soon.go_live_at = at
    soon.save_revision().publish()  # scheduled, not live yet
    going = home.add_child(instance=ContentPage(title="Going", slug="going", expire_at=at))
    assert client.get("/soon/").status_code == 404
    assert next_due() == at  # the loop sleeps until then

    time.sleep((at - timezone.now()).total_seconds() + 0.1)
    call_command("scheduler", "--once")

    assert client.get("/soon/").status_code == 200
    assert client.get("/going/").status_code == 404
    going.refresh_from_db()
    assert going.expired
    assert next_due() is None
