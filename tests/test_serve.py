"""Layer 3, serve: the default project under gunicorn with production settings."""

import os
import re
import resource
import shutil
import socket
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
    """The README's first command, as written (`uv run scripts/demo.py`, here with --smoke-test):
    bake the defaults, install, migrate SQLite, make an admin, serve, log in. uv gives the script
    its own small environment (PEP 723 metadata, not the template's test toolchain), the site gets
    its runtime dependencies only, the demo prints its own instructions and not the post-gen
    hook's, and the site answers within the README's 60 s (downloads already in uv's cache)."""
    readme = (TEMPLATE / "README.md").read_text()
    assert "\nuv run scripts/demo.py\n" in readme
    port = free_port()
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DJANGO_", "DATABASE_URL", "REDIS_URL", "VIRTUAL_ENV"))
    }
    uv = shutil.which("uv") or pytest.fail("uv is needed")
    # The 60 s are for a fresh machine, where the demo has the CPUs to itself: its CPU time (all
    # its processes) is that wall time, and unlike wall time here it does not grow with the load
    # other tests put on this shared machine.
    cpu_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    result = check(
        [
            uv,
            "run",
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
    elapsed = time.monotonic() - started
    cpu_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = sum(getattr(cpu_after, f) - getattr(cpu_before, f) for f in ("ru_utime", "ru_stime"))
    assert "smoke test passed" in result.stdout
    assert cpu < 60, f"the demo used {cpu:.0f} s of CPU ({elapsed:.0f} s wall on this machine)"
    assert re.search(r"user: admin\s+password: \S{12,}", result.stdout)
    assert (tmp_path / "demo" / SLUG / "db.sqlite3").is_file()  # SQLite: no services used
    # Only the demo's own instructions: not the hook's next steps, which it has just run.
    assert "createsuperuser" not in result.stdout and "Your Wagtail site is in" not in result.stdout
    # The script's environment: cookiecutter and requests, none of the template's test tools.
    tools = re.search(r"^demo environment: (.*)$", result.stdout, re.MULTILINE).group(1).split()
    assert "cookiecutter" in tools and "requests" in tools
    assert not {"pytest", "playwright", "moto", "boto3", "ruff"} & set(tools), tools
    # The site's environment: what runs the site, no test or lint tools.
    site_packages = next(
        (tmp_path / "demo" / SLUG / ".venv" / "lib").glob("python3.*/site-packages")
    )
    installed = {p.name.split("-")[0].lower() for p in site_packages.glob("*.dist-info")}
    assert {"wagtail", "django", "gunicorn"} <= installed
    assert not {"pytest", "pytest_django", "ruff"} & installed, installed


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
