"""Layer 3, serve: the default project under gunicorn with production settings."""

import os
import re
import socket
import sys
import time

import pytest
import requests
from conftest import HTTPS, SLUG, TEMPLATE, background, check, free_port


@pytest.mark.slow
def test_default_project_serves_pages_static_and_probes(make_project):
    project = make_project().prepare()
    with project.gunicorn() as server:
        base = server.base_url

        home = requests.get(base + "/", headers=HTTPS, timeout=10)
        assert home.status_code == 200
        assert "<h1>Home</h1>" in home.text
        css = re.search(r'href="(/static/css/site\.[0-9a-f]{12}\.css)"', home.text)
        assert css, "page does not link the hashed stylesheet"

        # Plain HTTP is redirected to HTTPS, except the probes.
        plain = requests.get(
            base + "/", headers={"Host": "example.com"}, allow_redirects=False, timeout=10
        )
        assert plain.status_code == 301 and plain.headers["Location"] == "https://example.com/"
        for probe in ("/healthz/", "/readyz/"):
            response = requests.get(base + probe, headers={"Host": "10.0.0.7"}, timeout=10)
            assert response.status_code == 200, probe
        assert requests.get(base + "/readyz/", timeout=10).json() == {
            "database": "ok",
            "cache": "ok",
        }

        # The Wagtail admin loads in production, with its hashed static files.
        login = requests.get(base + "/admin/login/", headers=HTTPS, timeout=10)
        assert login.status_code == 200
        admin_css = re.search(
            r'href="(/static/wagtailadmin/css/core\.[0-9a-f]{12}\.css)"', login.text
        )
        assert admin_css, "admin login page does not link hashed core.css"

        for encoding in ("br", "gzip"):
            response = requests.get(
                base + admin_css.group(1), headers=HTTPS | {"Accept-Encoding": encoding}, timeout=10
            )
            assert response.status_code == 200
            assert response.headers["Content-Encoding"] == encoding
            assert response.headers["Cache-Control"] == "max-age=315360000, public, immutable"
        assert requests.get(base + css.group(1), headers=HTTPS, timeout=10).status_code == 200


@pytest.mark.slow
def test_readme_demo_command_serves_the_default_site(tmp_path):
    """The README's first command: bake the defaults, migrate SQLite, make an admin, serve."""
    readme = (TEMPLATE / "README.md").read_text()
    assert "\nuv run scripts/demo.py\n" in readme
    port = free_port()
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DJANGO_", "DATABASE_URL", "REDIS_URL"))
    }
    result = check(
        [
            sys.executable,
            "scripts/demo.py",
            "--smoke-test",
            "--output",
            str(tmp_path / "demo"),
            "--port",
            str(port),
        ],
        cwd=TEMPLATE,
        env=env,
    )
    assert "smoke test passed" in result.stdout
    assert re.search(r"user: admin\s+password: \S{12,}", result.stdout)
    assert (tmp_path / "demo" / SLUG / "db.sqlite3").is_file()  # SQLite: no services used


@pytest.mark.slow
def test_rediss_url_reaches_a_tls_redis(make_project, tmp_path):
    """REDIS_URL=rediss://… talks TLS to Redis (a private TLS-only redis-server on loopback)."""
    cert, key = tmp_path / "redis.crt", tmp_path / "redis.key"
    check(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)]
    )  # fmt: skip
    port = free_port()
    server = [
        "redis-server", "--port", "0", "--tls-port", str(port), "--tls-cert-file", str(cert),
        "--tls-key-file", str(key), "--tls-auth-clients", "no", "--save", "", "--appendonly", "no",
        "--bind", "127.0.0.1", "--dir", str(tmp_path),
    ]  # fmt: skip
    with background(server, log=tmp_path / "redis.log"):
        url = f"rediss://127.0.0.1:{port}/0?ssl_ca_certs={cert}"
        project = make_project()
        code = (
            "from django.core.cache import caches\n"
            "for alias in ('default', 'renditions'):\n"
            "    caches[alias].set('tls-probe', alias, 60)\n"
            "    print(alias, caches[alias].get('tls-probe'))\n"
        )
        for _ in range(100):  # the server needs a moment to listen
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.05)
        output = project.shell(code, env={"REDIS_URL": url})
        # IGNORE_EXCEPTIONS turns failures into misses, so a value read back proves the round trip.
        assert "default default" in output and "renditions renditions" in output
        keys = check(
            [
                "redis-cli",
                "--tls",
                "--cacert",
                str(cert),
                "-h",
                "127.0.0.1",
                "-p",
                str(port),
                "--scan",
            ]
        ).stdout.split()
        assert any(k.startswith("default:") for k in keys) and any(
            k.startswith("renditions:") for k in keys
        )
