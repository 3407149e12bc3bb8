"""Security headers, cookies and HTTPS detection of a baked project under gunicorn (production
settings), as a browser or a proxy in front would see them.

The Mozilla HTTP Observatory rules these assertions follow are named next to them (rule ids from
its scoring.md); the template README lists them.
"""

import re
from http.cookies import SimpleCookie
from types import SimpleNamespace

import pytest
import requests
from adminclient import CREATE_SUPERUSER, AdminClient
from conftest import HTTPS

pytestmark = pytest.mark.slow

STRICT = (
    "default-src 'self'; img-src 'self'; object-src 'none'; base-uri 'self'; "
    "form-action 'self'; frame-ancestors 'self'"
)
ADMIN = (
    "default-src 'self'; img-src 'self' data: blob:; object-src 'none'; base-uri 'self'; "
    "form-action 'self'; frame-ancestors 'self'; script-src 'self' 'unsafe-inline'; "
    "style-src 'self' 'unsafe-inline'"
)


def directives(policy):
    return {d.split()[0]: d.split()[1:] for d in policy.split("; ")}


@pytest.fixture(scope="module")
def site(make_module_project):
    project = make_module_project().prepare()
    # The admin's user, and a document to check that Wagtail's own policy for downloads survives.
    document_url = project.shell(
        CREATE_SUPERUSER + "from django.core.files.base import ContentFile\n"
        "from wagtail.documents.models import Document\n"
        "d = Document(title='Report')\n"
        "d.file.save('report.txt', ContentFile(b'hello'), save=False)\n"
        "d.save()\n"
        "print(d.url)\n"
    ).splitlines()[-1]
    with project.gunicorn() as server:
        yield SimpleNamespace(project=project, server=server, document_url=document_url)


def get(server, path, headers=HTTPS, **kwargs):
    return requests.get(server.base_url + path, headers=headers, timeout=10, **kwargs)


def test_public_pages_carry_the_security_headers(site):
    server = site.server
    for path in ("/", "/search/?query=x", "/no-such-page/"):
        response = get(server, path)
        assert response.status_code == (404 if "no-such" in path else 200), path
        h = response.headers
        # hsts-implemented-max-age-at-least-six-months (and what hstspreload.org requires).
        assert h["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains; preload"
        # csp-implemented-with-no-unsafe: the strict policy, nothing inline, no eval.
        assert h["Content-Security-Policy"] == STRICT, path
        assert "unsafe" not in h["Content-Security-Policy"]
        # x-frame-options-implemented-via-csp (frame-ancestors) plus the header for old browsers.
        assert h["X-Frame-Options"] == "DENY"
        # x-content-type-options-nosniff, referrer-policy-private.
        assert h["X-Content-Type-Options"] == "nosniff"
        assert h["Referrer-Policy"] == "same-origin"
        assert h["Cross-Origin-Opener-Policy"] == "same-origin"
        # cross-origin-resource-sharing-not-implemented: no CORS header grants other sites reads.
        assert "Access-Control-Allow-Origin" not in h
    # sri-not-implemented-but-all-scripts-loaded-from-secure-origin: no script from elsewhere.
    page = get(server, "/").text
    assert not re.search(r"<script[^>]+src=\"(https?:)?//", page)


def test_hsts_max_age_comes_from_the_environment(site):
    # Read in a fresh process, as a deploy with DJANGO_SECURE_HSTS_SECONDS=300 would.
    out = site.project.shell(
        "from django.conf import settings; print(settings.SECURE_HSTS_SECONDS)",
        env={"DJANGO_SECURE_HSTS_SECONDS": "300"},
    )
    assert out.splitlines()[-1] == "300"


def cookie(response, name):
    for header in response.raw.headers.getlist("Set-Cookie"):
        parsed = SimpleCookie(header)
        if name in parsed:
            return parsed[name], header
    raise AssertionError(f"{name} not set: {response.headers}")


def test_cookies_are_secure_httponly_and_samesite(site):
    # cookies-secure-with-httponly-sessions-and-samesite
    server = site.server
    admin = AdminClient(server.base_url)
    login_page = admin.get("/admin/login/")
    csrf, _ = cookie(login_page, "csrftoken")
    response = admin.post("/admin/login/", {"username": "admin", "password": "admin-pw-for-tests"})
    assert response.status_code == 302
    session, _ = cookie(response, "sessionid")
    for morsel in (csrf, session):
        assert morsel["secure"] is True
        assert morsel["httponly"] is True
        assert morsel["samesite"] == "Lax"


def test_https_is_recognised_behind_a_proxy(site):
    server = site.server
    # The proxy says the visitor used HTTPS: the page itself, no redirect (no loop).
    assert get(server, "/", allow_redirects=False).status_code == 200
    # Plain HTTP (or a proxy saying so): one redirect to the same URL on https.
    for headers in ({"Host": "example.com"}, {"Host": "example.com", "X-Forwarded-Proto": "http"}):
        response = get(server, "/search/?query=a", headers=headers, allow_redirects=False)
        assert response.status_code == 301
        assert response.headers["Location"] == "https://example.com/search/?query=a"
    # Health probes over plain HTTP, by IP, are answered, not redirected.
    for probe in ("/healthz/", "/readyz/"):
        response = get(server, probe, headers={"Host": "10.0.0.7"}, allow_redirects=False)
        assert response.status_code == 200, probe


def test_the_admin_gets_its_own_policy_and_public_pages_stay_strict(site):
    server, document_url = site.server, site.document_url
    assert get(server, "/admin/login/").headers["Content-Security-Policy"] == ADMIN

    admin = AdminClient(server.base_url).login()
    for path in ("/admin/", "/admin/pages/", "/admin/images/multiple/add/"):
        response = admin.get(path)
        assert response.status_code == 200, path
        assert response.headers["Content-Security-Policy"] == ADMIN, path
    # An editor on a public page (with the userbar) still gets the strict policy.
    page = admin.get("/")
    assert "wagtail-userbar" in page.text
    assert page.headers["Content-Security-Policy"] == STRICT
    relaxed = directives(ADMIN)
    assert relaxed["script-src"] == ["'self'", "'unsafe-inline'"]
    assert "'unsafe-inline'" not in STRICT

    # Wagtail's document view keeps its own, stricter policy and sends a download.
    document = get(server, document_url)
    assert document.status_code == 200 and document.content == b"hello"
    assert document.headers["Content-Security-Policy"] == "default-src 'none'"
    assert document.headers["Content-Disposition"].startswith("attachment")
