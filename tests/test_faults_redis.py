"""Faults: a stopped or hung Redis never fails or stalls a page, for every cache alias the pages use
(default, renditions, pagecache), and each cache error is logged on one line.

Each test runs its own redis-server (or a silent TCP listener) on a free port: the shared Redis on
6379 is never touched.
"""

import json
import os
import signal
import time

import pytest
import requests
from conftest import HTTPS, free_port, silent_listener
from redisfaults import redis_server

pytestmark = pytest.mark.slow

PAGES = """
import json
from io import BytesIO

from django.core.files.images import ImageFile
from PIL import Image as PILImage
from wagtail.images.models import Image
from wagtail.models import Site

from home.models import ContentPage, FormField, FormPage

body = [{"type": "heading", "value": "Pictures"}]
for colour in ("teal", "navy", "olive", "maroon"):  # each one a rendition lookup per request
    buffer = BytesIO()
    PILImage.new("RGB", (64, 48), colour).save(buffer, "PNG")
    image = Image.objects.create(title=colour, file=ImageFile(buffer, name=f"{colour}.png"))
    body.append({"type": "image", "value": {"image": image.pk, "decorative": False, "alt_text": colour}})
home = Site.objects.get(is_default_site=True).root_page.specific
gallery = ContentPage(title="Gallery", slug="gallery", body=json.dumps(body))
home.add_child(instance=gallery)
gallery.save_revision().publish()
form = FormPage(title="Contact", slug="contact")
form.form_fields.add(FormField(label="Your name", field_type="singleline"))
home.add_child(instance=form)
form.save_revision().publish()
"""
PATHS = ["/", "/gallery/", "/contact/"]
ROUNDS = 15  # bounded run: 45 page requests per fault


@pytest.fixture(scope="module")
def project(make_module_project):
    project = make_module_project().prepare()
    project.shell(PAGES)
    return project


def stop(process):
    os.killpg(process.pid, signal.SIGTERM)
    process.wait(timeout=10)


def bounded_run(base):
    """Every page ROUNDS times; returns [(path, status, seconds)]."""
    results = []
    for _ in range(ROUNDS):
        for path in PATHS:
            start = time.monotonic()
            response = requests.get(base + path, headers=HTTPS, allow_redirects=False, timeout=10)
            results.append((path, response.status_code, time.monotonic() - start))
    return results


def cache_log_lines(log):
    """Log lines about cache errors; each must be one whole JSON event."""
    lines = [
        line
        for line in log.read_text().splitlines()
        if "Exception ignored" in line or "page cache" in line
    ]
    return [json.loads(line) for line in lines]


def test_stopped_redis_every_page_still_200(project):
    port = free_port()
    redis_url = f"redis://127.0.0.1:{port}/0"
    with redis_server(port) as redis, project.gunicorn(env={"REDIS_URL": redis_url}) as server:
        for path in PATHS:
            requests.get(server.base_url + path, headers=HTTPS, timeout=10)
        hit = requests.get(server.base_url + "/gallery/", headers=HTTPS, timeout=10)
        assert hit.headers["X-Page-Cache"] == "hit"
        prefixes = {key.split(b":")[0] for key in redis.client.keys("*")}
        assert {b"default", b"renditions", b"pagecache"} <= prefixes, "pages use all three aliases"

        stop(redis)
        results = bounded_run(server.base_url)
        failed = [(path, status) for path, status, _ in results if status != 200]
        assert failed == [], f"{len(failed)} of {len(results)} requests failed"

        events = cache_log_lines(server.log)
        assert any(e["name"].startswith("django_redis") and "ConnectionError" in e.get("exc_info", "")
                   for e in events), "django_redis logs ignored errors"  # fmt: skip
        assert any(e["name"].endswith("pagecache") and "ConnectionError" in e["message"]
                   for e in events), "the page cache logs its errors"  # fmt: skip

        # Redis back (empty): the page cache resumes once its pause after an error is over.
        with redis_server(port):
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                response = requests.get(server.base_url + "/gallery/", headers=HTTPS, timeout=10)
                if response.headers.get("X-Page-Cache") == "hit":
                    break
                time.sleep(0.5)
            else:
                pytest.fail("the page cache did not resume after Redis came back")


def test_hung_redis_every_request_completes_well_under_a_second(project):
    with silent_listener() as port:
        env = {"REDIS_URL": f"redis://127.0.0.1:{port}/0"}
        with project.gunicorn(env=env) as server:
            results = bounded_run(server.base_url)
            ready = requests.get(server.base_url + "/readyz/", timeout=10)

        assert [status for _, status, _ in results] == [200] * len(results)
        slowest = max(results, key=lambda result: result[2])
        print(f"hung Redis: {len(results)} requests, slowest {slowest}")
        assert slowest[2] < 0.75, f"slowest request: {slowest}"
        assert ready.status_code == 200 and ready.json()["cache"] == "unavailable"

        # The first cache call to time out opens the breaker (redis_breaker.py); later calls in
        # that process fail at once with ConnectionError, which django_redis logs and ignores.
        events = cache_log_lines(server.log)
        assert any(e["name"].startswith("django_redis") for e in events), "django_redis logs"
        assert any(e["name"].endswith("pagecache") and "TimeoutError" in e["message"]
                   for e in events), "the page cache logs the timeout"  # fmt: skip
