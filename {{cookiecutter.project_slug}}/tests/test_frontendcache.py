"""Purging the caches in front of the site (frontendcache.py): headers and what gets queued."""

import pytest
from django.core.cache import caches
from django_tasks import task_backends
from wagtail.models import Site

from home.models import ContentPage


@pytest.fixture
def purging(settings, about):
    """A purge backend configured (after `about` exists), the page cache on, and tasks kept in a
    list, not run."""
    settings.WAGTAILFRONTENDCACHE = {
        "edge": {
            "BACKEND": "{{ cookiecutter.project_slug }}.frontendcache.HTTPBackend",
            "LOCATION": "http://127.0.0.1:8008",
        }
    }
    settings.PAGE_CACHE_SECONDS = 60
    settings.TASKS = {"default": {"BACKEND": "django_tasks.backends.dummy.DummyBackend"}}
    caches["pagecache"].clear()
    yield task_backends["default"].results
    caches["pagecache"].clear()


def purges(results):
    """The purge tasks among everything queued (Wagtail queues search and reference updates)."""
    return [result for result in results if result.task.name == "purge"]


@pytest.fixture
def about(home):
    site = Site.objects.get(is_default_site=True)
    site.hostname, site.port = "example.com", 443
    site.save()
    page = home.add_child(instance=ContentPage(title="About", slug="about"))
    page.save_revision().publish()
    return page


def cache_control(response):
    return {d.strip() for d in response["Cache-Control"].split(",")}


def test_shared_caches_keep_pages_until_purged_but_not_query_strings(client, purging, about):
    page = client.get("/about/", secure=True)
    assert cache_control(page) == {"max-age=60", "s-maxage=86400"}
    tracked = client.get("/about/?utm_source=newsletter&gclid=1", secure=True)
    assert cache_control(tracked) == {"max-age=60", "s-maxage=86400"}
    # No purge can name every query string: shared caches keep these a minute at most.
    assert cache_control(client.get("/about/?page=2", secure=True)) == {"max-age=60"}


def test_without_a_purge_backend_shared_caches_get_max_age_only(client, settings, about):
    settings.PAGE_CACHE_SECONDS = 60
    caches["pagecache"].clear()
    assert client.get("/about/", secure=True)["Cache-Control"] == "max-age=60"


def test_a_publish_queues_one_purge_after_the_commit(
    purging, about, django_capture_on_commit_callbacks
):
    purging.clear()
    with django_capture_on_commit_callbacks() as callbacks:
        about.title = "About us"
        about.save_revision().publish()
        assert purges(purging) == []  # nothing before the commit
    for callback in callbacks:
        callback()
    [queued] = purges(purging)
    assert queued.task.name == "purge" and queued.task.priority > 0
    urls, everything = queued.args
    assert sorted(urls) == ["https://example.com/", "https://example.com/about/"]
    assert everything is False


def test_a_draft_queues_nothing_and_a_site_change_purges_everything(
    purging, about, django_capture_on_commit_callbacks
):
    purging.clear()
    with django_capture_on_commit_callbacks(execute=True):
        about.title = "Draft title"
        about.save_revision()
    assert purges(purging) == []
    with django_capture_on_commit_callbacks(execute=True):
        site = Site.objects.get(is_default_site=True)
        site.site_name = "Renamed"
        site.save()
    [queued] = purges(purging)
    assert queued.args == [[], True]
