"""Layer: storage. Uploaded files for both storage_backend values, through the shipped nginx.conf.

One bake per storage value: each runs migrate + collectstatic, gets its content (an admin, a
private collection, documents, an image and a rendition) from a Django shell with production
settings, and is served by gunicorn behind a real nginx (tests/nginx.py) with TLS, so the admin
session cookie (Secure) and X-Forwarded-Proto are real. The s3 bake stores its files on a local
S3 server (moto's server mode, tests/s3.py) with the shipped bucket policy applied.
"""

import json
import re
import struct
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from conftest import HTTPS, private_redis
from nginx import nginx_for
from s3 import s3_server  # noqa: F401  (session fixture)

pytestmark = pytest.mark.slow
# One bake per storage value: pytest --dist loadgroup keeps each value's tests on one worker.
FILESYSTEM = pytest.mark.xdist_group("storage-filesystem")
S3 = pytest.mark.xdist_group("storage-s3")
BOTH = [
    pytest.param("filesystem", marks=FILESYSTEM, id="filesystem"),
    pytest.param("s3", marks=S3, id="s3"),
]

PASSWORD = "storage-layer-Pa55word"
UNSAFE_EXTENSIONS = ["html", "htm", "svg", "js", "xml", "xhtml"]

# Runs in a Django shell with production settings; prints what the tests need as JSON.
CONTENT = f"""
import io, json
from django.contrib.auth import get_user_model
from django.core.files.base import ContentFile
from django.core.files.images import ImageFile
from PIL import Image as PILImage
from wagtail.documents import get_document_model
from wagtail.images import get_image_model
from wagtail.models import Collection, CollectionViewRestriction

get_user_model().objects.create_superuser("admin", "admin@example.com", {PASSWORD!r})
root = Collection.get_first_root_node()
private = root.add_child(name="Private")
CollectionViewRestriction.objects.create(
    collection=private, restriction_type=CollectionViewRestriction.LOGIN
)
Document = get_document_model()
def document(title, name, body, collection=root):
    return Document.objects.create(
        title=title, file=ContentFile(body, name=name), collection=collection
    )
first = document("First", "report.txt", b"first report")
second = document("Second", "report.txt", b"second report")
pdf = document("Guide", "guide.pdf", b"%PDF-1.4 a pdf that must not open inline")
secret = document("Secret", "secret.txt", b"for editors only", collection=private)
png = io.BytesIO()
PILImage.new("RGB", (200, 100), "red").save(png, "PNG")
image = get_image_model().objects.create(title="Red", file=ImageFile(png, name="red.png"))
rendition = image.get_rendition("fill-100x50")
from home.models import ContentPage, HomePage
gallery = ContentPage(title="Gallery", slug="gallery", body=json.dumps([
    {{"type": "image", "value": {{"image": image.id, "alt_text": "Red", "decorative": False}}}}
]))
HomePage.objects.get().add_child(instance=gallery)
print(json.dumps({{
    "root_collection": root.id,
    "documents": {{
        d.title: {{"url": d.url, "name": d.file.name}}
        for d in (first, second, pdf, secret)
    }},
    "original": {{"name": image.file.name, "url": image.file.url}},
    "rendition": {{"name": rendition.file.name, "url": rendition.url}},
}}))
"""


def make_site(project, proxy):
    content = json.loads(project.shell(CONTENT).strip().splitlines()[-1])
    return project, proxy, content


def get(proxy, path, session=None, **kwargs):
    """GET through nginx over HTTPS as the browser of https://example.com would."""
    kwargs = {
        "headers": HTTPS,
        "verify": proxy.cert,
        "timeout": 20,
        "allow_redirects": False,
    } | kwargs
    return (session or requests).get(proxy.https_url + path, **kwargs)


def admin_session(proxy):
    """A session logged in to the Wagtail admin through nginx."""
    session = requests.Session()
    session.headers.update(HTTPS | {"Referer": "https://example.com/admin/login/"})
    get(proxy, "/admin/login/", session)
    response = session.post(
        proxy.https_url + "/admin/login/",
        verify=proxy.cert,  # per request: REQUESTS_CA_BUNDLE would override session.verify
        data={
            "username": "admin",
            "password": PASSWORD,
            "csrfmiddlewaretoken": session.cookies["csrftoken"],
        },
        allow_redirects=False,
        timeout=20,
    )
    assert response.status_code == 302, response.text[-2000:]
    return session


def upload(proxy, session, site_content, name, body, kind="documents"):
    """Upload through the real admin form (/admin/documents/add/ or /admin/images/add/)."""
    return session.post(
        proxy.https_url + f"/admin/{kind}/add/",
        data={
            "title": name,
            "collection": site_content["root_collection"],
            "csrfmiddlewaretoken": session.cookies["csrftoken"],
        },
        files={"file": (name, body)},
        verify=proxy.cert,
        allow_redirects=False,
        timeout=60,
    )


def png_size(data):
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    return struct.unpack(">II", data[16:24])


@pytest.fixture(scope="module")
def fs_site(make_module_project):
    project = make_module_project(storage_backend="filesystem").prepare()
    with project.gunicorn() as server, nginx_for(project, server.base_url) as proxy:
        proxy.upstream_log = server.log
        yield make_site(project, proxy)


@pytest.fixture(scope="module")
def s3_site(make_module_project, s3_server, worker_id):  # noqa: F811
    project = make_module_project(storage_backend="s3")
    # Not the Redis database fs_site uses: both sites have an image 1 with the same cache keys.
    project.env["REDIS_URL"] = private_redis(worker_id, "function")
    bucket = s3_server.new_bucket(project.path / "deploy" / "s3-bucket-policy.json")
    project.env |= s3_server.env(bucket)
    project.bucket, project.s3 = bucket, s3_server
    project.prepare()
    with project.gunicorn() as server, nginx_for(project, server.base_url) as proxy:
        proxy.upstream_log = server.log
        yield make_site(project, proxy)


@pytest.fixture
def site(request):
    """The site of the storage value the test is parametrized with (indirect=True, BOTH)."""
    return request.getfixturevalue({"filesystem": "fs_site", "s3": "s3_site"}[request.param])


# ---------------------------------------------------------------------------------------------
# filesystem: nginx serves static files and images, never documents; Django serves documents


@FILESYSTEM
def test_nginx_serves_static_files_itself_with_long_cache(fs_site):
    project, proxy, _ = fs_site
    home = get(proxy, "/")
    assert home.status_code == 200
    hashed = re.search(r'href="(/static/css/site\.[0-9a-f]{12}\.css)"', home.text).group(1)

    response = get(proxy, hashed, headers=HTTPS | {"Accept-Encoding": "gzip"})
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "public, max-age=315360000, immutable"
    assert response.headers["Content-Encoding"] == "gzip"  # collectstatic's .gz, via gzip_static
    assert response.headers["Server"].startswith("nginx")
    assert (
        response.text
        == (project.path / "staticfiles" / hashed.removeprefix("/static/")).read_text()
    )
    # The unhashed copy can change with the next deploy: short cache.
    unhashed = get(proxy, "/static/css/site.css")
    assert unhashed.status_code == 200
    assert unhashed.headers["Cache-Control"] == "public, max-age=60"

    upstream = proxy.upstream_log.read_text()
    assert '"GET / HTTP/1.1" 200' in upstream  # gunicorn logs what nginx passes on...
    assert "/static/" not in upstream  # ...and static files never reach it


@FILESYSTEM
def test_nginx_serves_renditions_not_originals_or_documents(fs_site):
    project, proxy, content = fs_site
    rendition = content["rendition"]
    assert rendition["url"].startswith("/media/images/")
    response = get(proxy, rendition["url"])
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "image/png"
    assert png_size(response.content) == (100, 50)
    assert response.headers["Cache-Control"] == "public, max-age=2592000"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Content-Security-Policy"] == "default-src 'none'"
    assert "/media/" not in proxy.upstream_log.read_text()

    # Files that exist on disk but are not for visitors: originals and, above all, documents
    # (a direct URL would bypass collection privacy).
    media = project.path / "media"
    for name in [content["original"]["name"]] + [d["name"] for d in content["documents"].values()]:
        assert (media / name).is_file(), name
        response = get(proxy, f"/media/{name}")
        assert response.status_code == 404, name
        assert name.split("/")[-1].encode() not in response.content
    assert "/media/" not in proxy.upstream_log.read_text()


@FILESYSTEM
def test_documents_are_downloads_with_a_csp_served_by_wagtail(fs_site):
    _, proxy, content = fs_site
    bodies = {"First": b"first report", "Second": b"second report", "Guide": b"%PDF-1.4"}
    for title, body in bodies.items():
        document = content["documents"][title]
        assert document["url"].startswith("/documents/")
        response = get(proxy, document["url"])
        assert response.status_code == 200, title
        assert response.content.startswith(body), title
        # Every type is a download, PDFs too (Wagtail would open PDFs inline by default).
        filename = document["name"].split("/")[-1]
        assert response.headers["Content-Disposition"].startswith(
            f'attachment; filename="{filename}"'
        ), title
        assert response.headers["Content-Security-Policy"] == "default-src 'none'", title
        assert response.headers["X-Content-Type-Options"] == "nosniff", title
    assert "GET /documents/" in proxy.upstream_log.read_text()


@pytest.mark.parametrize("site", BOTH, indirect=True)
def test_private_documents_need_a_login(site):
    project, proxy, content = site
    secret = content["documents"]["Secret"]
    anonymous = get(proxy, secret["url"])
    assert anonymous.status_code == 302
    location = urlsplit(anonymous.headers["Location"])
    assert location.path == "/_util/login/" and not location.netloc, anonymous.headers["Location"]
    assert "Amz" not in anonymous.headers["Location"]
    assert b"for editors only" not in anonymous.content

    session = admin_session(proxy)
    editor = get(proxy, secret["url"], session)
    if project.answers["storage_backend"] == "filesystem":
        assert editor.status_code == 200
        assert editor.content == b"for editors only"
    else:  # a signed link to the bucket, handed out only now
        assert editor.status_code == 302
        assert requests.get(editor.headers["Location"], timeout=20).content == b"for editors only"


@FILESYSTEM
def test_proxy_headers_https_and_redirects(fs_site):
    _, proxy, _ = fs_site
    # nginx overwrites a client's X-Forwarded-Proto: Django still sees HTTPS (no redirect).
    spoofed = get(proxy, "/", headers=HTTPS | {"X-Forwarded-Proto": "http"})
    assert spoofed.status_code == 200
    assert "Strict-Transport-Security" in spoofed.headers
    # Plain HTTP: nginx redirects to HTTPS itself, except the probes.
    plain = requests.get(
        proxy.http_url + "/admin/",
        headers={"Host": "example.com"},
        allow_redirects=False,
        timeout=10,
    )
    assert plain.status_code == 301
    assert plain.headers["Location"] == "https://example.com/admin/"
    for probe in ("/healthz/", "/readyz/"):
        response = requests.get(proxy.http_url + probe, headers={"Host": "10.0.0.7"}, timeout=10)
        assert response.status_code == 200, probe


@FILESYSTEM
def test_upload_limit_matches_wagtails(fs_site):
    """nginx lets through everything Wagtail accepts, so editors see Wagtail's message."""
    _, proxy, content = fs_site
    session = admin_session(proxy)
    limit = 10 * 1024 * 1024  # WAGTAILDOCS_MAX_UPLOAD_SIZE
    accepted = upload(proxy, session, content, "largest.txt", b"a" * limit)
    assert accepted.status_code == 302, accepted.text[-2000:]
    too_big = upload(proxy, session, content, "too-big.txt", b"a" * (limit + 1))
    assert too_big.status_code == 200
    assert "This file is too big" in too_big.text
    huge = upload(proxy, session, content, "huge.txt", b"a" * (12 * 1024 * 1024 + 1))
    assert huge.status_code == 413
    assert "nginx" in huge.text


# ---------------------------------------------------------------------------------------------
# Both storages


@pytest.mark.parametrize("site", BOTH, indirect=True)
def test_unsafe_document_types_are_refused(site):
    _, proxy, content = site
    session = admin_session(proxy)
    for extension in UNSAFE_EXTENSIONS:
        response = upload(
            proxy, session, content, f"evil.{extension}", b"<script>alert(1)</script>"
        )
        assert response.status_code == 200, extension  # the form again, not a redirect
        assert f"File extension “{extension}” is not allowed" in response.text, extension
    # The same form takes an allowed type.
    ok = upload(proxy, session, content, "notes.txt", b"plain text")
    assert ok.status_code == 302

    # SVG images are off by default: the image form refuses them too.
    svg = b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'
    response = upload(proxy, session, content, "evil.svg", svg, kind="images")
    assert response.status_code == 200
    assert "Not a supported image format" in response.text


# One more shell per bake, with two overrides production reads from the environment: the serve
# method (privacy check W001) and, for s3, a CDN domain.
PROBE_ENV = {"WAGTAILDOCS_SERVE_METHOD": "direct", "AWS_S3_CUSTOM_DOMAIN": "media.example.com"}
PROBE = """
import json
from django.conf import settings
from django.core.checks import run_checks
from django.core.files.storage import storages
from django.test import override_settings

def warnings():
    return [m for m in run_checks(include_deployment_checks=True) if m.id.endswith(".W001")]

found = {"env": [[m.id, m.msg, m.hint] for m in warnings()]}
for method in (None, "serve_view", "redirect", "direct"):
    with override_settings(WAGTAILDOCS_SERVE_METHOD=method):
        found[str(method)] = [m.id for m in warnings()]
if "renditions" in storages.backends:  # s3: "redirect" to URLs that are not signed
    default = settings.STORAGES["default"]
    unsigned = default | {"OPTIONS": default["OPTIONS"] | {"querystring_auth": False}}
    with override_settings(STORAGES=settings.STORAGES | {"default": unsigned}):
        found["unsigned"] = [m.id for m in warnings()]
found["urls"] = {
    alias: storages[alias].url(alias + ".txt") for alias in ("default", "renditions")
    if alias in storages.backends
}
print(json.dumps(found))
"""


@pytest.fixture(scope="module")
def probes():
    found = {}

    def probe(project):
        storage = project.answers["storage_backend"]
        if storage not in found:
            output = project.shell(PROBE, env=PROBE_ENV)
            found[storage] = json.loads(output.strip().splitlines()[-1])
        return found[storage]

    return probe


@pytest.mark.parametrize("site", BOTH, indirect=True)
def test_system_check_warns_on_privacy_bypassing_serve_methods(site, probes):
    project = site[0]
    found = probes(project)
    warning = f"{project.slug}.W001"
    # The environment override, as production reads it: a warning that names the fix.
    [[check_id, message, hint]] = found["env"]
    assert check_id == warning
    assert "private collections" in message
    assert "WAGTAILDOCS_SERVE_METHOD" in hint
    assert found["direct"] == [warning]
    assert found["serve_view"] == [] and found["None"] == []  # None: Wagtail picks per storage
    if project.answers["storage_backend"] == "filesystem":
        assert found["redirect"] == [warning]  # a redirect to MEDIA_ROOT/documents
        assert 'WAGTAILDOCS_SERVE_METHOD to "serve_view"' in hint
    else:
        assert found["redirect"] == []  # a signed URL, after the privacy check
        assert 'WAGTAILDOCS_SERVE_METHOD to "redirect"' in hint
        assert found["unsigned"] == [warning]  # unless the URLs are not signed


# ---------------------------------------------------------------------------------------------
# s3


def signed(url):
    """The query parameters of a presigned URL."""
    return parse_qs(urlsplit(url).query)


@S3
def test_s3_documents_redirect_to_short_lived_signed_urls(s3_site):
    project, proxy, content = s3_site
    for title, body in {"First": b"first report", "Second": b"second report"}.items():
        document = content["documents"][title]
        response = get(proxy, document["url"])
        assert response.status_code == 302, title
        location = response.headers["Location"]
        assert location.startswith(f"{project.s3.endpoint}/{project.bucket}/documents/")
        query = signed(location)
        assert query["X-Amz-Algorithm"] == ["AWS4-HMAC-SHA256"] and "X-Amz-Signature" in query
        assert 60 <= int(query["X-Amz-Expires"][0]) <= 900  # minutes, not hours
        download = requests.get(location, timeout=20)
        assert download.status_code == 200 and download.content == body
        # The object's own metadata: opened from the bucket, it downloads instead of rendering.
        assert download.headers["Content-Disposition"] == "attachment"
        # Without the signature the bucket refuses.
        unsigned = requests.get(location.split("?")[0], timeout=20)
        assert unsigned.status_code == 403, title


@S3
def test_s3_same_name_uploads_keep_both_files(s3_site):
    project, _, content = s3_site
    names = [content["documents"][t]["name"] for t in ("First", "Second")]
    assert names[0] == "documents/report.txt"
    assert names[1] != names[0] and re.fullmatch(r"documents/report_\w+\.txt", names[1])
    assert set(names) <= set(project.s3.keys(project.bucket, "documents/"))


@S3
def test_s3_renditions_public_and_unsigned_originals_private(s3_site):
    project, _, content = s3_site
    endpoint = f"{project.s3.endpoint}/{project.bucket}/"
    rendition = content["rendition"]["url"]
    assert rendition == endpoint + content["rendition"]["name"]  # stable: no signature
    assert content["rendition"]["name"].startswith("images/")
    response = requests.get(rendition, timeout=20)  # anonymous, allowed by the bucket policy
    assert response.status_code == 200 and png_size(response.content) == (100, 50)
    assert response.headers["Cache-Control"] == "public, max-age=31536000, immutable"

    original = content["original"]
    assert original["name"].startswith("original_images/")
    assert "X-Amz-Signature" in signed(original["url"])
    assert requests.get(original["url"], timeout=20).status_code == 200
    assert requests.get(original["url"].split("?")[0], timeout=20).status_code == 403

    keys = project.s3.keys(project.bucket)
    assert keys and all(k.split("/")[0] in {"documents", "original_images", "images"} for k in keys)


@pytest.mark.parametrize("site", BOTH, indirect=True)
def test_new_rendition_made_by_a_page_view(site):
    """A visitor's page view makes a rendition the shell never made (gunicorn reads the original
    back from storage: S3 for the s3 bake); the page links it unsigned, and it loads."""
    project, proxy, content = site
    page = get(proxy, "/gallery/")
    assert page.status_code == 200
    src = re.search(r'<img[^>]* src="([^"]+)"', page.text).group(1)
    assert "red.width-800" in src and src != content["rendition"]["url"]
    if project.answers["storage_backend"] == "filesystem":
        assert src.startswith("/media/images/")
        image = get(proxy, src)
    else:
        assert src.startswith(f"{project.s3.endpoint}/{project.bucket}/images/")
        assert "?" not in src  # unsigned: the page stays cacheable
        image = requests.get(src, timeout=20)
    assert image.status_code == 200
    assert png_size(image.content) == (200, 100)  # Wagtail never upscales


@S3
def test_s3_custom_domain_applies_to_renditions_only(s3_site, probes):
    project, _, _ = s3_site
    urls = probes(project)["urls"]
    assert urls["renditions"] == "https://media.example.com/renditions.txt"
    default = urlsplit(urls["default"])
    assert f"{default.scheme}://{default.netloc}" == project.s3.endpoint
    assert "X-Amz-Signature" in signed(urls["default"])


@S3
def test_s3_static_files_stay_on_whitenoise(s3_site):
    project, proxy, _ = s3_site
    assert (project.path / "staticfiles" / "staticfiles.json").is_file()
    assert not project.s3.keys(project.bucket, "static")
    home = get(proxy, "/")
    hashed = re.search(r'href="(/static/css/site\.[0-9a-f]{12}\.css)"', home.text).group(1)
    assert get(proxy, hashed).status_code == 200
