"""Layer 4, audit: the public face of a baked site, as outside audit tools see it.

The default project under gunicorn with production settings behind the shipped nginx config (TLS),
reached as https://example.com/ (chromium maps the name to the test's nginx port). Checked:
- every page's <title> reads "Page - Site" (the Site's name, set from project_name by migration
  0002); <meta name="description"> is the page's search description or the `description` answer;
  each page links its canonical URL on the production domain;
- /robots.txt (with its Sitemap: line) and /sitemap.xml (wagtail.contrib.sitemaps: live public
  pages only) are served;
- axe-core (the engine behind Lighthouse's and most accessibility audits; bundled by the
  axe-playwright-python package, so nothing is fetched) finds no WCAG 2.0/2.1/2.2 A or AA
  violation, nor a best-practice one, on the home page, a content page, search results, an empty
  search and the 404 page; the first Tab reaches a skip link to <main>; the search box is labelled;
- nginx does not reveal its version (`server_tokens off`).
"""

import re
from html.parser import HTMLParser
from xml.etree import ElementTree

import pytest
import requests
from axe_playwright_python.sync_playwright import Axe
from nginx import nginx_for
from playwright.sync_api import sync_playwright

pytestmark = pytest.mark.slow

CHROMIUM = "/usr/bin/chromium"
SITE = "https://example.com"
AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa", "best-practice"]

CONTENT = """
from wagtail.models import Site
from home.models import ContentPage
home = Site.objects.get(is_default_site=True).root_page.specific
home.body = [("paragraph", "<p>Welcome to the harbour.</p>")]
home.save_revision().publish()
hours = ContentPage(title="Opening hours", slug="opening-hours",
                    search_description="When the harbour is open.",
                    body=[("heading", "Summer"), ("paragraph", "<p>Daily 9 to 5.</p>")])
home.add_child(instance=hours)
hours.save_revision().publish()
plain = ContentPage(title="Getting here", slug="getting-here",
                    body=[("paragraph", "<p>Take the ferry.</p>")])
home.add_child(instance=plain)
plain.save_revision().publish()
draft = ContentPage(title="Secret plans", slug="secret-plans", live=False)
home.add_child(instance=draft)
"""


@pytest.fixture(scope="module")
def site(make_module_project):
    project = make_module_project().prepare()
    project.shell(CONTENT)
    with project.gunicorn() as server, nginx_for(project, server.base_url) as proxy:
        yield proxy


def get(proxy, path):
    """GET https://example.com<path> through the shipped nginx."""
    return requests.get(
        proxy.https_url + path,
        headers={"Host": "example.com"},
        verify=proxy.cert,
        allow_redirects=False,
        timeout=30,
    )


class Head(HTMLParser):
    """<title>, meta description and canonical link of a page."""

    def __init__(self, html):
        super().__init__()
        self.title, self.description, self.canonical, self._in_title = "", None, [], False
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self._in_title = tag == "title"
        if tag == "meta" and attrs.get("name") == "description":
            self.description = attrs.get("content")
        if tag == "link" and attrs.get("rel") == "canonical":
            self.canonical.append(attrs["href"])

    def handle_endtag(self, tag):
        self._in_title = False

    def handle_data(self, data):
        if self._in_title:
            self.title += data


@pytest.mark.parametrize(
    "path, status, title, description, canonical",
    [
        ("/", 200, "Home - Wagtail Site", "A Wagtail site.", f"{SITE}/"),
        ("/opening-hours/", 200, "Opening hours - Wagtail Site", "When the harbour is open.",
         f"{SITE}/opening-hours/"),
        ("/getting-here/", 200, "Getting here - Wagtail Site", "A Wagtail site.",
         f"{SITE}/getting-here/"),
        ("/search/?query=harbour", 200, "Search - Wagtail Site", "A Wagtail site.", None),
        ("/no-such-page/", 404, "Page not found - Wagtail Site", "A Wagtail site.", None),
    ],
)  # fmt: skip
def test_titles_descriptions_and_canonical_links(site, path, status, title, description, canonical):
    response = get(site, path)
    assert response.status_code == status
    head = Head(response.text)
    assert " ".join(head.title.split()) == title
    assert head.description == description
    assert head.canonical == ([canonical] if canonical else [])


def test_robots_txt_points_at_a_sitemap_of_live_public_pages(site):
    robots = get(site, "/robots.txt")
    assert robots.status_code == 200
    assert robots.headers["Content-Type"].startswith("text/plain")
    lines = robots.text.splitlines()
    assert lines[0] == "User-agent: *" and "Disallow: /admin/" in lines
    (sitemap_line,) = [line for line in lines if line.startswith("Sitemap: ")]
    assert sitemap_line == f"Sitemap: {SITE}/sitemap.xml"

    sitemap = get(site, "/sitemap.xml")
    assert sitemap.status_code == 200 and "xml" in sitemap.headers["Content-Type"]
    namespace = "{http://www.sitemaps.org/schemas/sitemap/0.9}"
    locations = [
        element.text for element in ElementTree.fromstring(sitemap.content).iter(namespace + "loc")
    ]
    assert sorted(locations) == [f"{SITE}/", f"{SITE}/getting-here/", f"{SITE}/opening-hours/"]


def test_nginx_does_not_reveal_its_version(site):
    for path in ("/", "/media/documents/x.pdf"):  # a proxied page and nginx's own 404
        response = get(site, path)
        assert response.headers["Server"] == "nginx", path
        assert not re.search(r"nginx/\d", response.text), path


AUDITED = ["/", "/opening-hours/", "/search/?query=harbour", "/search/?query=zzz", "/no-such-page/"]


def test_public_pages_pass_axe_wcag_22_aa_and_best_practices(site):
    port = site.https_port
    violations = {}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", f"--host-resolver-rules=MAP example.com:443 127.0.0.1:{port}"],
        )  # fmt: skip
        try:
            context = browser.new_context(ignore_https_errors=True)
            page = context.new_page()
            for path in AUDITED:
                response = page.goto(SITE + path)
                assert response.status == (404 if path == "/no-such-page/" else 200), path
                found = (
                    Axe()
                    .run(
                        page,
                        options={"runOnly": {"type": "tag", "values": AXE_TAGS}},
                    )
                    .response["violations"]
                )
                if found:
                    violations[path] = [
                        f"{v['id']} ({v['impact']}): {v['help']} at "
                        + ", ".join(str(node["target"]) for node in v["nodes"][:3])
                        for v in found
                    ]
            # Keyboard: the first Tab lands on the skip link, and following it focuses <main>.
            page.goto(SITE + "/opening-hours/")
            page.keyboard.press("Tab")
            focused = page.evaluate(
                "[document.activeElement.textContent, document.activeElement.getAttribute('href')]"
            )
            assert focused == ["Skip to main content", "#main"]
            page.keyboard.press("Enter")
            assert page.evaluate("document.activeElement.tagName") == "MAIN"
            # The search box has an accessible name.
            assert page.get_by_role("searchbox", name="Search the site").count() == 1
        finally:
            browser.close()
    assert violations == {}
