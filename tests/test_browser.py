"""Layer 5, browser: an editor and a visitor in Debian's chromium, driven by Playwright.

For each storage backend a baked project runs under gunicorn with production settings (Postgres,
Redis, hashed static files; s3: the local S3 server with the shipped bucket policy; filesystem:
nginx in front serving media/images). An editor logs in to the admin, uploads an image and a
document through the upload forms, creates and publishes a ContentPage whose StreamField body
shows both; an anonymous visitor then sees the image rendered and downloads the document.

Throughout, every request must succeed, the console must stay free of errors, and the
Content-Security-Policy (public and admin) must not be violated once. Screenshots of each step go
to test-artifacts/<storage>/ (CI uploads them).
"""

import re
import shutil
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from adminclient import png
from conftest import TEMPLATE, free_port
from nginx import nginx_for
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import expect, sync_playwright
from s3 import s3_server  # noqa: F401

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-gpu",
]
ARTIFACTS = TEMPLATE / "test-artifacts"
ADMIN_USER, ADMIN_PASSWORD = "editor", "a-long-test-password-0123"
DOCUMENT_BYTES = b"Annual report: the harbour reopened in May.\n" * 20


class Watcher:
    """Collects everything that goes wrong in a browser context: failed or 4xx/5xx requests,
    console errors, uncaught page errors, and CSP violations (enforced or report-only)."""

    CSP_LISTENER = """
        document.addEventListener("securitypolicyviolation", (e) => window.__cspViolation({
            page: location.href, directive: e.effectiveDirective, blocked: e.blockedURI,
            disposition: e.disposition, sample: e.sample, source: `${e.sourceFile}:${e.lineNumber}`,
        }));
    """
    # The page editor autosaves while the editor works; a half-filled form (a block added, its
    # image not chosen yet) is answered with 400 {"error_code": "validation_error"} by design.
    AUTOSAVE = re.compile(r"/admin/pages/(add/\w+/\w+/\d+|\d+/edit)/$")

    def __init__(self, context):
        self.problems, self.console_errors = [], []
        self.responses = []  # (status, url) of every response
        self.autosave_rejected = set()  # URLs
        context.on("requestfailed", self.on_request_failed)
        context.on("response", self.on_response)
        context.on("console", self.on_console)
        context.on("weberror", lambda error: self.problems.append(f"page error: {error.error}"))
        context.expose_binding(
            "__cspViolation", lambda source, v: self.problems.append(f"CSP violation: {v}")
        )
        context.add_init_script(self.CSP_LISTENER)

    def on_request_failed(self, request):
        # Aborted, not failed: a download is handed to the download manager, and leaving a page
        # cancels its background calls in flight (the admin's editing-session ping, autosave).
        # Static files (stylesheet, script, image, font) are never excused.
        aborted = request.failure == "net::ERR_ABORTED"
        if aborted and request.resource_type in ("document", "fetch", "xhr"):
            return
        self.problems.append(f"request failed: {request.method} {request.url} {request.failure}")

    def on_response(self, response):
        self.responses.append((response.status, response.url))
        if response.status < 400:
            return
        request = response.request
        if self.autosave_rejection(response):
            self.autosave_rejected.add(response.url)
            return
        self.problems.append(f"HTTP {response.status}: {request.method} {response.url}")

    def autosave_rejection(self, response):
        if not (
            response.status == 400
            and response.request.method == "POST"
            and self.AUTOSAVE.search(urlsplit(response.url).path)
            and response.headers.get("content-type") == "application/json"
        ):
            return False
        try:
            return response.json()["error_code"] == "validation_error"
        except PlaywrightError:  # the body is gone once the editor has moved on to another page
            return True

    def on_console(self, message):
        if message.type == "error" or "Content Security Policy" in message.text:
            self.console_errors.append(message)

    def all_problems(self):
        console = [
            f"console {m.type}: {m.text} ({m.location['url']}:{m.location['lineNumber']})"
            for m in self.console_errors
            if not (  # the browser's own log line for an autosave rejection allowed above
                m.location["url"] in self.autosave_rejected and "status of 400" in m.text
            )
        ]
        return self.problems + console


@pytest.fixture(scope="session")
def browser():
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def shoot(page, folder, name):
    folder.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=folder / f"{name}.png", full_page=True)


@contextmanager
def serve(project, storage_backend):
    """Yield (base URL, extra request headers) of the running site, as a browser reaches it.

    filesystem: nginx with the shipped deploy/nginx.conf terminates TLS, serves static files and
    media/images itself and proxies the rest to gunicorn. s3: gunicorn alone (the page's images
    come from the S3 server, which speaks plain HTTP here: an HTTPS page would block them as mixed
    content), with the X-Forwarded-Proto header a TLS-terminating proxy would add.
    """
    if storage_backend == "filesystem":
        gunicorn_port = free_port()
        with nginx_for(project, f"http://127.0.0.1:{gunicorn_port}") as proxy:
            env = {"DJANGO_CSRF_TRUSTED_ORIGINS": proxy.https_url}
            with project.gunicorn(port=gunicorn_port, env=env):
                yield proxy.https_url, {}
    else:
        port = free_port()
        env = {"DJANGO_CSRF_TRUSTED_ORIGINS": f"http://127.0.0.1:{port}"}
        with project.gunicorn(port=port, env=env) as server:
            yield server.base_url, {"X-Forwarded-Proto": "https"}


@pytest.mark.slow
@pytest.mark.parametrize("storage_backend", ["filesystem", "s3"])
def test_editor_publishes_a_page_and_a_visitor_sees_it(
    make_project, browser, request, tmp_path, storage_backend
):
    project = make_project(storage_backend=storage_backend)
    project.env["DJANGO_ALLOWED_HOSTS"] = "127.0.0.1"
    if storage_backend == "s3":
        s3 = request.getfixturevalue("s3_server")
        bucket = s3.new_bucket(project.path / "deploy" / "s3-bucket-policy.json")
        project.env |= s3.env(bucket)
    project.prepare()
    home_id = project.shell(
        "from django.contrib.auth.models import User\n"
        "from home.models import HomePage\n"
        f"User.objects.create_superuser({ADMIN_USER!r}, 'editor@example.com', {ADMIN_PASSWORD!r})\n"
        "print(HomePage.objects.get().id)"
    )
    home_id = int(home_id.split()[-1])  # shell prints its auto-import summary first
    shots = ARTIFACTS / storage_backend
    shutil.rmtree(shots, ignore_errors=True)
    image_file = tmp_path / "harbour.png"
    image_file.write_bytes(png(640, 360))
    document_file = tmp_path / "annual-report.txt"
    document_file.write_bytes(DOCUMENT_BYTES)

    with serve(project, storage_backend) as (base, headers):
        options = {"extra_http_headers": headers, "ignore_https_errors": True}
        editor = browser.new_context(viewport={"width": 1280, "height": 900}, **options)
        visitor = browser.new_context(accept_downloads=True, **options)
        editor_watch, visitor_watch = Watcher(editor), Watcher(visitor)
        page = editor.new_page()
        public = visitor.new_page()
        for p in (page, public):
            p.set_default_timeout(20_000)
        try:
            # The editor logs in.
            page.goto(base + "/admin/login/")
            page.fill("#id_username", ADMIN_USER)
            page.fill("#id_password", ADMIN_PASSWORD)
            page.click("button[type=submit]")
            expect(page).to_have_url(base + "/admin/")
            shoot(page, shots, "1-dashboard")

            # Uploads an image and a document with the admin's upload forms.
            for kind, upload in (("images", image_file), ("documents", document_file)):
                page.goto(f"{base}/admin/{kind}/multiple/add/")
                page.set_input_files("#fileupload", upload)
                expect(page.locator("#upload-list .upload-success")).to_have_count(1)
                shoot(page, shots, f"2-{kind}-uploaded")

            # Creates a ContentPage under the home page with an image and a document block.
            page.goto(f"{base}/admin/pages/add/home/contentpage/{home_id}/")
            page.fill("#id_title", "Annual report")
            add_block(page, "Image", "Choose an image", "harbour")
            add_block(page, "Document", "Choose a document", "annual-report")
            # Typed last, so the form is complete at its last edit whenever the autosaves of the
            # half-filled form ran (they are rejected; a run under load once waited on one).
            page.get_by_label("Alt text").fill("The harbour at dawn")
            shoot(page, shots, "3-page-editor")

            # Publishes it (the action under the footer's "more actions" toggle) once autosave
            # has stored the draft, else the publish would create the page a second time. (The
            # autosave is a background request: it gets the page's 20 s, not expect's 5 s.)
            expect(page.locator("#page-edit-form")).to_have_attribute(
                "action", re.compile("/edit/$"), timeout=20_000
            )
            expect(page.locator("#w-autosave-indicator")).to_have_attribute(
                "data-w-autosave-state-value", "saved", timeout=20_000
            )
            page.locator("footer [data-w-dropdown-target=toggle]").click()
            page.click("button[name=action-publish]")
            expect(page.locator(".messages .success")).to_contain_text("published")
            shoot(page, shots, "4-published")

            # An anonymous visitor sees the page with the image rendered...
            public.goto(base + "/annual-report/")
            expect(public.locator("h1")).to_have_text("Annual report")
            image = public.locator("figure img")
            expect(image).to_have_attribute("alt", "The harbour at dawn")
            image.scroll_into_view_if_needed()
            image.evaluate("img => img.decode()")  # waits until loaded; rejects if it cannot be
            assert image.evaluate("img => img.naturalWidth") == 640
            image_src = image.evaluate("img => img.currentSrc")
            shoot(public, shots, "5-visitor-page")
            # ...and downloads the document.
            with public.expect_download() as download_info:
                public.click("a.document")
            download = download_info.value
            assert download.suggested_filename.startswith("annual-report")
            assert Path(download.path()).read_bytes() == DOCUMENT_BYTES
            document_url = download.url
        except Exception:
            shoot(page, shots, "failed-editor")
            shoot(public, shots, "failed-visitor")
            raise
        finally:
            editor.close()
            visitor.close()

    problems = editor_watch.all_problems() + visitor_watch.all_problems()
    assert not problems, "\n".join(problems)
    # The watchers saw the traffic they judge.
    for watch in (editor_watch, visitor_watch):
        assert any("/static/" in url and status == 200 for status, url in watch.responses)
    assert (200, image_src) in visitor_watch.responses
    if storage_backend == "s3":
        # A stable, unsigned rendition URL in the bucket; the document via a signed URL.
        assert image_src.startswith(f"{s3.endpoint}/{bucket}/images/")
        assert "X-Amz-Signature" not in image_src
        assert "X-Amz-Signature=" in document_url
    else:
        # nginx serves the rendition from media/images; Wagtail serves the document.
        assert image_src.startswith(base + "/media/images/")
        assert document_url.startswith(base + "/documents/")


def add_block(page, block, choose, title):
    """Append a StreamField block of type `block` to the body and pick `title` in its chooser."""
    page.locator("button[title='Insert a block']").last.click()
    page.get_by_role("option", name=block, exact=True).click()
    page.get_by_role("button", name=choose).last.click()
    page.locator(".modal a[data-chooser-modal-choice]", has_text=title).click()
    expect(page.locator("[data-chooser-title]", has_text=title)).to_be_visible()
