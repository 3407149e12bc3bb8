"""The page cache (pagecache.py), with the in-process cache the test settings use."""

import pytest
from django.core.cache import caches

from home.models import ContentPage


@pytest.fixture
def page_cache(settings):
    settings.PAGE_CACHE_SECONDS = 60
    caches["pagecache"].clear()
    yield
    caches["pagecache"].clear()


@pytest.fixture
def about(home):
    page = home.add_child(instance=ContentPage(title="About", slug="about"))
    page.save_revision().publish()
    return page


def test_second_anonymous_get_is_a_hit(client, page_cache, about):
    first = client.get("/about/", secure=True)
    assert first["X-Page-Cache"] == "miss"
    assert first["Cache-Control"] == "max-age=60"
    ContentPage.objects.filter(pk=about.pk).update(title="Changed behind the cache")
    second = client.get("/about/", secure=True)
    assert second["X-Page-Cache"] == "hit"
    assert second.content == first.content


def test_publish_invalidates(client, page_cache, about, django_capture_on_commit_callbacks):
    client.get("/about/", secure=True)
    with django_capture_on_commit_callbacks(execute=True):
        about.title = "About us"
        about.save_revision().publish()
    response = client.get("/about/", secure=True)
    assert response["X-Page-Cache"] == "miss"
    assert "<h1>About us</h1>" in response.text


def test_logged_in_editor_is_never_cached(client, page_cache, about, editor):
    client.get("/about/", secure=True)
    client.force_login(editor)
    response = client.get("/about/", secure=True)
    assert "X-Page-Cache" not in response
    assert response["Cache-Control"] == "private"


def test_off_by_default_outside_production(client, about):
    assert "X-Page-Cache" not in client.get("/about/")
