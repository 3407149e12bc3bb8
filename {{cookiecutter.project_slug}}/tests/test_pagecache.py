"""The page cache (pagecache.py), with the in-process cache the test settings use."""

import pytest
from django.core.cache import caches
from wagtail.models import PageViewRestriction

from home.models import ContentPage
from {{ cookiecutter.project_slug }} import pagecache
from {{ cookiecutter.project_slug }}.models import PageCacheGeneration


@pytest.fixture
def page_cache(settings, monkeypatch):
    settings.PAGE_CACHE_SECONDS = 60
    # Each test's middleware reads the database generation on its first request, then trusts it
    # for this long (production: 1 s), so that hits here are measured without that read.
    monkeypatch.setattr(pagecache, "GENERATION_READ_EVERY", 60)
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


def test_a_hit_costs_no_database_query(client, page_cache, about, django_assert_num_queries):
    client.get("/about/", secure=True)
    with django_assert_num_queries(0):
        assert client.get("/about/", secure=True)["X-Page-Cache"] == "hit"


def test_changes_move_the_database_generation_in_their_transaction(page_cache, about):
    def generation():
        return PageCacheGeneration.objects.get(pk=1).value

    before = generation()
    about.title = "About us"
    about.save_revision().publish()
    published = generation()
    assert published > before  # before any on_commit callback: in the change's transaction
    PageViewRestriction.objects.create(page=about, restriction_type="password", password="x")
    assert generation() > published


def test_tracking_parameters_are_not_part_of_the_key(client, page_cache, about):
    client.get("/about/", secure=True)
    tracked = client.get("/about/?utm_source=mail&gclid=1", secure=True)
    assert tracked["X-Page-Cache"] == "hit"
    assert client.get("/about/?page=2", secure=True)["X-Page-Cache"] == "miss"


def test_head_has_the_caching_headers_of_get(client, page_cache, about):
    head = client.head("/about/", secure=True)
    assert head["Cache-Control"] == "max-age=60" and head["X-Page-Cache"] == "miss"
    client.get("/about/", secure=True)
    assert client.head("/about/", secure=True)["X-Page-Cache"] == "hit"


def test_logged_in_editor_is_never_cached(client, page_cache, about, editor):
    client.get("/about/", secure=True)
    client.force_login(editor)
    response = client.get("/about/", secure=True)
    assert "X-Page-Cache" not in response
    assert response["Cache-Control"] == "private"


def test_off_by_default_outside_production(client, about):
    assert "X-Page-Cache" not in client.get("/about/")
