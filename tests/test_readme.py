"""Layer 3, serve: the baked site's README runs as written.

Every ```sh block of the site README's "Run it on your machine" and "Production" sections is
extracted from a fresh bake (filesystem storage, use_docker=no: there is no Docker engine here, so
the compose block is not baked) and run as it stands, in a fresh `bash -e` with a clean
environment: PATH with uv, HOME, LANG, and UV_PYTHON (the README's advice where uv cannot find
Python). No virtualenv is active. The harness only plays the person at the terminal:
- local development: it answers `createsuperuser` through a pseudo-terminal, gives `runserver` a
  free port (parallel tests cannot all have 8000), then logs in with the user it created;
- production: the variables `.env.example` lists go into `.env` (real PostgreSQL and Redis,
  `PORT`), which the settings and gunicorn.conf.py both read, and the block's gunicorn must answer
  `/readyz/` (database and cache ok) and a page on that port.
The last command of each block is a server; it is stopped once it has answered.
"""

import os
import pty
import re
import secrets
import select
import signal
import subprocess
import time

import pytest
import requests
from conftest import (
    HTTPS,
    SLUG,
    background,
    bake,
    find_python,
    free_port,
    fresh_database,
    private_redis,
    wait_for_http,
)

pytestmark = pytest.mark.slow

SECTIONS = ("Run it on your machine", "Production")


def shell_blocks(readme, title):
    """The ```sh blocks of the level-2 section whose heading starts with `title`."""
    section = re.search(rf"^## {re.escape(title)}.*?$(.*?)(?=^## |\Z)", readme, re.M | re.S)
    assert section, f"README has no section {title!r}"
    return re.findall(r"^```sh\n(.*?)^```$", section.group(1), re.M | re.S)


@pytest.fixture
def site(tmp_path):
    path = bake(tmp_path / "bake", use_docker="no")
    blocks = {title: shell_blocks((path / "README.md").read_text(), title) for title in SECTIONS}
    # Exactly the blocks this module runs: a new one must be added to a test here.
    assert [len(blocks[title]) for title in SECTIONS] == [1, 1], blocks
    return path, blocks


def fresh_shell_env(tmp_path):
    """What a new login shell has: uv on PATH, no virtualenv, no Django variables."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    uv = next(
        p for p in os.environ["PATH"].split(os.pathsep) if os.access(os.path.join(p, "uv"), os.X_OK)
    )
    (bin_dir / "uv").symlink_to(os.path.join(uv, "uv"))
    return {
        "PATH": f"{bin_dir}:/usr/local/bin:/usr/bin:/bin",
        "HOME": os.environ.get("HOME", "/root"),
        "LANG": "C.UTF-8",
        "UV_PYTHON": find_python("3.13"),
    }


def test_local_development_block_runs_as_written(site, tmp_path):
    path, blocks = site
    (block,) = blocks["Run it on your machine"]
    commands = block.strip().splitlines()
    assert commands == [
        "uv sync",
        "uv run python manage.py migrate",
        "uv run python manage.py createsuperuser",
        "uv run python manage.py runserver",
    ]
    port = free_port()
    script = block.replace("manage.py runserver\n", f"manage.py runserver 127.0.0.1:{port}\n")
    password = secrets.token_urlsafe(16)
    answers = [  # createsuperuser's prompts, answered as a person would
        (r"Username[^\n]*:", "editor"),
        (r"Email address:", "editor@example.com"),
        (r"Password:", password),
        (r"Password \(again\):", password),
    ]
    # A fresh shell on a terminal of its own, as a person's: a new session (setsid) whose
    # controlling terminal is the pty (--ctty), so getpass asks on it. (Popen rather than
    # pty.fork(): forking this multi-threaded pytest worker could deadlock the child.)
    terminal, child_end = pty.openpty()
    shell = subprocess.Popen(
        ["setsid", "--ctty", "bash", "-e", "-c", script],
        cwd=path, env=fresh_shell_env(tmp_path),
        stdin=child_end, stdout=child_end, stderr=child_end,
    )  # fmt: skip
    os.close(child_end)
    pid = shell.pid  # setsid does not fork (the child leads no process group), so it is bash's
    output, base = b"", f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            if select.select([terminal], [], [], 0.2)[0]:
                try:
                    output += os.read(terminal, 65536)
                except OSError:  # the shell exited
                    break
            text = output.decode(errors="replace")
            if answers and re.search(answers[0][0] + r"\s*\Z", text):
                os.write(terminal, answers.pop(0)[1].encode() + b"\r")
            if not answers and "Quit the server with CONTROL-C" in text:
                break
        text = output.decode(errors="replace")
        assert not answers, f"createsuperuser did not ask for {answers[0][0]}:\n{text[-3000:]}"
        assert "Superuser created successfully." in text, text[-3000:]
        wait_for_http(base + "/", timeout=60)
        assert requests.get(base + "/", timeout=10).status_code == 200
        session = requests.Session()
        login = session.get(base + "/admin/login/", timeout=10)
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', login.text).group(1)
        dashboard = session.post(
            base + "/admin/login/",
            data={"username": "editor", "password": password, "csrfmiddlewaretoken": token},
            headers={"Referer": base + "/admin/login/"},
            timeout=30,
        )
        assert dashboard.status_code == 200 and "Dashboard" in dashboard.text
    finally:
        os.killpg(pid, signal.SIGTERM)
        shell.wait()
        os.close(terminal)
    assert (path / "db.sqlite3").is_file()  # development settings: SQLite


def test_production_block_runs_as_written(site, tmp_path, worker_id):
    path, blocks = site
    (block,) = blocks["Production"]
    assert f"export DJANGO_SETTINGS_MODULE={SLUG}.settings.production" in block
    assert block.strip().splitlines()[-1] == f"uv run gunicorn {SLUG}.wsgi"
    port = free_port()
    with fresh_database() as database_url:
        # The deployment's variables, in .env next to the development key the bake wrote there.
        production = {
            "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
            "DATABASE_URL": database_url,
            "REDIS_URL": private_redis(worker_id, "function"),
            "PORT": str(port),
            "WEB_CONCURRENCY": "1",
        }
        with (path / ".env").open("a") as dotenv:
            dotenv.writelines(f"{key}={value}\n" for key, value in production.items())
        log = tmp_path / "deploy.log"
        env = fresh_shell_env(tmp_path)
        with background(["bash", "-e", "-c", block], cwd=path, env=env, log=log) as shell:
            try:
                wait_for_http(f"http://127.0.0.1:{port}/healthz/", timeout=480, process=shell)
            except (RuntimeError, TimeoutError) as error:
                pytest.fail(f"{error}\n{log.read_text()[-5000:]}")
            ready = requests.get(f"http://127.0.0.1:{port}/readyz/", timeout=10)
            assert ready.json() == {"database": "ok", "cache": "ok"}
            home = requests.get(f"http://127.0.0.1:{port}/", headers=HTTPS, timeout=10)
            assert home.status_code == 200 and "<h1>Home</h1>" in home.text
        output = log.read_text()
        assert "System check identified no issues (0 silenced)." in output
        assert "static files copied" in output
    # UV_NO_DEV: the production install has no test or lint tools.
    site_packages = next((path / ".venv" / "lib").glob("python3.*/site-packages"))
    assert not list(site_packages.glob("pytest*")) and not list(site_packages.glob("ruff*"))
