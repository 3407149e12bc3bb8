"""The edge tier: the shipped deploy/nginx.conf (real nginx, TLS, Debian's cache purge module) in
front of gunicorn with FRONTEND_CACHE_PURGE_URL set, and the Procfile's worker running the purge
tasks. Anonymous hits never reach gunicorn (its access log is the witness), editors always
bypass, a publish is visible at the edge within a second, only loopback may purge, a query-string
flood stores nothing, and a failing purge endpoint is logged and retried without touching the
editor's request. Cloudflare and CloudFront purges go over real HTTP to a TLS stand-in for
api.cloudflare.com (through an HTTPS proxy, as requests supports) and to moto's CloudFront.
"""

import re
import shlex
import socket
import time
from contextlib import contextmanager
from types import SimpleNamespace

import pytest
import requests
from adminclient import CREATE_SUPERUSER, AdminClient
from conftest import background, free_port
from nginx import nginx_for

pytestmark = pytest.mark.slow

# example.com is the default Site's host (and port 443), so purges name the host nginx caches.
PAGES = """
from home.models import ContentPage
from wagtail.models import Site

site = Site.objects.get(is_default_site=True)
site.hostname, site.port = "example.com", 443
site.save()
home = site.root_page.specific
for slug in ("about", "news", "flood", "retry", "cdn"):
    page = home.add_child(instance=ContentPage(title=slug.title(), slug=slug))
    page.save_revision().publish()
"""


def worker_command(project):
    """The Procfile's `worker` line, run with the project's interpreter."""
    procfile = (project.path / "Procfile").read_text()
    line = re.search(r"^worker: (.*)$", procfile, re.MULTILINE).group(1)
    args = shlex.split(line)
    assert args[:2] == ["python", "manage.py"], line
    return [project.python, *args[1:]]


@contextmanager
def worker(project, env, log):
    with background(worker_command(project), cwd=project.path, env=project.env | env, log=log):
        yield log


@pytest.fixture(scope="module")
def edge(make_module_project, tmp_path_factory):
    project = make_module_project().prepare()
    project.shell(CREATE_SUPERUSER + PAGES)
    logs = tmp_path_factory.mktemp("edge-logs")
    port = free_port()
    with nginx_for(project, f"http://127.0.0.1:{port}") as proxy:
        env = {"FRONTEND_CACHE_PURGE_URL": proxy.purge_url}
        with (
            project.gunicorn(port=port, env=env, log=logs / "gunicorn.log") as server,
            worker(project, env, logs / "worker.log") as worker_log,
        ):
            yield SimpleNamespace(
                project=project,
                proxy=proxy,
                server=server,
                worker_log=worker_log,
                admin=AdminClient(server.base_url).login(),
            )


def get(edge, path, headers=None, method="GET", session=requests):
    return session.request(
        method,
        edge.proxy.https_url + path,
        headers={"Host": "example.com"} | (headers or {}),
        verify=edge.proxy.cert,
        allow_redirects=False,
        timeout=10,
    )


def title(response):
    return re.search(r"<h1>(.*?)</h1>", response.text).group(1)


def upstream_requests(edge, path):
    """How many requests for `path` (any query string) gunicorn's access log has."""
    time.sleep(0.2)  # the access log line is written after the response
    pattern = re.compile(rf'"(GET|HEAD) {re.escape(path)}(\?[^ ]*)? HTTP/1\.[01]"')
    return sum(1 for line in edge.server.log.read_text().splitlines() if pattern.search(line))


def directives(response):
    return {d.strip() for d in response.headers.get("Cache-Control", "").split(",") if d.strip()}


def warm(edge, path):
    get(edge, path)
    response = get(edge, path)
    assert response.headers["X-Cache-Status"] == "HIT", path
    return response


def test_anonymous_hits_never_reach_gunicorn(edge):
    first = get(edge, "/about/")
    assert first.status_code == 200 and title(first) == "About"
    assert first.headers["X-Cache-Status"] == "MISS"
    # A purge backend is set: shared caches may keep the page until purged, browsers a minute.
    assert directives(first) == {"max-age=60", "s-maxage=86400"}
    assert upstream_requests(edge, "/about/") == 1

    variants = [
        {},
        {"Cookie": "_ga=GA1.1.123; csrftoken=abc; theme=dark"},  # visitor cookies: same copy
        {"Accept-Encoding": "gzip"},
    ]
    with requests.Session() as session:
        for i in range(30):
            response = get(edge, "/about/", variants[i % len(variants)], session=session)
            assert response.headers["X-Cache-Status"] == "HIT"
            assert title(response) == "About"
        # Tracking parameters are the same page (the page cache's list).
        for query in ("utm_source=news&utm_medium=email", "gclid=x1&fbclid=y2", "_ga=1&_gl=2"):
            response = get(edge, f"/about/?{query}", session=session)
            assert response.headers["X-Cache-Status"] == "HIT", query
        assert (
            get(edge, "/about/", method="HEAD", session=session).headers["X-Cache-Status"] == "HIT"
        )
    assert upstream_requests(edge, "/about/") == 1
    # Headers nginx adds for the app still come with a hit.
    assert "Strict-Transport-Security" in response.headers


def test_editors_and_credentials_always_bypass(edge):
    anonymous = warm(edge, "/news/")
    assert "<wagtail-userbar" not in anonymous.text
    before = upstream_requests(edge, "/news/")
    session = edge.admin.session.cookies["sessionid"]
    for headers in (
        {"Cookie": f"sessionid={session}"},
        {"Cookie": f"_ga=GA1.1.1; sessionid={session}; theme=dark"},
    ):
        page = get(edge, "/news/", headers)
        assert page.headers["X-Cache-Status"] == "BYPASS"
        assert "<wagtail-userbar" in page.text
        assert directives(page) == {"private"}
    for headers in ({"Cookie": "messages=abc"}, {"Authorization": "Basic ZWRpdG9yOng="}):
        assert get(edge, "/news/", headers).headers["X-Cache-Status"] == "BYPASS"
    assert upstream_requests(edge, "/news/") == before + 4
    # Other methods never touch the cache: nginx passes them on without a cache status.
    post = get(edge, "/news/", method="POST")
    assert post.status_code == 403 and "X-Cache-Status" not in post.headers  # Django's CSRF check
    # Nothing an editor saw was stored for visitors.
    again = get(edge, "/news/")
    assert again.headers["X-Cache-Status"] == "HIT" and "<wagtail-userbar" not in again.text


def publish_in_admin(edge, slug, new_title):
    """Publish a draft with a new title through the admin's publish action; returns seconds."""
    page_id = edge.project.shell(
        "from wagtail.models import Page\n"
        f"page = Page.objects.get(slug={slug!r}).specific\n"
        f"page.title = {new_title!r}\n"
        "page.save_revision()\n"
        "print(page.id)\n"
    ).split()[-1]
    started = time.monotonic()
    response = edge.admin.post(f"/admin/bulk/wagtailcore/page/publish/?id={page_id}&next=/admin/")
    elapsed = time.monotonic() - started
    assert response.status_code == 302, response.text[:3000]
    return elapsed


def test_a_publish_is_fresh_at_the_edge_within_a_second(edge):
    assert title(warm(edge, "/news/")) == "News"
    publish_in_admin(edge, "news", "Fresh news")
    published = time.monotonic()
    while True:
        response = get(edge, "/news/")
        waited = time.monotonic() - published
        if title(response) == "Fresh news":
            break
        assert waited < 1.0, "the edge still served the old page a second after the publish"
        time.sleep(0.02)
    assert response.headers["X-Cache-Status"] in ("MISS", "EXPIRED")
    assert get(edge, "/news/").headers["X-Cache-Status"] == "HIT"
    # The worker's purge named the page and its parent, on the Site's host.
    log = edge.worker_log.read_text()
    assert "frontend cache: purged" in log
    print(f"publish visible at the edge after {waited:.3f} s")


def purge_from(edge, source_ip, path):
    """A PURGE sent from `source_ip` (any 127.x.y.z is a usable source address on Linux)."""
    port = int(edge.proxy.purge_url.rsplit(":", 1)[1])
    with socket.create_connection(
        ("127.0.0.1", port), timeout=5, source_address=(source_ip, 0)
    ) as s:
        s.sendall(
            f"PURGE {path} HTTP/1.1\r\nHost: example.com\r\nConnection: close\r\n\r\n".encode()
        )
        reply = b""
        while chunk := s.recv(65536):
            reply += chunk
    return int(reply.split(b" ", 2)[1])


def test_only_loopback_may_purge(edge):
    warm(edge, "/about/")
    assert purge_from(edge, "127.0.0.9", "/about/") == 403
    # Through the public server a PURGE is just another request for the app, not a purge.
    get(edge, "/about/", method="PURGE")
    assert get(edge, "/about/").headers["X-Cache-Status"] == "HIT"
    # The purge listener takes nothing but PURGE.
    assert requests.get(edge.proxy.purge_url + "/about/", timeout=5).status_code == 405

    assert purge_from(edge, "127.0.0.1", "/about/") == 200
    assert get(edge, "/about/").headers["X-Cache-Status"] == "MISS"
    assert purge_from(edge, "127.0.0.1", "/never-cached/") == 404


def cached_files(edge):
    return sorted(p for p in edge.proxy.cache_dir.rglob("*") if p.is_file())


def test_a_query_string_flood_stores_nothing_and_evicts_no_hot_page(edge):
    hot = ("/", "/about/", "/flood/")
    for path in hot:
        warm(edge, path)
    stored = cached_files(edge)
    upstream = {path: upstream_requests(edge, path) for path in hot}

    with requests.Session() as session:
        for i in range(300):  # bounded, loopback only
            response = get(edge, f"/flood/?page={i}&utm_source=x", session=session)
            assert response.status_code == 200
            assert response.headers["X-Cache-Status"] == "BYPASS"
            # No s-maxage for a URL no purge can name: shared caches keep it a minute at most.
            assert directives(response) == {"max-age=60"}

    assert cached_files(edge) == stored
    for path in hot:
        assert get(edge, path).headers["X-Cache-Status"] == "HIT", path
    assert upstream_requests(edge, "/") == upstream["/"]
    assert upstream_requests(edge, "/about/") == upstream["/about/"]
    assert upstream_requests(edge, "/flood/") == upstream["/flood/"] + 300
