"""Attacks: a baked site attacked the way a security reviewer would, and configured the way a new
operator would (issue 10 items 1, 4, 5, 6). Each test performs the attack against real services
and fails without the defence.

One filesystem bake for the module, configured ONLY through a `.env` copied from its
`.env.example` with the required values filled in (the real environment has nothing but
DJANGO_SETTINGS_MODULE), served by two gunicorn instances (A and B) sharing Postgres and Redis,
with the shipped nginx config in front of A:

- search: restricted pages (password, login, groups, and pages below them) never show up for
  visitors who may not view them; any query is answered 200, never a 500;
- log lines stay under 8 KB whatever the input (Django's JSON logs and gunicorn's access log);
- password guessing (admin login, password reset, page and document passwords) is answered 429
  with Retry-After after 10 failures per client IP and per account or restriction, on every
  instance, until the window passes; a dead Redis fails open (and is logged); nginx's
  limit_req answers floods itself;
- X-Forwarded-Proto and X-Forwarded-For are believed only from FORWARDED_ALLOW_IPS: a client
  that reaches gunicorn directly from 127.0.0.9 is plain HTTP, and forged X-Forwarded-For
  entries in front of nginx's do not change who is counted;
- bad configuration (weak DJANGO_SECRET_KEY, malformed *_URL) stops start-up naming the variable;
  `.env.example` with only the required values serves a page, an image and a document, for both
  storages (s3 on the moto server, its empty optional variables included).
Cache invalidation and cache memory attacks are in test_attacks_cache.py.
"""

import json
import re
import secrets
import subprocess
import time
from types import SimpleNamespace

import pytest
import requests
from adminclient import CREATE_SUPERUSER, PASSWORD, USERNAME
from conftest import HTTPS, background, free_port, request_from
from nginx import nginx_for
from requests.adapters import HTTPAdapter
from s3 import s3_server  # noqa: F401  (session fixture)

pytestmark = pytest.mark.slow

LIMIT = 10  # failures per minute, per client IP and per account or restriction
WINDOW = 60
MAX_LOG_LINE = 8192
PAGE_PASSWORD = "page-Pa55word-for-tests"
DOC_PASSWORD = "doc-Pa55word-for-tests"

# Runs in a Django shell with production settings; prints what the tests need as JSON.
CONTENT = (
    CREATE_SUPERUSER
    + f"""
import io, json
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, get_user_model
from django.contrib.auth.models import Group
from django.contrib.sessions.backends.db import SessionStore
from django.core.files.base import ContentFile
from django.core.files.images import ImageFile
from PIL import Image as PILImage
from wagtail.documents import get_document_model
from wagtail.images import get_image_model
from wagtail.models import Collection, CollectionViewRestriction, PageViewRestriction
from home.models import ContentPage, HomePage

User = get_user_model()
members = Group.objects.create(name="Members")
member = User.objects.create_user("member", "member@example.com", "member-pw")
member.groups.add(members)
outsider = User.objects.create_user("outsider", "outsider@example.com", "outsider-pw")
User.objects.create_superuser("editor", "editor@example.com", "editor-pw-for-tests")

def session_for(user):
    session = SessionStore()
    session[SESSION_KEY] = str(user.pk)
    session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
    session[HASH_SESSION_KEY] = user.get_session_auth_hash()
    session.create()
    return session.session_key

png = io.BytesIO()
PILImage.new("RGB", (200, 100), "red").save(png, "PNG")
image = get_image_model().objects.create(title="Red", file=ImageFile(png, name="red.png"))
public_doc = get_document_model().objects.create(
    title="Public report", file=ContentFile(b"public report", name="report.txt")
)
home = HomePage.objects.get()
def page(parent, title, word, blocks=()):
    body = [{{"type": "paragraph", "value": f"<p>This page talks about {{word}}.</p>"}}, *blocks]
    child = ContentPage(title=title, slug=title.lower().replace(" ", "-"), body=json.dumps(body))
    parent.add_child(instance=child)
    child.save_revision().publish()
    return child

public = page(home, "Open marmalade", "publicword", [
    {{"type": "image", "value": {{"image": image.id, "alt_text": "Red", "decorative": False}}}},
    {{"type": "document", "value": public_doc.id}},
])
password = page(home, "Zeppelin hangar", "quokkasecret")
below_password = page(password, "Zeppelin basement", "axolotlsecret")
login = page(home, "Wombat lounge", "wombatsecret")
group = page(home, "Narwhal club", "narwhalsecret")
page_restriction = PageViewRestriction.objects.create(
    page=password, restriction_type="password", password={PAGE_PASSWORD!r}
)
PageViewRestriction.objects.create(page=login, restriction_type="login")
PageViewRestriction.objects.create(page=group, restriction_type="groups").groups.add(members)

vault = Collection.get_first_root_node().add_child(name="Vault")
CollectionViewRestriction.objects.create(
    collection=vault, restriction_type="password", password={DOC_PASSWORD!r}
)
secret_doc = get_document_model().objects.create(
    title="Vault plan", file=ContentFile(b"vault plan", name="plan.txt"), collection=vault
)
print(json.dumps({{
    "public": public.url, "password": password.url, "below_password": below_password.url,
    "login": login.url, "group": group.url, "public_doc": public_doc.url,
    "secret_doc": secret_doc.url,
    "sessions": {{"member": session_for(member), "outsider": session_for(outsider)}},
}}))
"""
)
# The words only a restricted page contains, with the page (title and URL must not show either).
SECRETS = {
    "quokkasecret": ("password", "Zeppelin hangar"),
    "axolotlsecret": ("below_password", "Zeppelin basement"),
    "wombatsecret": ("login", "Wombat lounge"),
    "narwhalsecret": ("group", "Narwhal club"),
}
TITLES = {title for _, title in SECRETS.values()}


def operator_env(project, **values):
    """Configure `project` the way the README tells an operator to: copy .env.example to .env
    and fill in `values`; the real environment only says which settings to use."""
    lines = (project.path / ".env.example").read_text().splitlines()
    for name, value in values.items():
        pattern = re.compile(rf"^{name}=.*$")
        matches = [i for i, line in enumerate(lines) if pattern.match(line)]
        assert len(matches) == 1, f".env.example has no single {name}= line"
        lines[matches[0]] = f"{name}={value}"
    (project.path / ".env").write_text("\n".join(lines) + "\n")
    project.env = {
        key: project.env[key]
        for key in ("PATH", "HOME", "LANG", "VIRTUAL_ENV", "DJANGO_SETTINGS_MODULE")
    }


def required_values(database_url, redis_url):
    return {
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
    }


class SourceAddressAdapter(HTTPAdapter):
    """Connect from a chosen loopback address (any 127.x.y.z works on Linux)."""

    def __init__(self, source):
        self.source = source
        super().__init__()

    def init_poolmanager(self, *args, **kwargs):
        kwargs["source_address"] = (self.source, 0)
        super().init_poolmanager(*args, **kwargs)


class Visitor:
    """A browser behind the proxy: HTTPS headers, X-Forwarded-For naming its own address (as
    nginx on 127.0.0.1 would send), cookies kept over the plain-HTTP hop, CSRF tokens sent."""

    def __init__(self, ip=None, source=None, session_key=None, headers=HTTPS):
        self.session = requests.Session()
        self.session.headers.update(headers)
        if ip:
            self.session.headers["X-Forwarded-For"] = ip
        if source:
            self.session.mount("http://", SourceAddressAdapter(source))
            self.session.mount("https://", SourceAddressAdapter(source))
        if session_key:
            self.session.cookies.set("sessionid", session_key)

    def _plain_hop(self, response):
        for cookie in self.session.cookies:
            cookie.secure = False
        return response

    def get(self, url, **kwargs):
        kwargs = {"timeout": 30, "allow_redirects": False} | kwargs
        return self._plain_hop(self.session.get(url, **kwargs))

    def post(self, url, data, **kwargs):
        kwargs = {"timeout": 60, "allow_redirects": False} | kwargs
        data = data | {"csrfmiddlewaretoken": self.session.cookies.get("csrftoken", "")}
        headers = {"Origin": "https://example.com"} | kwargs.pop("headers", {})
        return self._plain_hop(self.session.post(url, data=data, headers=headers, **kwargs))


def form_action(response):
    match = re.search(r'<form action="([^"]+)" method="POST">', response.text)
    assert match, f"no password form: {response.status_code} {response.text[:500]}"
    return match.group(1)


def assert_too_many(response):
    assert response.status_code == 429, (response.status_code, response.text[:500])
    assert 0 < int(response.headers["Retry-After"]) <= WINDOW
    assert "Too many attempts" in response.text


def assert_log_lines_bounded(path):
    lines = path.read_bytes().splitlines()
    assert lines
    longest = max(lines, key=len)
    assert len(longest) <= MAX_LOG_LINE, f"a {len(longest)}-byte log line: {longest[:300]!r}..."


@pytest.fixture(scope="module")
def site(make_module_project):
    project = make_module_project()  # filesystem, the defaults
    operator_env(project, **required_values(project.env["DATABASE_URL"], project.env["REDIS_URL"]))
    project.prepare()
    content = json.loads(project.shell(CONTENT).strip().splitlines()[-1])
    project.manage("update_index", "-v0")  # the worker's job in production
    one_worker = {"WEB_CONCURRENCY": "1"}
    with (
        project.gunicorn(env=one_worker) as a,
        project.gunicorn(env=one_worker) as b,
        nginx_for(project, a.base_url) as proxy,
    ):
        yield SimpleNamespace(
            project=project, a=a, b=b, instances=[a.base_url, b.base_url], proxy=proxy,
            content=content, unlocked_at=[0.0],
        )  # fmt: skip


def locked_now(site):
    """Remember that a lockout began now: test_lockouts_end_when_the_window_passes waits."""
    site.unlocked_at[0] = time.monotonic() + WINDOW + 1


# ---------------------------------------------------------------------------------------------
# 6. .env.example as the operator gets it (the module's site runs on it)


def test_env_example_with_required_values_serves_page_image_and_document(site):
    content, visitor = site.content, Visitor()
    page = visitor.get(site.a.base_url + content["public"])
    assert page.status_code == 200 and "publicword" in page.text
    image = re.search(r'<img[^>]+src="(/media/images/[^"]+)"', page.text)
    assert image, page.text[:2000]
    served = requests.get(
        site.proxy.https_url + image.group(1), headers=HTTPS, verify=site.proxy.cert, timeout=20
    )
    assert served.status_code == 200 and served.content[:8] == b"\x89PNG\r\n\x1a\n"
    document = visitor.get(site.b.base_url + content["public_doc"])
    assert document.status_code == 200 and document.content == b"public report"


# ---------------------------------------------------------------------------------------------
# 1. Search


def search(site, query, visitor=None, instance=0, **params):
    visitor = visitor or Visitor()
    return visitor.get(site.instances[instance] + "/search/", params={"query": query} | params)


def shown(response, key, title, content):
    """Whether a result for the page (its title or URL) appears in a search response."""
    return title in response.text or content[key] in response.text


def test_search_shows_anonymous_visitors_public_pages_only(site):
    content = site.content
    found = search(site, "publicword")
    assert found.status_code == 200 and "Open marmalade" in found.text  # search works
    for word, (key, title) in SECRETS.items():
        for phrase in (word, f'"talks about {word}"'):
            response = search(site, phrase)
            assert response.status_code == 200
            assert not shown(response, key, title, content), f"{phrase} reveals {title}"
    # Titles are indexed too: a restricted title is not confirmed either.
    for _, title in SECRETS.values():
        assert title not in search(site, title.split()[1]).text

    # Unlocking the page password does not make anonymous results depend on the session.
    visitor = Visitor(ip="198.51.100.1")
    form = visitor.get(site.a.base_url + content["password"])
    unlocked = visitor.post(
        site.a.base_url + form_action(form),
        {"password": PAGE_PASSWORD, "return_url": content["password"]},
    )
    assert unlocked.status_code == 302
    assert visitor.get(site.a.base_url + content["password"]).status_code == 200
    assert "Zeppelin hangar" not in search(site, "quokkasecret", visitor).text


def test_search_shows_logged_in_visitors_what_they_may_view(site):
    content, sessions = site.content, site.content["sessions"]
    outsider = Visitor(ip="198.51.100.2", session_key=sessions["outsider"])
    member = Visitor(ip="198.51.100.3", session_key=sessions["member"])

    # Any logged-in visitor passes a login restriction; only the group's members pass its own.
    assert "Wombat lounge" in search(site, "wombatsecret", outsider).text
    assert "Narwhal club" not in search(site, "narwhalsecret", outsider).text
    assert "Narwhal club" in search(site, "narwhalsecret", member).text
    response = search(site, "narwhalsecret", member)
    assert "private" in response.headers["Cache-Control"]
    # A page password counts once entered in this session, for the page and the pages below it.
    for visitor in (outsider, member):
        assert "Zeppelin hangar" not in search(site, "quokkasecret", visitor).text
        assert "Zeppelin basement" not in search(site, "axolotlsecret", visitor).text
    form = outsider.get(site.b.base_url + content["password"])
    assert form.status_code == 200
    unlocked = outsider.post(
        site.b.base_url + form_action(form),
        {"password": PAGE_PASSWORD, "return_url": content["password"]},
    )
    assert unlocked.status_code == 302
    assert "Zeppelin hangar" in search(site, "quokkasecret", outsider).text
    assert "Zeppelin basement" in search(site, "axolotlsecret", outsider).text
    assert "Zeppelin hangar" not in search(site, "quokkasecret", member).text


NASTY_QUERIES = [
    " ".join(f"w{i}" for i in range(181)),
    " ".join(f"w{i}" for i in range(182)),  # RecursionError in the Postgres backend, unguarded
    " ".join(f"term{i}" for i in range(500)),
    "x" * 3000,
    "zeppelin\x00hangar",  # Postgres refuses NUL characters
    '"unbalanced quote',
    "AND OR NOT ( ) ) ( & | ! : * ' -",
    "%s %% \\ ' \" ; -- /* */",
    "\U0001f600" * 300,
    "title:Zeppelin",
]


def test_search_answers_any_query_without_a_500(site):
    for query in NASTY_QUERIES:
        response = search(site, query)
        assert response.status_code == 200, (query[:60], response.status_code)
        assert "Zeppelin hangar" not in response.text
    shortened = search(site, " ".join(f"term{i}" for i in range(500)))
    assert "shortened" in shortened.text
    for page in ("abc", "-5", "0", "99999999999999999999", "1.5"):
        assert search(site, "publicword", page=page).status_code == 200, page
    assert_log_lines_bounded(site.a.log)


def test_no_log_line_is_larger_than_a_few_kb(site):
    # An error with a huge message and a deep traceback, logged with production settings.
    out = site.project.shell(
        "import logging, sys\n"
        "sys.setrecursionlimit(400)\n"
        "def deep(n): return deep(n + 1)\n"
        "try:\n"
        "    deep(0)\n"
        "except RecursionError:\n"
        "    logging.getLogger('django.request').exception('x' * 200_000)\n"
        "logging.getLogger('django.request').warning('%s', '\\U0001f600' * 50_000,\n"
        "    extra={'request': 'y' * 100_000, 'status_code': 500})\n"
    )
    events = [line for line in out.splitlines() if '"django.request"' in line]
    assert len(events) == 2, out[-2000:]
    for line in events:
        assert len(line.encode()) <= MAX_LOG_LINE, f"{len(line.encode())} bytes"
        assert json.loads(line)["name"] == "django.request"
    assert "RecursionError" in json.loads(events[0])["exc_info"]  # the end is kept

    # gunicorn's access log line: a 3.5 KB URL, 7 KB referrer and 7 KB user agent.
    Visitor().get(
        site.b.base_url + "/search/?query=" + "q" * 3500,
        headers={"Referer": "r" * 7000, "User-Agent": "u" * 7000},
    )
    time.sleep(0.5)
    assert_log_lines_bounded(site.b.log)


# ---------------------------------------------------------------------------------------------
# 5. Proxy headers only from trusted proxies


def test_forged_https_header_from_an_untrusted_client_is_ignored(site):
    forged = HTTPS | {"X-Forwarded-Ssl": "on", "X-Forwarded-Protocol": "ssl"}
    # From 127.0.0.9, not in FORWARDED_ALLOW_IPS: plain HTTP, redirected to https.
    status, headers = request_from("127.0.0.9", site.a.base_url, "GET", "/search/?query=a", HTTPS)
    assert status == 301, status
    assert headers["Location"] == "https://example.com/search/?query=a"
    status, _ = request_from("127.0.0.9", site.a.base_url, "GET", "/", forged)
    assert status == 301
    # From the proxy (127.0.0.1): honoured.
    status, headers = request_from("127.0.0.1", site.a.base_url, "GET", "/", HTTPS)
    assert status == 200 and "Strict-Transport-Security" in headers
    # Only X-Forwarded-Proto, the header nginx overwrites, counts even from the proxy.
    only_others = {"Host": "example.com", "X-Forwarded-Ssl": "on", "X-Forwarded-Protocol": "ssl"}
    status, _ = request_from("127.0.0.1", site.a.base_url, "GET", "/", only_others)
    assert status == 301


def test_forged_client_addresses_do_not_escape_the_limit(site):
    """Through nginx, a client that writes its own X-Forwarded-For entries is still counted by
    the address nginx saw (the right-most entry): password reset requests for ever new emails
    from one address are cut off after LIMIT."""
    visitor = Visitor(source="127.0.0.21", headers=HTTPS)
    proxy = site.proxy
    visitor.get(proxy.https_url + "/admin/password_reset/", verify=proxy.cert)
    answers = []
    for i in range(LIMIT + 1):
        answers.append(
            visitor.post(
                proxy.https_url + "/admin/password_reset/",
                {"email": f"nobody{i}@example.com"},
                headers={"X-Forwarded-For": f"203.0.113.{i + 1}"},
                verify=proxy.cert,
            )
        )
    assert [r.status_code for r in answers[:LIMIT]] == [302] * LIMIT
    assert_too_many(answers[LIMIT])
    assert "For your security" in answers[LIMIT].text  # the app's page, not nginx's


# ---------------------------------------------------------------------------------------------
# 4. Throttled guessing, across instances


def guess(site, visitor, url, data, n):
    """n POSTs alternating between instances A and B; their status codes."""
    return [visitor.post(site.instances[i % 2] + url, data).status_code for i in range(n)]


def test_admin_login_guessing_is_throttled(site):
    attacker = Visitor(ip="203.0.113.50")
    attacker.get(site.a.base_url + "/admin/login/")
    wrong = {"username": USERNAME, "password": "wrong-password"}
    # django-axes answers the failure that reaches the limit with the lockout already.
    assert guess(site, attacker, "/admin/login/", wrong, LIMIT) == [200] * (LIMIT - 1) + [429]
    locked_now(site)
    # The 11th, on either instance, and even the right password: 429 before any hashing.
    for base in site.instances:
        assert_too_many(attacker.post(base + "/admin/login/", wrong))
    right = {"username": USERNAME, "password": PASSWORD}
    assert_too_many(attacker.post(site.b.base_url + "/admin/login/", right))
    # Per account: the same username from another address is locked out too.
    elsewhere = Visitor(ip="203.0.113.51")
    elsewhere.get(site.a.base_url + "/admin/login/")
    assert_too_many(elsewhere.post(site.a.base_url + "/admin/login/", right))
    # Per address: another username from the attacker's address is locked out too.
    other = {"username": "member", "password": "member-pw"}
    assert_too_many(attacker.post(site.a.base_url + "/admin/login/", other))
    # Anyone else is unaffected.
    assert elsewhere.post(site.a.base_url + "/admin/login/", other).status_code in (200, 302)


def test_password_reset_requests_are_throttled(site):
    attacker = Visitor(ip="203.0.113.60")
    attacker.get(site.a.base_url + "/admin/password_reset/")
    data = {"email": "nobody@example.com"}
    assert guess(site, attacker, "/admin/password_reset/", data, LIMIT) == [302] * LIMIT
    assert_too_many(attacker.post(site.b.base_url + "/admin/password_reset/", data))
    # Per account: the same email from another address.
    elsewhere = Visitor(ip="203.0.113.61")
    elsewhere.get(site.b.base_url + "/admin/password_reset/")
    assert_too_many(elsewhere.post(site.a.base_url + "/admin/password_reset/", data))
    assert (
        elsewhere.post(site.a.base_url + "/admin/password_reset/", {"email": "a@example.com"})
    ).status_code == 302


@pytest.mark.parametrize(
    ("key", "password"), [("password", PAGE_PASSWORD), ("secret_doc", DOC_PASSWORD)],
    ids=["page-password", "document-password"],
)  # fmt: skip
def test_wagtail_password_guessing_is_throttled(site, key, password):
    url = site.content[key]
    last_octet = 70 if key == "password" else 80
    attacker = Visitor(ip=f"203.0.113.{last_octet}")
    action = form_action(attacker.get(site.a.base_url + url))
    wrong = {"password": "wrong", "return_url": url}
    assert guess(site, attacker, action, wrong, LIMIT) == [200] * LIMIT
    locked_now(site)
    assert_too_many(attacker.post(site.a.base_url + action, wrong))
    right = {"password": password, "return_url": url}
    assert_too_many(attacker.post(site.b.base_url + action, right))
    # Per restriction: the right password from another address waits for the window too.
    elsewhere = Visitor(ip=f"203.0.113.{last_octet + 1}")
    elsewhere.get(site.b.base_url + url)
    assert_too_many(elsewhere.post(site.b.base_url + action, right))


def test_nginx_answers_a_flood_of_password_posts_itself(site):
    proxy = site.proxy
    flood = Visitor(source="127.0.0.22")
    flood.get(proxy.https_url + "/admin/login/", verify=proxy.cert)
    before = site.a.log.read_text().count('"POST /admin/login/')
    answers = [
        flood.post(
            proxy.https_url + "/admin/login/",
            {"username": "flood", "password": "x"},
            verify=proxy.cert,
        )
        for _ in range(30)
    ]
    by_nginx = [r for r in answers if r.status_code == 429 and "wait a minute" in r.text]
    assert len(by_nginx) >= 15, [r.status_code for r in answers]
    assert all(r.headers["Retry-After"] == "60" for r in by_nginx)
    time.sleep(0.5)
    reached_app = site.a.log.read_text().count('"POST /admin/login/') - before
    assert reached_app <= 15, reached_app


def test_throttling_fails_open_when_redis_is_down(site):
    """A third instance whose Redis is gone: page passwords are not counted (logged), and the
    right password and the admin login still work."""
    dead_redis = f"redis://127.0.0.1:{free_port()}/0"
    url = site.content["password"]
    with site.project.gunicorn(env={"WEB_CONCURRENCY": "1", "REDIS_URL": dead_redis}) as c:
        visitor = Visitor(ip="203.0.113.90")
        action = form_action(visitor.get(c.base_url + url))
        wrong = {"password": "wrong", "return_url": url}
        codes = [visitor.post(c.base_url + action, wrong).status_code for _ in range(LIMIT + 2)]
        assert codes == [200] * (LIMIT + 2)
        right = {"password": PAGE_PASSWORD, "return_url": url}
        assert visitor.post(c.base_url + action, right).status_code == 302
        assert visitor.get(c.base_url + url).status_code == 200
        editor = Visitor(ip="203.0.113.91")
        editor.get(c.base_url + "/admin/login/")
        credentials = {"username": "editor", "password": "editor-pw-for-tests"}
        assert editor.post(c.base_url + "/admin/login/", credentials).status_code == 302
        assert editor.get(c.base_url + "/admin/").status_code == 200
        time.sleep(0.5)
        assert "throttle: cache unavailable" in c.log.read_text()


# ---------------------------------------------------------------------------------------------
# 6. Bad configuration is refused at start-up, naming the variable


@pytest.fixture(scope="module")
def full_project(make_module_project):
    """The bake that reads every variable (s3 + sentry); only its settings are loaded."""
    return make_module_project(storage_backend="s3", error_reporting="sentry")


def load_settings(project, **env):
    return subprocess.run(
        [project.python, "-c", f"import {project.slug}.settings.production"],
        cwd=project.path,
        env=project.env | env,
        capture_output=True,
        text=True,
        timeout=60,
    )


BAD_CONFIG = [
    ("DJANGO_SECRET_KEY", ""),
    ("DJANGO_SECRET_KEY", secrets.token_urlsafe(30)),  # 40 characters
    ("DJANGO_SECRET_KEY", "ab" * 40),  # long, but 2 distinct characters
    ("DATABASE_URL", "postgres://user:pw@db.internal:port/site"),
    ("DATABASE_URL", "postgres://"),
    ("REDIS_URL", "localhost:6379"),
    ("REDIS_URL", "redis://cache internal:6379/0"),
    ("EMAIL_URL", "smtp://mail.example.com:99999"),
    ("AWS_S3_ENDPOINT_URL", "minio:9000"),
    ("AWS_S3_ENDPOINT_URL", "http://"),
    ("SENTRY_DSN", "https://[key@sentry.example/1"),
]


def test_bad_configuration_stops_start_up_naming_the_variable(full_project):
    assert load_settings(full_project).returncode == 0, load_settings(full_project).stderr
    for name, value in BAD_CONFIG:
        result = load_settings(full_project, **{name: value})
        assert result.returncode != 0, f"{name}={value!r} was accepted"
        last = result.stderr.strip().splitlines()[-1]
        assert name in last, f"{name}={value!r}: {last}"
        others = {other for other, _ in BAD_CONFIG} - {name}
        assert not any(f"'{other}'" in last for other in others), last


def test_gunicorn_refuses_to_start_with_an_empty_secret_key(full_project, tmp_path):
    log = tmp_path / "gunicorn.log"
    cmd = [str(full_project.venv / "bin" / "gunicorn"), f"{full_project.slug}.wsgi"]
    env = full_project.env | {"DJANGO_SECRET_KEY": "", "PORT": str(free_port())}
    with background(cmd, cwd=full_project.path, env=env, log=log) as process:
        assert process.wait(timeout=60) != 0
    assert "DJANGO_SECRET_KEY" in log.read_text()


# ---------------------------------------------------------------------------------------------
# 6. .env.example on s3: the empty optional variables behave as unset

S3_CONTENT = """
import io, json
from django.core.files.base import ContentFile
from django.core.files.images import ImageFile
from PIL import Image as PILImage
from wagtail.documents import get_document_model
from wagtail.images import get_image_model
from home.models import ContentPage, HomePage
png = io.BytesIO()
PILImage.new("RGB", (200, 100), "red").save(png, "PNG")
image = get_image_model().objects.create(title="Red", file=ImageFile(png, name="red.png"))
doc = get_document_model().objects.create(
    title="Report", file=ContentFile(b"s3 report", name="report.txt")
)
body = [{"type": "image", "value": {"image": image.id, "alt_text": "Red", "decorative": False}}]
page = ContentPage(title="Gallery", slug="gallery", body=json.dumps(body))
HomePage.objects.get().add_child(instance=page)
print(json.dumps({"page": page.url, "doc": doc.url}))
"""


def test_env_example_on_s3_serves_page_image_and_document(
    make_project,
    s3_server,  # noqa: F811
    postgres_url,
):
    project = make_project(storage_backend="s3")
    bucket = s3_server.new_bucket(project.path / "deploy" / "s3-bucket-policy.json")
    redis_url = project.env["REDIS_URL"]
    # AWS_S3_REGION_NAME= and AWS_S3_CUSTOM_DOMAIN= stay empty, as shipped. The endpoint is the
    # local S3 server's: this machine cannot reach AWS.
    filled = required_values(postgres_url, redis_url) | {
        "AWS_STORAGE_BUCKET_NAME": bucket,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_S3_ENDPOINT_URL": s3_server.endpoint,
    }
    operator_env(project, **filled)
    empty = re.findall(r"^([A-Z0-9_]+)=$", (project.path / ".env").read_text(), re.M)
    assert {"AWS_S3_REGION_NAME", "AWS_S3_CUSTOM_DOMAIN"} <= set(empty), empty
    project.prepare()
    content = json.loads(project.shell(S3_CONTENT).strip().splitlines()[-1])
    with project.gunicorn(env={"WEB_CONCURRENCY": "1"}) as server:
        visitor = Visitor()
        page = visitor.get(server.base_url + content["page"])
        assert page.status_code == 200
        image = re.search(rf'<img[^>]+src="({re.escape(s3_server.endpoint)}/[^"]+)"', page.text)
        assert image, page.text[:2000]
        served = requests.get(image.group(1).replace("&amp;", "&"), timeout=20)
        assert served.status_code == 200 and served.content[:8] == b"\x89PNG\r\n\x1a\n"
        document = visitor.get(server.base_url + content["doc"])
        assert document.status_code == 302
        assert requests.get(document.headers["Location"], timeout=20).content == b"s3 report"

    # AWS_S3_ENDPOINT_URL= (empty, as shipped) means AWS itself, not "Invalid endpoint: ".
    dotenv = project.path / ".env"
    dotenv.write_text(
        re.sub(r"^AWS_S3_ENDPOINT_URL=.*$", "AWS_S3_ENDPOINT_URL=", dotenv.read_text(), flags=re.M)
    )
    url = (
        project.shell(
            "from wagtail.documents import get_document_model\n"
            "print(get_document_model().objects.get().file.url)\n"
        )
        .strip()
        .splitlines()[-1]
    )
    assert url.startswith(f"https://{bucket}.s3.amazonaws.com/"), url
    assert "X-Amz-Signature=" in url


def test_gunicorn_reads_the_same_env_file(site):
    """FORWARDED_ALLOW_IPS in .env decides for gunicorn (the scheme) as for Django (the client
    address): an empty value there is the default, and the file is the operator's only config."""
    env_file = site.project.path / ".env"
    assert "\nFORWARDED_ALLOW_IPS=" in env_file.read_text()
    saved = env_file.read_text()
    try:
        env_file.write_text(
            re.sub(r"^FORWARDED_ALLOW_IPS=.*$", "FORWARDED_ALLOW_IPS=10.9.9.9", saved, flags=re.M)
        )
        with site.project.gunicorn(env={"WEB_CONCURRENCY": "1"}) as strict:
            status, _ = request_from("127.0.0.1", strict.base_url, "GET", "/", HTTPS)
            assert status == 301  # 127.0.0.1 is no longer a trusted proxy
    finally:
        env_file.write_text(saved)


# ---------------------------------------------------------------------------------------------
# 4. ... and the lockouts end (last: the tests above fill most of the minute)


def test_lockouts_end_when_the_window_passes(site):
    assert site.unlocked_at[0], "run with the throttling tests above"
    time.sleep(max(0.0, site.unlocked_at[0] - time.monotonic()))
    content = site.content
    attacker = Visitor(ip="203.0.113.50")
    attacker.get(site.a.base_url + "/admin/login/")
    right = {"username": USERNAME, "password": PASSWORD}
    assert attacker.post(site.b.base_url + "/admin/login/", right).status_code == 302
    for key, password, ip in (
        ("password", PAGE_PASSWORD, "203.0.113.70"),
        ("secret_doc", DOC_PASSWORD, "203.0.113.80"),
    ):
        visitor = Visitor(ip=ip)
        action = form_action(visitor.get(site.a.base_url + content[key]))
        response = visitor.post(
            site.b.base_url + action, {"password": password, "return_url": content[key]}
        )
        assert response.status_code == 302, key
