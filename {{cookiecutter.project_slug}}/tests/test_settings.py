"""Each settings module is loaded in a fresh interpreter, the way manage.py and gunicorn load it."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

PROJECT = "{{ cookiecutter.project_slug }}"
ROOT = Path(__file__).resolve().parent.parent
PRODUCTION_ENV = {
    "DJANGO_SECRET_KEY": "a-test-key-that-is-long-and-varied-enough-" * 2,
    "DATABASE_URL": "postgres://user:secret@db.internal:5432/site",
    "REDIS_URL": "rediss://cache.internal:6380/1",
{%- if cookiecutter.storage_backend == "s3" %}
    "AWS_STORAGE_BUCKET_NAME": "site-media",
    "AWS_ACCESS_KEY_ID": "key-id",
    "AWS_SECRET_ACCESS_KEY": "secret",
{%- endif %}
}


def load(module, env, *names):
    """Import settings `module` with only `env` set and return the requested settings."""
    code = (
        "import json, sys, django; from django.conf import settings; django.setup();"
        "print(json.dumps(dict((n, getattr(settings, n)) for n in sys.argv[1:]), default=str))"
    )
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DJANGO", "AWS_", "SENTRY", "FRONTEND_CACHE", "CLOUD", "EDGE_CACHE"))
    }
    clean.pop("DATABASE_URL", None)
    clean.pop("REDIS_URL", None)
    result = subprocess.run(
        [sys.executable, "-c", code, *names],
        cwd=ROOT,
        env=clean | env | {"DJANGO_SETTINGS_MODULE": f"{PROJECT}.settings.{module}"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    if names:
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout.strip().splitlines()[-1])
    return result


def test_dev_needs_no_services():
    s = load("dev", {}, "DEBUG", "DATABASES", "CACHES", "STORAGES")
    assert s["DEBUG"] is True
    assert s["DATABASES"]["default"]["ENGINE"] == "django.db.backends.sqlite3"
    assert s["CACHES"]["default"]["BACKEND"].endswith("LocMemCache")
    assert s["STORAGES"]["default"]["BACKEND"].endswith("FileSystemStorage")


def test_dev_secret_key_comes_from_dotenv_not_from_a_tracked_file():
    """The template wrote this checkout's key into .env (git-ignored); a clone without one runs on
    a fallback that says it is for development only."""
    key = load("dev", {"DJANGO_DEV_SECRET_KEY": "k" * 50}, "SECRET_KEY")["SECRET_KEY"]
    assert key == "k" * 50
    key = load("dev", {}, "SECRET_KEY")["SECRET_KEY"]
    dotenv = ROOT / ".env"
    if dotenv.exists() and "DJANGO_DEV_SECRET_KEY=" in dotenv.read_text():
        assert f"DJANGO_DEV_SECRET_KEY={key}\n" in dotenv.read_text() and len(key) >= 50
    else:
        assert key.startswith("django-insecure-dev-only")
    assert key not in (ROOT / PROJECT / "settings" / "dev.py").read_text()


def test_base_settings_state_no_django_default():
    """A setting in base.py that equals Django's own default only hides which choices were made.
    (STORAGES is the exception: production.py and storage.py change its entries.)"""
    import ast

    from django.conf import global_settings

    source = (ROOT / PROJECT / "settings" / "base.py").read_text()
    names = [
        target.id
        for node in ast.parse(source).body
        if isinstance(node, ast.Assign)
        for target in node.targets
        if isinstance(target, ast.Name)
        and target.id.isupper()
        and hasattr(global_settings, target.id)
    ]
    values = load("base", {}, *names)
    restated = [
        name
        for name in names
        if name != "STORAGES"
        and values[name] == json.loads(json.dumps(getattr(global_settings, name), default=str))
    ]
    assert restated == []


def test_production_reads_the_environment():
    s = load(
        "production",
        PRODUCTION_ENV | {"DJANGO_ALLOWED_HOSTS": "a.example,b.example"},
        "DEBUG", "SECRET_KEY", "ALLOWED_HOSTS", "DATABASES", "CACHES", "STORAGES",
        "SECURE_PROXY_SSL_HEADER", "SECURE_SSL_REDIRECT", "FORWARDED_ALLOW_IPS", "SECURE_HSTS_SECONDS",
        "SESSION_COOKIE_SECURE", "CSRF_COOKIE_SECURE", "TASKS", "WAGTAILDOCS_SERVE_METHOD",
    )  # fmt: skip
    assert s["DEBUG"] is False
    assert s["SECRET_KEY"] == PRODUCTION_ENV["DJANGO_SECRET_KEY"]
    assert s["ALLOWED_HOSTS"] == ["a.example", "b.example"]
    db = s["DATABASES"]["default"]
    assert db["ENGINE"] == "django.db.backends.postgresql"
    assert (db["HOST"], db["NAME"], db["CONN_HEALTH_CHECKS"]) == ("db.internal", "site", True)
    assert db["CONN_MAX_AGE"] > 0
    for alias in ("default", "renditions"):
        cache = s["CACHES"][alias]
        assert cache["BACKEND"] == "django_redis.cache.RedisCache"
        assert cache["LOCATION"] == "rediss://cache.internal:6380/1"
        assert cache["OPTIONS"]["IGNORE_EXCEPTIONS"] is True
        assert cache["OPTIONS"]["SOCKET_TIMEOUT"] <= 0.25
    assert s["CACHES"]["default"]["KEY_PREFIX"] != s["CACHES"]["renditions"]["KEY_PREFIX"]
    assert s["STORAGES"]["staticfiles"]["BACKEND"] == (
        "whitenoise.storage.CompressedManifestStaticFilesStorage"
    )
    # gunicorn decides the scheme, believing X-Forwarded-Proto from FORWARDED_ALLOW_IPS only.
    assert s["SECURE_PROXY_SSL_HEADER"] is None
    assert s["FORWARDED_ALLOW_IPS"] == ["127.0.0.1", "::1"]
    assert s["SECURE_SSL_REDIRECT"] and s["SESSION_COOKIE_SECURE"] and s["CSRF_COOKIE_SECURE"]
    assert s["SECURE_HSTS_SECONDS"] >= 300
    assert s["TASKS"]["default"]["BACKEND"] == "django_tasks_db.DatabaseBackend"
{%- if cookiecutter.storage_backend == "s3" %}
    assert s["WAGTAILDOCS_SERVE_METHOD"] == "redirect"
    default = s["STORAGES"]["default"]
    assert default["BACKEND"] == "storages.backends.s3.S3Storage"
    assert default["OPTIONS"]["file_overwrite"] is False
    assert default["OPTIONS"]["signature_version"] == "s3v4"
    assert default["OPTIONS"]["querystring_auth"] is True
    assert s["STORAGES"]["renditions"]["OPTIONS"]["querystring_auth"] is False
{%- else %}
    assert s["WAGTAILDOCS_SERVE_METHOD"] == "serve_view"
    assert s["STORAGES"]["default"]["BACKEND"] == "django.core.files.storage.FileSystemStorage"
{%- endif %}


def test_production_names_every_missing_variable():
    result = load("production", {})
    assert result.returncode != 0
    for name in PRODUCTION_ENV:
        assert name in result.stderr


def test_empty_variables_are_the_same_as_unset():
    empty = {
        name: ""
        for name in (
            "DJANGO_ALLOWED_HOSTS", "DJANGO_SECURE_HSTS_SECONDS", "PAGE_CACHE_SECONDS", "EMAIL_URL",
            "DJANGO_LOG_LEVEL", "FORWARDED_ALLOW_IPS", "WAGTAILDOCS_SERVE_METHOD",
            "AWS_S3_ENDPOINT_URL", "AWS_S3_REGION_NAME", "AWS_S3_CUSTOM_DOMAIN", "SENTRY_DSN",
        )
    }  # fmt: skip
    names = ("ALLOWED_HOSTS", "SECURE_HSTS_SECONDS", "PAGE_CACHE_SECONDS", "FORWARDED_ALLOW_IPS")
    names += ("MAILERS", "WAGTAILDOCS_SERVE_METHOD", "STORAGES")
    with_empty = load("production", PRODUCTION_ENV | empty, *names)
    assert with_empty == load("production", PRODUCTION_ENV, *names)
{%- if cookiecutter.storage_backend == "s3" %}
    options = with_empty["STORAGES"]["default"]["OPTIONS"]
    assert options["endpoint_url"] is None and options["region_name"] is None
{%- endif %}


def test_production_refuses_a_weak_secret_key_and_a_malformed_url():
    # The template's attack tests try every variable; here one of each, in a fresh interpreter.
    for name, value in (("DJANGO_SECRET_KEY", "ab" * 40), ("REDIS_URL", "localhost:6379")):
        result = load("production", PRODUCTION_ENV | {name: value})
        assert result.returncode != 0
        assert name in result.stderr.strip().splitlines()[-1]


def test_production_refuses_sqlite():
    result = load("production", PRODUCTION_ENV | {"DATABASE_URL": "sqlite:///db.sqlite3"})
    assert result.returncode != 0
    assert "DATABASE_URL must point at PostgreSQL" in result.stderr


@pytest.mark.parametrize("method", ["direct"{% if cookiecutter.storage_backend == "filesystem" %}, "redirect"{% endif %}])
def test_a_serve_method_that_bypasses_privacy_is_flagged(method):
    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env=os.environ
        | PRODUCTION_ENV
        | {
            "DJANGO_SETTINGS_MODULE": f"{PROJECT}.settings.production",
            "WAGTAILDOCS_SERVE_METHOD": method,
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert f"{PROJECT}.W001" in result.stderr + result.stdout


PURGE_ENV = {
    "FRONTEND_CACHE_PURGE_URL": "http://127.0.0.1:8008",
    "CLOUDFLARE_API_TOKEN": "abc_DEF-123",
    "CLOUDFLARE_ZONE_ID": "0123456789abcdef0123456789abcdef",
    "CLOUDFRONT_DISTRIBUTION_ID": "E2QWRUHAPOMQZL",
    "EDGE_CACHE_SECONDS": "3600",
}


def test_frontend_cache_backends_come_from_the_environment():
    s = load("production", PRODUCTION_ENV | PURGE_ENV, "WAGTAILFRONTENDCACHE", "EDGE_CACHE_SECONDS")
    backends = s["WAGTAILFRONTENDCACHE"]
    assert backends["edge"]["LOCATION"] == "http://127.0.0.1:8008"
    assert backends["edge"]["BACKEND"] == f"{PROJECT}.frontendcache.HTTPBackend"
    assert (backends["cloudflare"]["BEARER_TOKEN"], backends["cloudflare"]["ZONEID"]) == (
        "abc_DEF-123",
        "0123456789abcdef0123456789abcdef",
    )
    assert backends["cloudfront"]["DISTRIBUTION_ID"] == "E2QWRUHAPOMQZL"
    assert s["EDGE_CACHE_SECONDS"] == 3600
    # Any one alone works too.
    for name in ("FRONTEND_CACHE_PURGE_URL", "CLOUDFRONT_DISTRIBUTION_ID"):
        alone = load("production", PRODUCTION_ENV | {name: PURGE_ENV[name]}, "WAGTAILFRONTENDCACHE")
        assert len(alone["WAGTAILFRONTENDCACHE"]) == 1


@pytest.mark.parametrize("empty", [False, True], ids=["unset", "empty"])
def test_no_frontend_cache_variables_means_no_purging(empty):
    env = {name: "" for name in PURGE_ENV} if empty else {}
    s = load("production", PRODUCTION_ENV | env, "WAGTAILFRONTENDCACHE", "EDGE_CACHE_SECONDS")
    assert s == {"WAGTAILFRONTENDCACHE": {}, "EDGE_CACHE_SECONDS": 86400}


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("FRONTEND_CACHE_PURGE_URL", "127.0.0.1:8008"),
        ("FRONTEND_CACHE_PURGE_URL", "http://127.0.0.1:8008/purge/"),
        ("CLOUDFLARE_API_TOKEN", "token with spaces"),
        ("CLOUDFLARE_ZONE_ID", "not-a-zone"),
        ("CLOUDFRONT_DISTRIBUTION_ID", "e2qwruhapomqzl"),
        ("EDGE_CACHE_SECONDS", "one day"),
    ],
)
def test_a_malformed_frontend_cache_variable_stops_start_up_naming_it(name, value):
    result = load("production", PRODUCTION_ENV | PURGE_ENV | {name: value})
    assert result.returncode != 0
    assert name in result.stderr


@pytest.mark.parametrize(
    ("given", "missing"),
    [
        ("CLOUDFLARE_API_TOKEN", "CLOUDFLARE_ZONE_ID"),
        ("CLOUDFLARE_ZONE_ID", "CLOUDFLARE_API_TOKEN"),
    ],
)
def test_cloudflare_needs_both_variables(given, missing):
    result = load("production", PRODUCTION_ENV | {given: PURGE_ENV[given], missing: ""})
    assert result.returncode != 0
    assert f"{missing} is not set" in result.stderr
