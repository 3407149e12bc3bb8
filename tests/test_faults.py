"""Faults and operations: the s3 + sentry project under gunicorn, with real processes around it.

One bake for the module. Its database lives in a PRIVATE Postgres cluster started here (initdb +
pg_ctl in a temporary directory, on a free loopback port), so it can be stopped and restarted
without touching the Postgres everybody else's tests use. Uploads go to the local S3 server.

- two app instances (A and B) on one database, Redis and bucket;
- 50 slow clients through the shipped nginx config;
- Postgres restarted, then down and back: /readyz/, /healthz/, errors, logs, Sentry;
- a database that accepts connections but never answers, and a Redis that is gone;
- SIGTERM to gunicorn during a slow upload;
- mail over SMTP from MAILERS/EMAIL_URL; Sentry inert without a DSN.
"""

import glob
import gzip
import http.server
import json
import os
import pwd
import re
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time
from contextlib import ExitStack, contextmanager
from types import SimpleNamespace

import brotli
import psycopg
import pytest
import requests
from adminclient import CREATE_SUPERUSER, ORIGIN, AdminClient, png
from aiosmtpd.controller import Controller
from conftest import HTTPS, check, free_port, silent_listener
from nginx import nginx_for
from s3 import s3_server  # noqa: F401

pytestmark = pytest.mark.slow

# ---------------------------------------------------------------------------------------------
# Helpers: a private Postgres, a silent TCP listener, a Sentry ingest endpoint, an SMTP server


def as_postgres(cmd):
    """Postgres refuses to run as root: run its tools as the postgres user when we are root."""
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


@contextmanager
def private_postgres():
    bindir = sorted(glob.glob("/usr/lib/postgresql/*/bin"))[-1]
    tmp = tempfile.mkdtemp(prefix="pg-")
    if os.geteuid() == 0:
        user = pwd.getpwnam("postgres")
        os.chown(tmp, user.pw_uid, user.pw_gid)
    data, port = f"{tmp}/data", free_port()
    check(
        as_postgres([f"{bindir}/initdb", "-D", data, "-U", "postgres", "-A", "trust", "--no-sync"])
    )
    options = f"-p {port} -k {tmp} -c listen_addresses=127.0.0.1 -c fsync=off"
    pg_ctl = [f"{bindir}/pg_ctl", "-D", data, "-w", "-t", "30"]

    def start():
        check(as_postgres([*pg_ctl, "-o", options, "-l", f"{tmp}/log", "start"]))

    def stop():
        # "fast": the server disconnects every client, as a restart or failover does.
        check(as_postgres([*pg_ctl, "-m", "fast", "stop"]))

    start()
    try:
        url = f"postgres://postgres@127.0.0.1:{port}"
        with psycopg.connect(url + "/postgres", autocommit=True) as conn:
            conn.execute("CREATE DATABASE site")
        yield SimpleNamespace(url=url + "/site", start=start, stop=stop)
    finally:
        subprocess.run(as_postgres([*pg_ctl, "-m", "immediate", "stop"]), capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)


@contextmanager
def sentry_ingest():
    """Records what a Sentry SDK posts (envelopes), decompressed."""
    received = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            encoding = self.headers.get("Content-Encoding")
            body = {"gzip": gzip.decompress, "br": brotli.decompress}.get(encoding, bytes)(body)
            received.append((self.path, body.decode(errors="replace")))
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield SimpleNamespace(
            dsn=f"http://public@127.0.0.1:{server.server_port}/1", received=received
        )
    finally:
        server.shutdown()
        server.server_close()


class Mailbox:
    def __init__(self):
        self.messages = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append(envelope)
        return "250 OK"


def get(url, path, **kwargs):
    kwargs.setdefault("timeout", 10)
    return requests.get(url + path, headers=kwargs.pop("headers", HTTPS), **kwargs)


def log_lines(server):
    return server.log.read_text().splitlines()


def assert_one_line_per_event(lines):
    """Every line is a whole event: a JSON record (Django's logging, tracebacks inside it), a
    gunicorn access line or a gunicorn message; no traceback spills over several lines."""
    for line in lines:
        if line.startswith("{"):
            json.loads(line)
        else:
            assert re.match(r'^(\S+ "[A-Z]+ |\[\d{4}-\d\d-\d\d )', line), line


# ---------------------------------------------------------------------------------------------
# The project, its database and its two instances


@pytest.fixture(scope="module")
def stack(make_module_project, s3_server):  # noqa: F811
    with ExitStack() as stack:
        postgres = stack.enter_context(private_postgres())
        sentry = stack.enter_context(sentry_ingest())
        project = make_module_project(storage_backend="s3", error_reporting="sentry")
        policy = project.path / "deploy" / "s3-bucket-policy.json"
        project.env |= s3_server.env(s3_server.new_bucket(policy)) | {"DATABASE_URL": postgres.url}
        project.prepare()
        # The admin's user, and a live page with an unpublished revision (two-instance test).
        project.shell(
            CREATE_SUPERUSER + "from wagtail.models import Site\n"
            "from home.models import ContentPage\n"
            "home = Site.objects.get(is_default_site=True).root_page\n"
            "page = home.add_child(instance=ContentPage(title='Old title', slug='shared'))\n"
            "page.title = 'New title'\n"
            "page.save_revision()\n"
        )
        a = stack.enter_context(project.gunicorn(env={"SENTRY_DSN": sentry.dsn}))
        b = stack.enter_context(project.gunicorn())
        yield SimpleNamespace(project=project, postgres=postgres, sentry=sentry, a=a, b=b)


def test_sentry_is_inert_without_a_dsn(stack):
    # (With a DSN it reports: test_postgres_restart_and_outage sees instance A's 500 arrive.)
    out = stack.project.shell("import sentry_sdk; print(sentry_sdk.get_client().is_active())")
    assert out.splitlines()[-1] == "False"


def test_mail_goes_out_over_smtp_from_email_url(stack):
    mailbox = Mailbox()
    port = free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        stack.project.manage(
            "sendtestemail", "ops@example.org", env={"EMAIL_URL": f"smtp://127.0.0.1:{port}"}
        )
    finally:
        controller.stop()
    [message] = mailbox.messages
    assert message.rcpt_tos == ["ops@example.org"]
    assert message.mail_from == "noreply@example.com"
    assert b"Test email from" in message.content

    # A scheme dj-email-url does not know would silently mean "no TLS": start-up refuses it.
    refused = subprocess.run(
        [stack.project.python, "manage.py", "check"],
        cwd=stack.project.path,
        env=stack.project.env | {"EMAIL_URL": "smtp+tls://user:pw@smtp.example.com:587"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert refused.returncode != 0
    assert "EMAIL_URL" in refused.stderr and "use smtp:// or submission://" in refused.stderr


def test_two_instances_share_database_cache_and_bucket(stack):
    project, a, b = stack.project, stack.a, stack.b
    # Visitors of B see (and cache) the live version of the page with a pending revision.
    page_id = int(
        psycopg.connect(stack.postgres.url)
        .execute("SELECT id FROM wagtailcore_page WHERE slug = 'shared'")
        .fetchone()[0]
    )
    for _ in range(2):
        assert "Old title" in get(b.base_url, "/shared/").text

    admin_a = AdminClient(a.base_url).login()
    response = admin_a.post(f"/admin/bulk/wagtailcore/page/publish/?id={page_id}&next=/admin/")
    assert response.status_code == 302
    # Published on A: B shows it on the very next request.
    assert "New title" in get(b.base_url, "/shared/").text

    # A document uploaded on A is served by B, from the shared bucket.
    response = admin_a.post(
        "/admin/documents/add/",
        {"title": "Minutes"},
        files={"file": ("minutes.txt", b"shared minutes", "text/plain")},
    )
    assert response.status_code == 302, response.text[:3000]
    document_id = (
        psycopg.connect(stack.postgres.url)
        .execute("SELECT id FROM wagtaildocs_document WHERE title = 'Minutes'")
        .fetchone()[0]
    )
    served = get(b.base_url, f"/documents/{document_id}/minutes.txt", allow_redirects=False)
    assert served.status_code == 302
    assert served.headers["Location"].startswith(project.env["AWS_S3_ENDPOINT_URL"])
    assert requests.get(served.headers["Location"], timeout=10).content == b"shared minutes"

    # And so is an image: B's page renders A's upload from the bucket.
    response = admin_a.post(
        "/admin/images/add/",
        {"title": "Shared"},
        files={"file": ("shared.png", png(), "image/png")},
    )
    assert response.status_code == 302, response.text[:3000]
    image_id = (
        psycopg.connect(stack.postgres.url)
        .execute("SELECT id FROM wagtailimages_image WHERE title = 'Shared'")
        .fetchone()[0]
    )
    admin_b = AdminClient(b.base_url).login()
    preview = admin_b.get(f"/admin/images/{image_id}/")
    assert preview.status_code == 200
    rendition = re.search(r'src="(http://127\.0\.0\.1:\d+/[^"]+/images/[^"]+)"', preview.text)
    assert rendition, "B's admin does not show A's image from the bucket"
    assert requests.get(rendition.group(1), timeout=10).status_code == 200


def tls_socket(port):
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    return context.wrap_socket(raw, server_hostname="example.com")


def test_fifty_slow_clients_through_nginx_do_not_delay_a_normal_request(stack):
    a = stack.a
    with nginx_for(stack.project, a.base_url) as proxy, ExitStack() as clients:
        url = proxy.https_url
        assert requests.get(url + "/", headers=HTTPS, verify=proxy.cert, timeout=10).ok
        # 25 clients that never finish their headers, 25 that trickle an upload body. A sync
        # gunicorn worker would be stuck on each; nginx holds them and passes on whole requests.
        for i in range(50):
            sock = clients.enter_context(tls_socket(proxy.https_port))
            if i % 2:
                sock.sendall(b"GET / HTTP/1.1\r\nHost: example.com\r\nX-Slow: ")
            else:
                sock.sendall(
                    b"POST /admin/login/ HTTP/1.1\r\nHost: example.com\r\n"
                    b"Content-Type: application/x-www-form-urlencoded\r\n"
                    b"Content-Length: 100000\r\n\r\nusername=a"
                )
        time.sleep(0.5)  # let nginx accept and read all of them
        timings = []
        for _ in range(5):
            started = time.monotonic()
            response = requests.get(url + "/", headers=HTTPS, verify=proxy.cert, timeout=10)
            timings.append(time.monotonic() - started)
            assert response.status_code == 200
        print(f"behind 50 slow clients: slowest of 5 normal requests {max(timings):.3f} s")
        assert max(timings) < 1, f"a normal request took {max(timings):.2f} s"


def test_postgres_restart_and_outage(stack):
    a, postgres = stack.a, stack.postgres
    pages = ("/", "/shared/", "/search/?query=title", "/admin/login/")
    # Every worker holds a persistent connection (CONN_MAX_AGE).
    for _ in range(5):
        for path in pages:
            assert get(a.base_url, path).status_code == 200, path

    # Restart: the server drops every connection. The next requests reconnect (health checks):
    # not one error.
    postgres.stop()
    postgres.start()
    statuses = [get(a.base_url, path).status_code for _ in range(5) for path in pages]
    print(f"after a Postgres restart: {len(statuses)} requests, statuses {set(statuses)}")
    assert statuses == [200] * len(statuses)

    # Down: /readyz/ says 503 while /healthz/ stays 200; requests that need it fail, visibly.
    mark = len(log_lines(a))
    postgres.stop()
    try:
        for _ in range(3):
            ready = get(a.base_url, "/readyz/", headers={})
            assert ready.status_code == 503
            assert ready.json()["database"] == "unavailable"
            assert get(a.base_url, "/healthz/", headers={}).status_code == 200
        assert get(a.base_url, "/search/?query=title").status_code == 500
    finally:
        postgres.start()
    back = time.monotonic()
    while get(a.base_url, "/readyz/", headers={}).status_code != 200:
        assert time.monotonic() - back < 5, "/readyz/ not 200 within 5 s of Postgres returning"
        time.sleep(0.1)
    print(f"/readyz/ 200 again {time.monotonic() - back:.2f} s after Postgres was back")
    statuses = [get(a.base_url, path).status_code for _ in range(3) for path in pages]
    assert statuses == [200] * len(statuses)

    # The error is one JSON line on stdout, traceback included; Sentry got it too.
    lines = log_lines(a)[mark:]
    assert_one_line_per_event(lines)
    errors = [json.loads(line) for line in lines if '"django.request"' in line]
    assert any(
        e["levelname"] == "ERROR" and "OperationalError" in e.get("exc_info", "") for e in errors
    ), lines
    deadline = time.monotonic() + 10
    while not any("OperationalError" in body for _, body in stack.sentry.received):
        assert time.monotonic() < deadline, "Sentry received no event for the 500"
        time.sleep(0.2)
    assert all(path == "/api/1/envelope/" for path, _ in stack.sentry.received)


def test_a_hung_database_and_a_dead_redis_are_answered_and_logged(stack):
    project = stack.project
    with silent_listener() as hung_port:
        env = {
            "DATABASE_URL": f"postgres://postgres@127.0.0.1:{hung_port}/site",
            "REDIS_URL": f"redis://127.0.0.1:{free_port()}/0",  # nothing listens there
            "WEB_CONCURRENCY": "1",
        }
        with project.gunicorn(env=env) as server:
            # connect_timeout: readyz answers 503 instead of hanging until gunicorn kills it.
            started = time.monotonic()
            ready = get(server.base_url, "/readyz/", headers={}, timeout=20)
            print(
                f"/readyz/ with a hung database: {ready.status_code} in {time.monotonic() - started:.2f} s"
            )
            assert ready.status_code == 503
            assert ready.json() == {"database": "unavailable", "cache": "unavailable"}
            assert get(server.base_url, "/healthz/", headers={}).status_code == 200
            assert get(server.base_url, "/search/?query=x", timeout=20).status_code == 500
            lines = log_lines(server)
    assert_one_line_per_event(lines)
    events = [json.loads(line) for line in lines if line.startswith("{")]
    assert any(e["name"] == "django.request" and e["levelname"] == "ERROR" for e in events)
    # The cache failure is visible, on its line.
    assert any(
        e["name"].startswith(("django_redis", f"{project.slug}."))
        and "redis" in json.dumps(e).lower()
        for e in events
    ), lines


def test_sigterm_lets_an_in_flight_request_finish(stack):
    """Graceful shutdown: a visitor's slow upload that is in flight when gunicorn gets SIGTERM
    still gets its whole response; then gunicorn exits."""
    b = stack.b
    csrf = AdminClient(b.base_url)
    csrf.get("/admin/login/")
    token = csrf.session.cookies["csrftoken"]
    body = f"csrfmiddlewaretoken={token}&username=nobody&password=wrong-password".encode()
    head = (
        "POST /admin/login/ HTTP/1.1\r\nHost: example.com\r\nX-Forwarded-Proto: https\r\n"
        f"Origin: {ORIGIN}\r\nCookie: csrftoken={token}\r\nConnection: close\r\n"
        "Content-Type: application/x-www-form-urlencoded\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    port = int(b.base_url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(head + body[:10])
        time.sleep(0.5)  # a worker has the request and waits for the rest of the body
        os.kill(b.pid, signal.SIGTERM)
        for i in range(10, len(body), 10):  # the rest arrives over about 2 seconds
            time.sleep(0.25)
            sock.sendall(body[i : i + 10])
        response = b""
        while chunk := sock.recv(65536):
            response += chunk
    status = response.split(b"\r\n", 1)[0]
    assert status == b"HTTP/1.1 200 OK", response[:500]
    assert b'name="password"' in response  # the login form again, with its error
    assert b.wait(timeout=30) == 0
