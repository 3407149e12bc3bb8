"""Production: everything comes from the environment; a missing required variable stops start-up
with one error that names every missing variable (see .env.example)."""

from datetime import timedelta

from django.core.exceptions import ImproperlyConfigured
from marshmallow import ValidationError
from marshmallow.validate import OneOf, Range, Regexp

from .base import *

DEBUG = False


def weak_keys(keys):
    """Django's rule for a secret key (check security.W009): 50+ characters, 5+ different ones."""
    keys = [key.strip() for key in keys]
    return [
        number
        for number, key in enumerate(keys, 1)
        if len(key) < 50 or len(set(key)) < 5 or key.startswith("django-insecure-")
    ]


def strong_secret_key(key):
    if weak_keys([key]):  # the key itself is never printed
        raise ValidationError("weak: use 50+ random characters, at least 5 different ones")


def strong_secret_keys(keys):
    if weak := weak_keys(keys):
        raise ValidationError(f"key number {weak} is weak: use 50+ random characters")


# Enforced: a weak key stops start-up instead of signing sessions and password-reset links with
# something guessable.
SECRET_KEY = env.str("DJANGO_SECRET_KEY", validate=strong_secret_key)
# Rotation (README: "Rotate the secret key"): the previous key(s), comma separated. Sessions,
# password-reset links and signed values made with them stay valid; new ones use SECRET_KEY.
SECRET_KEY_FALLBACKS = [
    key.strip()
    for key in env.list("DJANGO_SECRET_KEY_FALLBACKS", default=[], validate=strong_secret_keys)
    or []
]
ALLOWED_HOSTS = env.list(
    "DJANGO_ALLOWED_HOSTS",
    default=["{{ cookiecutter.domain_name }}"],
)
CSRF_TRUSTED_ORIGINS = env.list(
    "DJANGO_CSRF_TRUSTED_ORIGINS",
    default=["https://{{ cookiecutter.domain_name }}"],
)

# Persistent connections save a connect per request; health checks replace a connection that
# died (e.g. after a Postgres restart) before a request uses it.
# PostgreSQL only: Wagtail's search index uses its full-text search (a validator, not a raise
# after seal(), so manage.py shows this message rather than a confusing re-import error).
env.str(
    "DATABASE_URL",
    default="",  # unset is reported once, by dj_db_url below
    validate=Regexp(
        r"^(postgres|postgresql|pgsql)://",
        error="DATABASE_URL must point at PostgreSQL (postgres://...) in production.",
    ),
)
DATABASES = {
    "default": env.dj_db_url("DATABASE_URL", conn_max_age=600, conn_health_checks=True),
}
# A database that does not answer fails a request (and /readyz/) in seconds, not minutes
# (?connect_timeout= in DATABASE_URL wins; a missing DATABASE_URL is reported by env.seal()).
if DATABASES["default"]:
    DATABASES["default"].setdefault("OPTIONS", {}).setdefault("connect_timeout", 3)

# Redis, not a per-process cache (Wagtail's guide): every worker and instance shares it. A failing
# or hung Redis must not fail or stall a request, so errors are ignored (and logged) and timeouts
# are short: a LAN Redis answers in well under a millisecond.
REDIS_URL = env.str(
    "REDIS_URL", validate=Regexp(r"^(redis|rediss|unix)://", error="Use redis:// or rediss://.")
)
REDIS_OPTIONS = {
    "IGNORE_EXCEPTIONS": True,
    "SOCKET_CONNECT_TIMEOUT": 0.1,
    "SOCKET_TIMEOUT": 0.1,
    # After an error, skip Redis for a few seconds: a hung Redis costs one timeout, not one per
    # cache call (a page with many images makes many).
    "REDIS_CLIENT_CLASS": "{{ cookiecutter.project_slug }}.redis_breaker.CircuitBreakerRedis",
}
CACHES = {
    alias: {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": alias,  # separate key spaces in one Redis database
        "OPTIONS": REDIS_OPTIONS,
    }
    for alias in ("default", "renditions", "pagecache")
}
# The page cache catches its own errors: it logs one line and skips Redis for a few seconds, so a
# hung Redis costs one timeout, not one per request (pagecache.py). Whole pages are stored zlib
# compressed: HTML shrinks several times, so Redis holds several times as many pages.
CACHES["pagecache"]["OPTIONS"] = REDIS_OPTIONS | {
    "IGNORE_EXCEPTIONS": False,
    "COMPRESSOR": "django_redis.compressors.zlib.ZlibCompressor",
}
DJANGO_REDIS_LOG_IGNORED_EXCEPTIONS = True

# Anonymous page views are served from Redis for this long (0 turns the page cache off); publish,
# unpublish, move and delete invalidate at once (a generation kept in PostgreSQL, pagecache.py),
# so this only bounds how long unused pages take up Redis memory.
PAGE_CACHE_SECONDS = env.int("PAGE_CACHE_SECONDS", default=600)
# Browsers and CDNs may show an anonymous page this long after a publish (Cache-Control max-age).
PAGE_CACHE_MAX_AGE = env.int("PAGE_CACHE_MAX_AGE", default=60)

# The edge and CDN caches in front of the site, purged by the worker when content changes
# (frontendcache.py has the policy). Any combination; none set means nothing is purged and shared
# caches keep a page PAGE_CACHE_MAX_AGE at most. Empty values count as unset.
# HTTP PURGE, e.g. http://127.0.0.1:8008 for the shipped nginx (deploy/nginx.conf) or Varnish:
FRONTEND_CACHE_PURGE_URL = env.str(
    "FRONTEND_CACHE_PURGE_URL",
    default="",
    validate=Regexp(
        r"^(https?://[A-Za-z0-9.:\[\]-]+/?)?$",
        error="use http(s)://host[:port] of the cache's PURGE listener, without a path",
    ),
)
CLOUDFLARE_API_TOKEN = env.str(
    "CLOUDFLARE_API_TOKEN",
    default="",
    validate=Regexp(r"^[A-Za-z0-9_-]*$", error="a Cloudflare API token (letters, digits, _ and -)"),
)
CLOUDFLARE_ZONE_ID = env.str(
    "CLOUDFLARE_ZONE_ID",
    default="",
    validate=Regexp(r"^([0-9a-f]{32})?$", error="a Cloudflare zone ID: 32 hexadecimal digits"),
)
# One of the two alone is a mistake, not "Cloudflare off" (None: malformed, named by env.seal()).
if None not in (CLOUDFLARE_API_TOKEN, CLOUDFLARE_ZONE_ID) and (
    bool(CLOUDFLARE_API_TOKEN) != bool(CLOUDFLARE_ZONE_ID)
):
    raise ImproperlyConfigured(
        f"{'CLOUDFLARE_ZONE_ID' if CLOUDFLARE_API_TOKEN else 'CLOUDFLARE_API_TOKEN'} is not set: "
        "Cloudflare purging needs CLOUDFLARE_API_TOKEN and CLOUDFLARE_ZONE_ID together."
    )
# With the AWS credentials boto3 finds (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or a role).
CLOUDFRONT_DISTRIBUTION_ID = env.str(
    "CLOUDFRONT_DISTRIBUTION_ID",
    default="",
    validate=Regexp(
        r"^([A-Z0-9]{8,32})?$", error="a CloudFront distribution ID, e.g. E2QWRUHAPOMQZL"
    ),
)
# s-maxage of anonymous pages when a purge backend is set: the edge keeps them until a purge.
EDGE_CACHE_SECONDS = env.int(
    "EDGE_CACHE_SECONDS", default=EDGE_CACHE_SECONDS, validate=Range(min=0)
)
backends = "{{ cookiecutter.project_slug }}.frontendcache."
if FRONTEND_CACHE_PURGE_URL:
    WAGTAILFRONTENDCACHE["edge"] = {
        "BACKEND": backends + "HTTPBackend",
        "LOCATION": FRONTEND_CACHE_PURGE_URL,
    }
if CLOUDFLARE_API_TOKEN and CLOUDFLARE_ZONE_ID:
    WAGTAILFRONTENDCACHE["cloudflare"] = {
        "BACKEND": backends + "CloudflareBackend",
        "BEARER_TOKEN": CLOUDFLARE_API_TOKEN,
        "ZONEID": CLOUDFLARE_ZONE_ID,
    }
if CLOUDFRONT_DISTRIBUTION_ID:
    WAGTAILFRONTENDCACHE["cloudfront"] = {
        "BACKEND": backends + "CloudfrontBackend",
        "DISTRIBUTION_ID": CLOUDFRONT_DISTRIBUTION_ID,
    }

# Hashed file names (a Wagtail upgrade can never be served stale admin JS/CSS), served by
# WhiteNoise with far-future immutable caching and pre-compressed gzip and brotli variants.
STORAGES["staticfiles"] = {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"}

# manage.py dbbackup/mediabackup --clean keep this many of each (storage.py says where they go).
DBBACKUP_CLEANUP_KEEP = env.int("BACKUP_KEEP", default=10, validate=Range(min=1))

# Wagtail's tasks go to a database queue that the `worker` process (Procfile) runs.
TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}

# HTTPS. The proxy in front (nginx, a load balancer) terminates TLS and says so in
# X-Forwarded-Proto (deploy/nginx.conf overwrites whatever the client sent). gunicorn believes it
# only from the proxies in FORWARDED_ALLOW_IPS (gunicorn.conf.py) and sets the request's scheme;
# Django follows that scheme. No SECURE_PROXY_SSL_HEADER: Django would read the header itself,
# from anyone, so a client that reaches gunicorn directly could claim HTTPS.
SECURE_SSL_REDIRECT = True
SECURE_REDIRECT_EXEMPT = [r"^healthz/$", r"^readyz/$"]
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
# No script needs to read the CSRF cookie: the admin takes the token from the page.
CSRF_COOKIE_HTTPONLY = True
# Default one year. Start lower (e.g. 300) on a new domain until HTTPS is known to work.
SECURE_HSTS_SECONDS = env.int("DJANGO_SECURE_HSTS_SECONDS", default=31_536_000)
# The site owner's choice: these commit every subdomain to HTTPS, and preload lets browsers ship
# the domain in their HSTS list (only after you submit it at hstspreload.org). Both are on so that
# `check --deploy` is clean; turn them off if a subdomain must stay on plain HTTP.
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_HSTS_PRELOAD = True

# The proxies whose X-Forwarded-For names the client (throttle.client_ip): the same variable and
# default as gunicorn's, so the same peers are trusted for the scheme and for the client address.
FORWARDED_ALLOW_IPS = env.list("FORWARDED_ALLOW_IPS", default=["127.0.0.1", "::1"])

# Password guessing. django-axes counts failed logins (the admin's and any Django login form) in
# Postgres, so every instance sees the same counts and logins keep working when Redis is down.
# After 10 failures within a minute from one client IP, or for one username, the login answers
# 429 with Retry-After (throttle.lockout_response) before any password is hashed, until a minute
# after the last counted failure.
INSTALLED_APPS += ["axes"]
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",  # first: refuses a locked-out client before hashing
    "django.contrib.auth.backends.ModelBackend",
]
# Wagtail's page and document passwords and the admin's password reset have no Django login:
# throttle.ThrottleMiddleware counts them in Redis with the same limits.
MIDDLEWARE += [
    "{{ cookiecutter.project_slug }}.throttle.ThrottleMiddleware",
    "axes.middleware.AxesMiddleware",  # last, as django-axes requires
]
THROTTLE_LIMIT = 10  # failures per client IP, and per account or restriction, ...
THROTTLE_WINDOW = 60  # ... within this many seconds
AXES_FAILURE_LIMIT = THROTTLE_LIMIT
AXES_COOLOFF_TIME = timedelta(seconds=THROTTLE_WINDOW)
AXES_LOCKOUT_PARAMETERS = ["ip_address", "username"]  # either one locks out
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False  # the lockout ends when the window passes
AXES_CLIENT_IP_CALLABLE = "{{ cookiecutter.project_slug }}.throttle.client_ip"
AXES_LOCKOUT_CALLABLE = "{{ cookiecutter.project_slug }}.throttle.lockout_response"
AXES_DISABLE_ACCESS_LOG = True  # no table row per successful login

# Mail over SMTP, configured by one URL, e.g. submission://user:password@smtp.example.com:587
# (STARTTLS), smtp://user:password@smtp.example.com:465?ssl=true (TLS) or smtp://localhost:25.
# dj-email-url ignores a scheme it does not know (smtp+tls:// would send without TLS): refuse it.
env.str(
    "EMAIL_URL",
    default="smtp://localhost:25",
    validate=Regexp(r"^(smtp|submission)://", error="use smtp:// or submission:// (STARTTLS)"),
)
EMAIL_URL = env.dj_email_url("EMAIL_URL", default="smtp://localhost:25")
MAILERS = {
    "default": {
        "BACKEND": "django.core.mail.backends.smtp.EmailBackend",
        "OPTIONS": {
            "host": EMAIL_URL["EMAIL_HOST"],
            "port": EMAIL_URL["EMAIL_PORT"],
            "username": EMAIL_URL["EMAIL_HOST_USER"],
            "password": EMAIL_URL["EMAIL_HOST_PASSWORD"],
            "use_tls": EMAIL_URL["EMAIL_USE_TLS"],
            "use_ssl": EMAIL_URL["EMAIL_USE_SSL"],
            "timeout": 10,
        },
    }
}

# One line per event on stdout, JSON so tracebacks stay on their line, and each line a few KB at
# most whatever a visitor sends (long messages and tracebacks are cut in the middle: logs.py).
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "json": {
            "()": "{{ cookiecutter.project_slug }}.logs.BoundedJsonFormatter",
            "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s",
        },
    },
    "handlers": {
        "stdout": {
            "class": "logging.StreamHandler",
            "stream": "ext://sys.stdout",
            "formatter": "json",
        },
    },
    "root": {"handlers": ["stdout"], "level": env.log_level("DJANGO_LOG_LEVEL", default="INFO")},
    "loggers": {
        # Request errors (5xx) and ignored cache failures are the events operators need to see.
        "django.request": {"level": "WARNING"},
        "django_redis": {"level": "WARNING"},
    },
}

{% if cookiecutter.error_reporting == "sentry" -%}
from .sentry import *  # noqa: E402  error reporting: see sentry.py
{% endif -%}
from .storage import *  # noqa: E402  uploaded files: see storage.py

# An explicit override; the system check {{ cookiecutter.project_slug }}.W001 warns if it bypasses privacy.
WAGTAILDOCS_SERVE_METHOD = env.str(
    "WAGTAILDOCS_SERVE_METHOD",
    default=WAGTAILDOCS_SERVE_METHOD,
    validate=OneOf(["serve_view", "redirect", "direct"]),
)

env.seal()  # any variable above that is missing or invalid stops start-up here, all named at once
