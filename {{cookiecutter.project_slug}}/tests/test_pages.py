from django.conf import settings

from home.models import ContentPage


def test_homepage_renders(client, home):
    response = client.get("/")
    assert response.status_code == 200
    assert f"<h1>{home.title}</h1>" in response.text


def test_content_page_renders_its_body(client, home):
    page = ContentPage(
        title="About us",
        slug="about",
        body=[("heading", "Who we are"), ("paragraph", "<p>A small team.</p>")],
    )
    home.add_child(instance=page)
    page.save_revision().publish()

    response = client.get("/about/")
    assert response.status_code == 200
    assert "<h2>Who we are</h2>" in response.text
    assert "A small team." in response.text


def test_unknown_page_is_404(client, home):
    assert client.get("/no-such-page/").status_code == 404


def test_admin_login_renders(client, db):
    response = client.get("/admin/login/")
    assert response.status_code == 200
    assert 'name="password"' in response.text


def test_admin_requires_login_and_lets_an_editor_in(client, editor):
    assert client.get("/admin/").status_code == 302
    client.force_login(editor)
    assert client.get("/admin/").status_code == 200


def test_pages_carry_the_site_name_a_description_and_a_canonical_link(client, home):
    html = client.get("/").text
    site_name = {{ cookiecutter.project_name | tojson }}
    assert f"<title>{home.title} - {site_name}</title>" in html
    assert f'<meta name="description" content="{settings.SITE_DESCRIPTION}">' in html
    assert f'<link rel="canonical" href="{home.full_url}">' in html
    assert '<a class="skip-link" href="#main">' in html and '<main id="main"' in html


def test_robots_txt_names_the_sitemap_and_the_sitemap_lists_live_pages(client, home):
    robots = client.get("/robots.txt")
    assert robots["Content-Type"].startswith("text/plain")
    assert "Sitemap: http://testserver/sitemap.xml" in robots.text.splitlines()
    sitemap = client.get("/sitemap.xml")
    assert sitemap.status_code == 200
    assert f"<loc>{home.full_url}</loc>" in sitemap.text
