"""Page cache: the default project under gunicorn with real Redis serves anonymous page views from
Redis, invalidates them at once on every instance, and never caches a page for one visitor."""

import re

import psycopg
import pytest
import requests
from conftest import HTTPS

pytestmark = pytest.mark.slow

PAGES = """
from home.models import ContentPage, FormField, FormPage
from wagtail.models import Site

home = Site.objects.get(is_default_site=True).root_page.specific
for slug in ("about", "news", "unpublish-me", "move-me", "delete-me", "section", "head", "tracked"):
    page = home.add_child(instance=ContentPage(title=slug.replace("-", " ").title(), slug=slug))
    page.save_revision().publish()
form = FormPage(title="Contact", slug="contact", thank_you_text="<p>Thanks, got it.</p>")
form.form_fields.add(FormField(label="Your name", field_type="singleline"))
home.add_child(instance=form)
form.save_revision().publish()
"""


@pytest.fixture(scope="module")
def project(make_module_project):
    project = make_module_project().prepare()
    project.shell(PAGES)
    return project


@pytest.fixture(scope="module")
def server(project):
    with project.gunicorn() as server:
        yield server


def get(base, path, headers=None, method="GET"):
    return requests.request(
        method, base + path, headers=HTTPS | (headers or {}), allow_redirects=False, timeout=10
    )


def title(response):
    return re.search(r"<h1>(.*?)</h1>", response.text).group(1)


def change_title_behind_the_cache(project, slug, new_title):
    """An UPDATE that sends no signal: a page that still shows the old title came from Redis."""
    with psycopg.connect(project.env["DATABASE_URL"], autocommit=True) as conn:
        conn.execute("UPDATE wagtailcore_page SET title = %s WHERE slug = %s", (new_title, slug))


def publish_title(project, slug, new_title):
    project.shell(
        "from wagtail.models import Page\n"
        f"page = Page.objects.get(slug={slug!r}).specific\n"
        f"page.title = {new_title!r}\n"
        "page.save_revision().publish()\n"
    )


def warm(base, path):
    get(base, path)
    response = get(base, path)
    assert response.headers.get("X-Page-Cache") == "hit", path
    return response


def test_second_anonymous_get_is_served_from_cache(project, server):
    first = get(server.base_url, "/about/")
    assert first.status_code == 200 and title(first) == "About"
    assert first.headers["X-Page-Cache"] == "miss"
    # Deliberate outgoing headers: browsers and CDNs keep the page at most PAGE_CACHE_MAX_AGE.
    assert first.headers["Cache-Control"] == "max-age=60"
    assert "Expires" not in first.headers

    change_title_behind_the_cache(project, "about", "Changed behind the cache")
    second = get(server.base_url, "/about/")
    assert second.headers["X-Page-Cache"] == "hit"
    assert second.text == first.text  # from Redis: the database says otherwise
    assert second.headers["Cache-Control"] == "max-age=60"
    # Headers added outside the cache still come with a hit.
    assert "Strict-Transport-Security" in second.headers
    assert "Content-Security-Policy" in second.headers

    # Wagtail's userbar makes pages "Vary: Cookie"; an analytics cookie must not split the cache.
    cookie = get(server.base_url, "/about/", {"Cookie": "_ga=GA1.1.123; theme=dark"})
    assert cookie.headers["X-Page-Cache"] == "hit" and cookie.text == first.text

    # HEAD is answered from the GET's entry, with the same headers and no body.
    head = get(server.base_url, "/about/", method="HEAD")
    assert head.headers["X-Page-Cache"] == "hit" and head.content == b""
    assert head.headers["Cache-Control"] == "max-age=60"
    assert head.headers["Content-Length"] == str(len(first.content))

    # Other methods and other URLs are not answered from this entry.
    assert "X-Page-Cache" not in get(server.base_url, "/about/", method="OPTIONS").headers
    other = get(server.base_url, "/about/?page=2")
    assert other.headers["X-Page-Cache"] == "miss" and title(other) == "Changed behind the cache"


def test_head_gets_the_same_caching_headers_as_get(project, server):
    head = get(server.base_url, "/head/", method="HEAD")  # not cached yet: rendered for HEAD
    assert head.status_code == 200 and head.content == b""
    assert head.headers["Cache-Control"] == "max-age=60"
    assert head.headers["X-Page-Cache"] == "miss"
    page = get(server.base_url, "/head/")
    assert page.headers["Cache-Control"] == head.headers["Cache-Control"]
    assert page.headers["X-Page-Cache"] == "miss", "HEAD does not store a page"
    assert get(server.base_url, "/head/", method="HEAD").headers["X-Page-Cache"] == "hit"


def test_tracking_parameters_share_the_page_entry_other_queries_do_not(project, server):
    page = warm(server.base_url, "/tracked/")
    for query in ("utm_source=news&utm_medium=email", "gclid=abc", "fbclid=x&_ga=1", "UTM_ID=9"):
        tracked = get(server.base_url, f"/tracked/?{query}")
        assert tracked.headers["X-Page-Cache"] == "hit", query
        assert tracked.text == page.text
    # Another parameter is a page of its own; the order of parameters does not matter, and
    # tracking parameters next to it are dropped.
    assert get(server.base_url, "/tracked/?b=2&a=1").headers["X-Page-Cache"] == "miss"
    again = get(server.base_url, "/tracked/?a=1&utm_source=x&b=2")
    assert again.headers["X-Page-Cache"] == "hit"


def test_publish_shows_the_new_title_on_every_instance_at_once(project, server):
    with project.gunicorn() as second_instance:
        instances = (server.base_url, second_instance.base_url)
        for base in instances:
            assert title(warm(base, "/news/")) == "News"

        publish_title(project, "news", "Fresh news")  # in a third process: manage.py shell
        first, second = (get(base, "/news/") for base in instances)
        assert title(first) == "Fresh news" and first.headers["X-Page-Cache"] == "miss"
        # The other instance reads the generation and the page the first one just stored.
        assert title(second) == "Fresh news" and second.headers["X-Page-Cache"] == "hit"


@pytest.mark.parametrize(
    ("action", "path", "status_after"),
    [
        ("Page.objects.get(slug='unpublish-me').specific.unpublish()", "/unpublish-me/", 404),
        (
            "Page.objects.get(slug='move-me').move(Page.objects.get(slug='section'), 'last-child')",
            "/move-me/",
            301,  # Wagtail's redirects app sends visitors on to the new URL
        ),
        ("Page.objects.get(slug='delete-me').delete()", "/delete-me/", 404),
        (
            "site = Site.objects.get(is_default_site=True); site.site_name = 'Renamed site'; site.save()",
            "/about/",
            200,
        ),
    ],
    ids=["unpublish", "move", "delete", "site"],
)
def test_unpublish_move_delete_and_site_changes_invalidate(
    project, server, action, path, status_after
):
    before = warm(server.base_url, path)
    project.shell("from wagtail.models import Page, Site\n" + action)
    after = get(server.base_url, path)
    assert after.status_code == status_after
    assert after.headers.get("X-Page-Cache") != "hit"
    if action.startswith("site"):
        assert "Renamed site" in after.text and "Renamed site" not in before.text
    if status_after == 301:
        assert after.headers["Location"].endswith("/section/move-me/")
        assert get(server.base_url, "/section/move-me/").status_code == 200


def test_logged_in_editor_never_gets_a_cached_page(project, server):
    session = project.shell(
        "from django.contrib.auth import get_user_model\n"
        "from django.test import Client\n"
        "user = get_user_model().objects.create_superuser('editor', 'e@example.com', 'pw-12345-x')\n"
        "client = Client()\n"
        "client.force_login(user)\n"
        "print(client.cookies['sessionid'].value)\n"
    ).split()[-1]
    editor = {"Cookie": f"sessionid={session}"}

    anonymous = warm(server.base_url, "/")
    assert "<wagtail-userbar" not in anonymous.text
    page = get(server.base_url, "/", editor)
    assert page.status_code == 200 and "<wagtail-userbar" in page.text
    assert "X-Page-Cache" not in page.headers
    assert page.headers["Cache-Control"] == "private"  # no CDN keeps an editor's page

    # An editor's request after an invalidation renders a page that is not stored for others.
    publish_title(project, "about", "About us")
    assert "<wagtail-userbar" in get(server.base_url, "/about/", editor).text
    visitor = get(server.base_url, "/about/")
    assert visitor.headers["X-Page-Cache"] == "miss" and "<wagtail-userbar" not in visitor.text

    # Requests with credentials bypass the cache too.
    basic = get(server.base_url, "/about/", {"Authorization": "Basic ZWRpdG9yOng="})
    assert "X-Page-Cache" not in basic.headers


def test_form_page_never_leaks_another_visitors_csrf_token(project, server):
    def visit(cookie=None):
        response = get(server.base_url, "/contact/", {"Cookie": cookie} if cookie else None)
        assert response.status_code == 200 and "X-Page-Cache" not in response.headers
        assert "private" in response.headers["Cache-Control"]
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', response.text).group(1)
        return token, response.cookies.get("csrftoken")

    visitors = [visit() for _ in range(3)]
    tokens = [token for token, _ in visitors]
    secrets = [secret for _, secret in visitors]
    assert all(secrets) and len(set(secrets)) == 3, "each new visitor gets a cookie of their own"
    assert len(set(tokens)) == 3

    # A returning visitor gets a fresh page whose token belongs to their own cookie: it submits.
    for secret in secrets:
        token, _ = visit(f"csrftoken={secret}")
        assert token not in tokens
        sent = requests.post(
            server.base_url + "/contact/",
            headers=HTTPS | {"Cookie": f"csrftoken={secret}", "Origin": "https://example.com"},
            data={"csrfmiddlewaretoken": token, "your_name": "Ada"},
            allow_redirects=False,
            timeout=10,
        )
        assert sent.status_code == 200 and "Thanks, got it." in sent.text


def test_zero_seconds_turns_the_page_cache_off(project):
    with project.gunicorn(env={"PAGE_CACHE_SECONDS": "0"}) as server:
        get(server.base_url, "/section/")
        change_title_behind_the_cache(project, "section", "Section renamed")
        response = get(server.base_url, "/section/")
        assert title(response) == "Section renamed"
        assert "X-Page-Cache" not in response.headers
