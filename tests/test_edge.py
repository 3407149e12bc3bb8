"""The edge tier: the shipped deploy/nginx.conf (real nginx, TLS, Debian's cache purge module) in
front of gunicorn with FRONTEND_CACHE_PURGE_URL set, and the Procfile's worker running the purge
tasks. Anonymous hits never reach gunicorn (its access log is the witness), editors always
bypass, a publish is visible at the edge within a second, only loopback may purge, a query-string
flood stores nothing, and a failing purge endpoint is logged and retried without touching the
editor's request. Cloudflare and CloudFront purges go over real HTTP to a TLS stand-in for
api.cloudflare.com (through an HTTPS proxy, as requests supports) and to moto's CloudFront.
"""

import json
import re
import shlex
import socketserver
import ssl
import threading
import time
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace

import boto3
import psycopg
import pytest
import requests
from adminclient import CREATE_SUPERUSER, AdminClient, png
from conftest import background, free_port, request_from, silent_listener
from nginx import nginx_for, self_signed_cert
from s3 import s3_server  # noqa: F401  (moto's server answers CloudFront's API too)

pytestmark = pytest.mark.slow

# The default Site is example.com on port 443 (the domain_name answer, migration 0002), so purges
# name the host nginx caches.
PAGES = """
from home.models import ContentPage
from wagtail.models import Site

site = Site.objects.get(is_default_site=True)
assert (site.hostname, site.port) == ("example.com", 443), (site.hostname, site.port)
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
    """A PURGE sent from `source_ip` to the edge's purge listener; its status code."""
    return request_from(source_ip, edge.proxy.purge_url, "PURGE", path, {"Host": "example.com"})[0]


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


# ---------------------------------------------------------------------------------------------
# Purge endpoints that fail, and the CDNs' APIs, on loopback


class Recorder(BaseHTTPRequestHandler):
    """Records every request and answers with the server's `status` and `body`. A CONNECT
    (requests' HTTPS_PROXY) is answered by terminating TLS with the server's certificate, so the
    HTTPS request inside it is recorded too: a stand-in for api.cloudflare.com."""

    protocol_version = "HTTP/1.1"

    def do_CONNECT(self):
        self.send_response(200, "Connection established")
        self.end_headers()
        tls = self.server.tls.wrap_socket(self.connection, server_side=True)
        self.connection, self.rfile = tls, tls.makefile("rb")
        self.wfile = socketserver._SocketWriter(tls)

    def answer(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        self.server.requests.append(
            SimpleNamespace(
                method=self.command,
                path=self.path,
                host=self.headers.get("Host"),
                authorization=self.headers.get("Authorization"),
                json=json.loads(body) if body else None,
                client=self.client_address[0],
            )
        )
        reply = self.server.body.encode()
        self.send_response(self.server.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    do_GET = do_POST = do_PURGE = answer

    def log_message(self, *args):
        pass


@contextmanager
def recorder(status=200, body="{}", cert=None):
    server = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    server.daemon_threads = True
    server.requests, server.status, server.body = [], status, body
    if cert:
        server.tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        server.tls.load_cert_chain(*cert)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        server.url = f"http://127.0.0.1:{server.server_address[1]}"
        yield server
    finally:
        server.shutdown()
        server.server_close()


SECOND_HOST = """
from wagtail.models import Site

default = Site.objects.get(is_default_site=True)
Site.objects.create(hostname="www.example.com", port=443, root_page=default.root_page)
"""


@pytest.fixture(scope="module")
def quiet(make_module_project):
    """A second project (its own database and task queue) whose worker only runs when a test
    says so (db_worker --batch), with the same pages and a second Site on the same tree."""
    project = make_module_project().prepare()
    project.shell(CREATE_SUPERUSER + PAGES + SECOND_HOST)
    return project


def task_rows(project):
    with psycopg.connect(project.env["DATABASE_URL"], autocommit=True) as conn:
        return conn.execute(
            "SELECT task_path, status, args_kwargs, run_after FROM django_tasks_database_dbtaskresult"
            " WHERE task_path LIKE '%%frontendcache.purge' ORDER BY enqueued_at"
        ).fetchall()


def run_worker(project, env):
    return project.manage("db_worker", "--batch", env=env, timeout=120).stdout


def test_a_failing_purge_endpoint_is_logged_and_retried_and_never_slows_the_editor(quiet):
    with recorder(status=503) as endpoint:
        env = {"FRONTEND_CACHE_PURGE_URL": endpoint.url}
        with quiet.gunicorn(env=env) as server:
            admin = AdminClient(server.base_url).login()
            page_id = quiet.shell(
                "from wagtail.models import Page\n"
                "page = Page.objects.get(slug='retry').specific\n"
                "page.title = 'Retried'\n"
                "page.save_revision()\n"
                "print(page.id)\n"
            ).split()[-1]
            started = time.monotonic()
            response = admin.post(f"/admin/bulk/wagtailcore/page/publish/?id={page_id}&next=/")
            elapsed = time.monotonic() - started
            assert response.status_code == 302
            # The editor's request only queued the purge: the endpoint has not been called.
            assert endpoint.requests == []
            assert [status for _, status, _, _ in task_rows(quiet)] == ["READY"]
            assert "Retried" in admin.get("/retry/").text
        print(f"publish request with a failing purge endpoint: {elapsed * 1000:.0f} ms")

        out = run_worker(quiet, env)
        # The first PURGE failed; the backend's other URLs wait for the retry.
        assert [(r.method, r.host) for r in endpoint.requests] == [("PURGE", "example.com")]
        failures = [
            json.loads(line) for line in out.splitlines() if "purge from edge failed" in line
        ]
        assert len(failures) == 1, out
        assert failures[0]["levelname"] == "WARNING"
        assert "attempt 1 of 7" in failures[0]["message"] and "HTTP 503" in failures[0]["message"]
        rows = task_rows(quiet)
        assert [status for _, status, _, _ in rows] == ["SUCCESSFUL", "READY"]
        retry_args = rows[1][2]["args"]
        assert retry_args[2:] == [["edge"], 2]  # only the failed backend, second attempt

        # The endpoint recovers; the retry runs after its backoff and succeeds.
        endpoint.status, endpoint.requests[:] = 200, []
        time.sleep(max(0.0, (rows[1][3] - rows[0][3]).total_seconds()) + 0.5)
        out = run_worker(quiet, env)
        assert {(r.host, r.path) for r in endpoint.requests} == {
            ("example.com", "/retry/"),
            ("example.com", "/"),
            ("www.example.com", "/retry/"),
            ("www.example.com", "/"),
        }
        assert "purged 4 URL(s) from edge" in out
        assert [status for _, status, _, _ in task_rows(quiet)] == ["SUCCESSFUL", "SUCCESSFUL"]

    # A hung endpoint holds the worker for one timeout (frontendcache.TIMEOUT, 5 s), not forever.
    with silent_listener() as port:
        env = {"FRONTEND_CACHE_PURGE_URL": f"http://127.0.0.1:{port}"}
        quiet.shell(
            "from wagtail.models import Page\n"
            "Page.objects.get(slug='retry').specific.save_revision().publish()\n",
            env=env,
        )
        started = time.monotonic()
        out = run_worker(quiet, env)
        assert time.monotonic() - started < 60
    assert "purge from edge failed (attempt 1 of 7): PurgeFailed" in out
    assert "ReadTimeout" in out or "timed out" in out
    assert task_rows(quiet)[-1][1] == "READY"  # its retry
    with psycopg.connect(quiet.env["DATABASE_URL"], autocommit=True) as conn:
        conn.execute("DELETE FROM django_tasks_database_dbtaskresult")


ZONE = "0123456789abcdef0123456789abcdef"
TOKEN = "cf-token_for-tests"  # noqa: S105


@pytest.fixture
def cdns(quiet, s3_server, tmp_path):  # noqa: F811
    """Cloudflare (a TLS stand-in reached through HTTPS_PROXY, trusted via REQUESTS_CA_BUNDLE),
    CloudFront (moto's server: AWS_ENDPOINT_URL_CLOUDFRONT) and an HTTP PURGE endpoint, all set at
    once, as a site may; `env` is the environment for the shell and the worker."""
    cert = self_signed_cert(tmp_path, "api.cloudflare.com")
    cloudfront = boto3.client(
        "cloudfront",
        endpoint_url=s3_server.endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
    )
    origin = {"Id": "app", "DomainName": "example.com"}
    origin["CustomOriginConfig"] = {
        "HTTPPort": 80,
        "HTTPSPort": 443,
        "OriginProtocolPolicy": "https-only",
    }
    distribution = cloudfront.create_distribution(
        DistributionConfig={
            "CallerReference": str(time.time()),
            "Comment": "",
            "Enabled": True,
            "Origins": {"Quantity": 1, "Items": [origin]},
            "DefaultCacheBehavior": {
                "TargetOriginId": "app",
                "ViewerProtocolPolicy": "redirect-to-https",
                "ForwardedValues": {"QueryString": False, "Cookies": {"Forward": "none"}},
                "TrustedSigners": {"Enabled": False, "Quantity": 0},
                "MinTTL": 0,
            },
        }
    )["Distribution"]["Id"]
    success = json.dumps({"success": True, "errors": [], "messages": [], "result": {"id": "x"}})
    with recorder(body=success, cert=cert) as cloudflare, recorder() as edge_endpoint:
        env = {
            "CLOUDFLARE_API_TOKEN": TOKEN,
            "CLOUDFLARE_ZONE_ID": ZONE,
            "HTTPS_PROXY": cloudflare.url,
            "REQUESTS_CA_BUNDLE": str(cert[0]),
            "CLOUDFRONT_DISTRIBUTION_ID": distribution,
            "AWS_ENDPOINT_URL_CLOUDFRONT": s3_server.endpoint,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "FRONTEND_CACHE_PURGE_URL": edge_endpoint.url,
        }

        def invalidations():
            listed = cloudfront.list_invalidations(DistributionId=distribution)
            items = listed["InvalidationList"].get("Items", [])
            return [
                sorted(
                    cloudfront.get_invalidation(DistributionId=distribution, Id=item["Id"])[
                        "Invalidation"
                    ]["InvalidationBatch"]["Paths"]["Items"]
                )
                for item in items
            ]

        yield SimpleNamespace(
            env=env,
            cloudflare=cloudflare,
            edge=edge_endpoint,
            distribution=distribution,
            invalidations=invalidations,
        )


def cloudflare_calls(cdns):
    calls = [r for r in cdns.cloudflare.requests if r.method != "CONNECT"]
    for call in calls:
        assert (call.method, call.host, call.path) == (
            "POST",
            "api.cloudflare.com",
            f"/client/v4/zones/{ZONE}/purge_cache",
        )
        assert call.authorization == f"Bearer {TOKEN}"
    return [call.json for call in calls]


def test_cloudflare_cloudfront_and_http_purges_name_every_host(quiet, cdns):
    quiet.shell(
        "from wagtail.models import Page\n"
        "page = Page.objects.get(slug='cdn').specific\n"
        "page.title = 'CDN news'\n"
        "page.save_revision().publish()\n",
        env=cdns.env,
    )
    assert cdns.cloudflare.requests == []  # queued, not sent, by the publishing process
    run_worker(quiet, cdns.env)

    both_hosts = {
        f"https://{host}{path}"
        for host in ("example.com", "www.example.com")
        for path in ("/cdn/", "/")
    }
    # Outside a transaction (this shell) the publish's page save and its page_published signal
    # commit separately: two purges, together naming the page and its parent on both hosts.
    calls = cloudflare_calls(cdns)
    assert 1 <= len(calls) <= 2
    assert {url for call in calls for url in call["files"]} == both_hosts
    # CloudFront invalidates paths in the distribution, which serves both host names.
    invalidations = cdns.invalidations()
    assert {path for paths in invalidations for path in paths} == {"/", "/cdn/"}
    assert {(r.method, f"https://{r.host}{r.path}") for r in cdns.edge.requests} == {
        ("PURGE", url) for url in both_hosts
    }


def test_a_site_wide_change_purges_everything_where_the_backend_can(quiet, cdns):
    quiet.shell(
        "from wagtail.models import Site\n"
        "site = Site.objects.get(hostname='www.example.com')\n"
        "site.site_name = 'Renamed'\n"
        "site.save()\n",
        env=cdns.env,
    )
    run_worker(quiet, cdns.env)
    assert cloudflare_calls(cdns) == [{"purge_everything": True}]
    assert cdns.invalidations()[-1] == ["/*"]
    # ngx_cache_purge has no wildcard: every live page on every host, by name.
    live = ("/", "/about/", "/news/", "/flood/", "/retry/", "/cdn/")
    assert sorted(f"{r.host}{r.path}" for r in cdns.edge.requests) == sorted(
        f"{host}{path}" for host in ("example.com", "www.example.com") for path in live
    )


def test_a_move_purges_old_and_new_urls_and_an_image_the_pages_that_use_it(quiet, cdns):
    edge = cdns.edge
    quiet.shell(
        "from wagtail.models import Page\n"
        "Page.objects.get(slug='retry').move(Page.objects.get(slug='about'), 'last-child')\n",
        env=cdns.env,
    )
    run_worker(quiet, cdns.env)
    assert {(r.host, r.path) for r in edge.requests} == {
        (host, path)
        for host in ("example.com", "www.example.com")
        for path in ("/retry/", "/about/retry/", "/", "/about/")
    }

    # An image in a page's body: changing it purges that page (Wagtail's reference index, which
    # the worker keeps), not everything; a new upload is used by nothing and purges nothing.
    quiet.shell(IMAGE_IN_NEWS)
    run_worker(quiet, {})  # the reference index, without purging
    edge.requests[:], cdns.cloudflare.requests[:] = [], []
    quiet.shell(
        "from wagtail.images.models import Image\n"
        "image = Image.objects.get(title='Harbour')\n"
        "image.title = 'Harbour at night'\n"
        "image.save()\n"
        "Image.objects.create(title='Unused', file=image.file.name, width=8, height=8)\n",
        env=cdns.env,
    )
    run_worker(quiet, cdns.env)
    assert {(r.host, r.path) for r in edge.requests} == {
        ("example.com", "/news/"),
        ("www.example.com", "/news/"),
    }
    assert cloudflare_calls(cdns) == [
        {"files": ["https://example.com/news/", "https://www.example.com/news/"]}
    ]


IMAGE_IN_NEWS = f"""
from django.core.files.images import ImageFile
from io import BytesIO
from wagtail.images.models import Image
from wagtail.models import Page

image = Image.objects.create(title="Harbour", file=ImageFile(BytesIO({png()!r}), name="harbour.png"))
page = Page.objects.get(slug="news").specific
page.body = [("image", {{"image": image, "decorative": True, "alt_text": ""}})]
page.save_revision().publish()
"""
