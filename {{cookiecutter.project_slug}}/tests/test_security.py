from django.core.files.base import ContentFile
from wagtail.documents.models import Document


def policy(response):
    header = response.headers["Content-Security-Policy"]
    return {d.split()[0]: d.split()[1:] for d in header.split("; ")}


def test_public_pages_get_the_strict_policy(client, home):
    csp = policy(client.get("/"))
    assert csp["default-src"] == ["'self'"]
    assert csp["object-src"] == ["'none'"]
    assert "script-src" not in csp and "style-src" not in csp  # default-src: nothing inline


def test_the_admin_gets_its_own_policy(client, editor):
    # Wagtail's admin needs inline scripts and styles; only its pages get them.
    assert "'unsafe-inline'" in policy(client.get("/admin/login/"))["script-src"]
    client.force_login(editor)
    assert "'unsafe-inline'" in policy(client.get("/admin/"))["style-src"]
    assert "'unsafe-inline'" not in client.get("/").headers["Content-Security-Policy"]


def test_documents_keep_wagtails_own_policy(client, db):
    document = Document(title="Report")
    document.file.save("report.txt", ContentFile(b"hello"), save=False)
    document.save()
    response = client.get(document.url)
    assert response.headers["Content-Security-Policy"] == "default-src 'none'"
