"""Shared machinery for the template's test layers.

bake -> run -> serve -> faults -> browser: every layer bakes with the real cookiecutter, and every
layer after `bake` runs the baked project in a virtualenv shared by all bakes of one Python
version, against the Postgres and Redis on this machine.
"""

import hashlib
import http.client
import itertools
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import threading
import time
import uuid
from contextlib import ExitStack, contextmanager, suppress
from pathlib import Path

import psycopg
import pytest
import redis as redis_lib
import requests
from cookiecutter.main import cookiecutter
from filelock import FileLock

TEMPLATE = Path(__file__).resolve().parent.parent
CACHE = Path(os.environ.get("TEMPLATE_TEST_CACHE", TEMPLATE / ".cache"))
OPTIONS = json.loads((TEMPLATE / "cookiecutter.json").read_text())
CHOICES = {k: v for k, v in OPTIONS.items() if isinstance(v, list) and not k.startswith("_")}
DEFAULTS = {key: value[0] for key, value in CHOICES.items()}
SLUG = "wagtail_site"  # derived from the default project_name

# Every combination of the choice options (2^5 = 32).
ALL_COMBOS = [
    dict(zip(CHOICES, values, strict=True)) for values in itertools.product(*CHOICES.values())
]
# Options that only add files nothing imports (Dockerfile, CI workflow); test_bake proves that
# combinations differing only in these produce identical runtime files.
NON_RUNTIME_OPTIONS = ("use_docker", "ci")
RUNTIME_COMBOS = [c for c in ALL_COMBOS if all(c[o] == DEFAULTS[o] for o in NON_RUNTIME_OPTIONS)]

POSTGRES_ADMIN_URL = os.environ.get(
    "TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/postgres"
)
# Another port lets two checkouts run their suites at once without sharing databases.
REDIS_HOST, REDIS_PORT = "127.0.0.1", int(os.environ.get("TEST_REDIS_PORT", "6379"))


def combo_id(combo):
    return "-".join(f"{v}" for k, v in combo.items())


# ---------------------------------------------------------------------------------------------
# Baking


def bake(output_dir, **answers):
    """Bake the template with `answers` into output_dir and return the project directory."""
    return Path(
        cookiecutter(
            str(TEMPLATE),
            no_input=True,
            extra_context=answers,
            output_dir=str(output_dir),
            overwrite_if_exists=False,
        )
    )


def project_files(project):
    """Relative path -> bytes for every file in a baked project."""
    return {
        str(p.relative_to(project)): p.read_bytes()
        for p in sorted(project.rglob("*"))
        if p.is_file() and "__pycache__" not in p.parts
    }


# ---------------------------------------------------------------------------------------------
# Interpreters and the shared virtualenvs


def find_python(version):
    """An interpreter for `version` (e.g. "3.13"): on PATH, or under pyenv."""
    candidates = [shutil.which(f"python{version}")]
    pyenv_root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    candidates += sorted(pyenv_root.glob(f"versions/{version}.*/bin/python{version}"), reverse=True)
    for candidate in filter(None, candidates):
        probe = subprocess.run(
            [candidate, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
            capture_output=True,
            text=True,
        )
        if probe.returncode == 0 and probe.stdout.strip() == version:
            return str(candidate)
    pytest.fail(
        f"Python {version} not found: install it (pyenv install {version}) or put python{version} on PATH"
    )


def project_venv(python_version, tmp_factory):
    """The virtualenv for baked projects on `python_version`, built once and shared.

    It is installed from the uv.lock (dev group included) of the combination with the most
    dependencies (s3 + sentry), so the suite runs the versions a site installs; test_bake checks
    every other combination declares a subset of those dependencies. Keyed by the hash of that
    pyproject.toml and lock, so a change to either builds a new one.
    """
    full = bake(
        tmp_factory.mktemp("venv-source"),
        python_version=python_version,
        storage_backend="s3",
        error_reporting="sentry",
    )
    pyproject = (full / "pyproject.toml").read_bytes() + (full / "uv.lock").read_bytes()
    key = hashlib.sha256(pyproject).hexdigest()[:12]
    venv = CACHE / "venvs" / f"py{python_version}-{key}"
    CACHE.joinpath("venvs").mkdir(parents=True, exist_ok=True)
    with FileLock(str(venv) + ".lock"):
        if not (venv / ".complete").exists():
            shutil.rmtree(venv, ignore_errors=True)
            uv = shutil.which("uv") or pytest.fail("uv is needed: pip install uv")
            check(
                [uv, "sync", "-q", "--locked", "--no-install-project", "--compile-bytecode",
                 "--python", find_python(python_version)],
                cwd=full,
                env={k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
                | {"UV_PROJECT_ENVIRONMENT": str(venv)},
            )  # fmt: skip
            (venv / ".complete").touch()
    return venv


@pytest.fixture(scope="session")
def venv_for(tmp_path_factory):
    cache = {}

    def get(python_version):
        if python_version not in cache:
            cache[python_version] = project_venv(python_version, tmp_path_factory)
        return cache[python_version]

    return get


# ---------------------------------------------------------------------------------------------
# Processes


def check(cmd, cwd=None, env=None, timeout=600):
    """Run cmd; on failure fail the test with its whole output."""
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0:
        pytest.fail(
            f"command failed ({result.returncode}): {' '.join(map(str, cmd))}\n"
            f"--- stdout\n{result.stdout[-6000:]}\n--- stderr\n{result.stderr[-6000:]}"
        )
    return result


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_http(url, timeout=30, process=None, headers=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{url}: process exited with {process.returncode}")
        try:
            requests.get(url, timeout=2, headers=headers)
            return
        except requests.RequestException:
            time.sleep(0.1)
    raise TimeoutError(f"{url} did not answer within {timeout} s")


def request_from(source, base_url, method, path, headers=None):
    """One plain-HTTP request to base_url (http://127.0.0.1:PORT) sent from the loopback address
    `source`: any 127.x.y.z is a usable source on Linux, so a test can be a client that is not
    127.0.0.1 (not a trusted proxy, not allowed to purge). Returns (status, headers)."""
    port = int(base_url.rsplit(":", 1)[1])
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=20, source_address=(source, 0))
    try:
        conn.request(method, path, headers=headers or {})
        response = conn.getresponse()
        return response.status, dict(response.getheaders())
    finally:
        conn.close()


@contextmanager
def background(cmd, cwd=None, env=None, log=None):
    """Start cmd in its own process group; stop the whole group on exit."""
    out = open(log, "ab") if log else subprocess.DEVNULL
    process = subprocess.Popen(
        cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        if log:
            out.close()


@contextmanager
def silent_listener():
    """A TCP port that accepts connections and never says a word (a hung server)."""
    server = socket.create_server(("127.0.0.1", 0))
    accepted, stop = [], threading.Event()

    def accept():
        server.settimeout(0.2)
        while not stop.is_set():
            with suppress(TimeoutError):
                accepted.append(server.accept()[0])

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1]
    finally:
        stop.set()
        thread.join()
        for conn in accepted:
            conn.close()
        server.close()


# ---------------------------------------------------------------------------------------------
# Services: a fresh Postgres database and a private Redis database per test


@contextmanager
def fresh_database():
    """A new, empty Postgres database; dropped (with its pytest-django test_ twin) afterwards."""
    name = f"tpl_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.execute(f'DROP DATABASE IF EXISTS "test_{name}" WITH (FORCE)')


def database_exists(name):
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as conn:
        return conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()


def prepared_key(project):
    """What migrate's and collectstatic's results depend on: the installed packages (the venv)
    and the project's production settings, migrations and static files (dev.py holds a per-bake
    random key and does not take part)."""
    digest = hashlib.sha256(project.venv.name.encode())
    for path in sorted(project.path.rglob("*")):
        rel = path.relative_to(project.path)
        if (
            path.is_file()
            and {"settings", "migrations", "static"} & set(rel.parts[:-1])
            and rel.name not in ("dev.py", "test.py")
        ):
            digest.update(str(rel).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


_module_slots = itertools.cycle(range(1, 7))


def private_redis(worker_id, scope):
    """A flushed Redis database of this xdist worker's own, so that no two live projects share
    keys: worker N owns databases 1+7N .. 7+7N (mod 15; 0 is left alone). Function-scoped
    projects use the first; module-scoped projects take the other six in turn."""
    worker = 0 if worker_id == "master" else int(worker_id.removeprefix("gw"))
    slot = 0 if scope == "function" else next(_module_slots)
    index = 1 + (7 * worker + slot) % 15
    redis_lib.Redis(host=REDIS_HOST, port=REDIS_PORT, db=index).flushdb()
    return f"redis://{REDIS_HOST}:{REDIS_PORT}/{index}"


@pytest.fixture
def postgres_url():
    with fresh_database() as url:
        yield url


@pytest.fixture
def redis_url(worker_id):
    return private_redis(worker_id, "function")


# ---------------------------------------------------------------------------------------------
# A baked project ready to run


class Project:
    """A baked project plus the environment that runs it with production settings."""

    def __init__(self, path, answers, venv, database_url, redis_url, extra_env=None):
        self.path = path
        self.answers = answers
        self.database_url = database_url  # this project's own database, even if .env names it
        self.slug = path.name
        self.venv = venv
        self.python = str(venv / "bin" / "python")
        self.env = {
            "PATH": f"{venv / 'bin'}{os.pathsep}{os.environ['PATH']}",
            "HOME": os.environ.get("HOME", "/root"),
            "LANG": "C.UTF-8",
            "VIRTUAL_ENV": str(venv),
            "DJANGO_SETTINGS_MODULE": f"{self.slug}.settings.production",
            "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_url,
            "WEB_CONCURRENCY": "2",
        }
        if answers.get("storage_backend") == "s3":
            # Satisfies the settings; tests that store files point these at the local S3 server.
            self.env |= {
                "AWS_STORAGE_BUCKET_NAME": "unused-bucket",
                "AWS_ACCESS_KEY_ID": "testing",
                "AWS_SECRET_ACCESS_KEY": "testing",
                "AWS_S3_REGION_NAME": "us-east-1",
            }
        self.env |= extra_env or {}

    def manage(self, *args, env=None, timeout=600):
        return check(
            [self.python, "manage.py", *args],
            cwd=self.path,
            env=self.env | (env or {}),
            timeout=timeout,
        )

    def prepare(self):
        """migrate + collectstatic: what a release does before serving.

        Both results are made once per distinct input (prepared_key) and reused: the database is
        cloned from a migrated template database, staticfiles/ is hard-linked from a cached
        collectstatic output. The run layer runs the real commands on every combination; so does
        a project whose DATABASE_URL was pointed at another server (a test's private cluster).
        """
        key = prepared_key(self)
        static_cache = CACHE / "staticfiles" / key
        CACHE.joinpath("staticfiles").mkdir(parents=True, exist_ok=True)
        with FileLock(str(static_cache) + ".lock"):
            if not static_cache.joinpath(".complete").exists():
                shutil.rmtree(static_cache, ignore_errors=True)
                self.manage("collectstatic", "--noinput", "-v0")
                shutil.copytree(self.path / "staticfiles", static_cache)
                static_cache.joinpath(".complete").touch()
            if self.env.get("DATABASE_URL", self.database_url) != self.database_url:
                self.manage("migrate", "--noinput", "-v0")
            else:
                self.clone_migrated_database(f"tpl_migrated_{key}")
        shutil.rmtree(self.path / "staticfiles", ignore_errors=True)
        shutil.copytree(static_cache, self.path / "staticfiles", copy_function=os.link)
        (self.path / "staticfiles" / ".complete").unlink()
        return self

    def clone_migrated_database(self, template_db):
        """Replace this project's (empty) database with a copy of template_db, migrating one
        first if there is none yet (callers hold a lock)."""
        if not database_exists(template_db):
            with fresh_database() as scratch:
                self.manage("migrate", "--noinput", "-v0", env={"DATABASE_URL": scratch})
                with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as conn:
                    conn.execute(  # a rename is atomic: a half-migrated one is never used
                        f'ALTER DATABASE "{scratch.rsplit("/", 1)[1]}" RENAME TO "{template_db}"'
                    )
        name = self.database_url.rsplit("/", 1)[1]
        with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE "{name}"')
            conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template_db}"')

    def shell(self, code, env=None):
        """Run Python `code` inside the project with django set up; return its stdout."""
        script = "import django; django.setup()\n" + code
        return self.manage("shell", "-c", script, env=env).stdout

    @contextmanager
    def gunicorn(self, port=None, env=None, log=None, args=()):
        """Serve the project under gunicorn with its own gunicorn.conf.py."""
        port = port or free_port()
        log = log or self.path / f"gunicorn-{port}.log"
        cmd = [str(self.venv / "bin" / "gunicorn"), f"{self.slug}.wsgi", *args]
        with background(
            cmd, cwd=self.path, env=self.env | {"PORT": str(port)} | (env or {}), log=log
        ) as process:
            base = f"http://127.0.0.1:{port}"
            try:
                wait_for_http(base + "/healthz/", timeout=60, process=process)
            except (RuntimeError, TimeoutError) as error:
                pytest.fail(f"gunicorn did not start: {error}\n{Path(log).read_text()[-4000:]}")
            process.base_url = base
            process.log = Path(log)
            yield process


@pytest.fixture
def make_project(tmp_path, venv_for, postgres_url, redis_url):
    """Bake with the given answers (defaults otherwise) and return a ready-to-run Project."""

    def make(extra_env=None, **answers):
        answers = DEFAULTS | answers
        path = bake(tmp_path / "bake", **answers)
        return Project(
            path, answers, venv_for(answers["python_version"]), postgres_url, redis_url, extra_env
        )

    return make


@pytest.fixture(scope="module")
def make_module_project(tmp_path_factory, venv_for, worker_id):
    """Like make_project, for a project shared by the tests of one module (one bake, one
    migrate, one gunicorn); each call gets its own database; all share the module's Redis db."""
    with ExitStack() as stack:

        def make(extra_env=None, **answers):
            answers = DEFAULTS | answers
            path = bake(tmp_path_factory.mktemp("bake"), **answers)
            database = stack.enter_context(fresh_database())
            redis = private_redis(worker_id, "module")
            return Project(
                path, answers, venv_for(answers["python_version"]), database, redis, extra_env
            )

        yield make


HTTPS = {"X-Forwarded-Proto": "https", "Host": "example.com"}


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items):
    """The tests of a module that share a module-scoped project run on one xdist worker, so the
    project is baked, migrated and served once, not once per worker (an explicit xdist_group
    mark wins)."""
    for item in items:
        if "make_module_project" in item.fixturenames and not item.get_closest_marker(
            "xdist_group"
        ):
            item.add_marker(pytest.mark.xdist_group(item.module.__name__))
