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
