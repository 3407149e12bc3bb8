from django.db import DatabaseError


def test_healthz_needs_no_database(client):
    # No `db` fixture: pytest-django fails the test if the probe touches the database.
    response = client.get("/healthz/")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz_reports_database_and_cache(client, db):
    response = client.get("/readyz/")
    assert response.status_code == 200
    assert response.json() == {"database": "ok", "cache": "ok"}


def test_readyz_is_503_without_a_database(client, db, monkeypatch):
    def broken(*args, **kwargs):
        raise DatabaseError("connection refused")

    with monkeypatch.context() as patched:
        patched.setattr("django.db.backends.utils.CursorWrapper.execute", broken)
        response = client.get("/readyz/")
    assert response.status_code == 503
    assert response.json()["database"] == "unavailable"


def test_probes_skip_host_validation(client):
    # Load balancers call probes by IP address, which is not in ALLOWED_HOSTS.
    assert client.get("/healthz/", HTTP_HOST="10.1.2.3").status_code == 200
