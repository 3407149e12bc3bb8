"""Settings every environment shares.

dev.py, test.py and production.py import this module and add only what differs. Environment
variables are read through ``env`` (environs): production.py reads the ones production needs.
"""

from email.utils import formataddr
from pathlib import Path
from urllib.parse import urlsplit

import environs
from django.utils.csp import CSP

PROJECT_DIR = Path(__file__).resolve().parent.parent
BASE_DIR = PROJECT_DIR.parent

# URLs that may name a socket or file instead of a host (SQLite: tests only).
HOSTLESS_SCHEMES = {"postgres", "postgresql", "pgsql", "unix", "sqlite"}


def url_problem(value):
    """Why `value` is not a well-formed URL (scheme://host[:port]...), or None. Which schemes a
    variable accepts is up to the setting that reads it."""
    if any(c.isspace() for c in value):
        return "it contains whitespace"
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018  raises ValueError for a port that is not a number in range
    except ValueError as error:
        return str(error)
    if not parts.scheme or not value.startswith(f"{parts.scheme}://"):
        return "it must start with a scheme, e.g. https://"
    if not parts.hostname and not (parts.scheme in HOSTLESS_SCHEMES and parts.path):
        return "it has no host name"
    return None


class Env(environs.Env):
    """environs with two rules for every variable the settings read, so no variable can forget them:
    - present but empty (`X=`, as in .env.example) is the same as unset: the default applies;
    - a *_URL variable or SENTRY_DSN must be a well-formed URL, or start-up stops naming it."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._malformed = set()

    def _get_value(self, env_key, default):
        value = super()._get_value(env_key, default)
        if value == "":
            return default
        is_url = env_key.endswith("_URL") or env_key == "SENTRY_DSN"
        if is_url and isinstance(value, str) and (problem := url_problem(value)):
            self._errors[env_key].append(f"Not a valid URL: {problem}.")
            self._malformed.add(env_key)
            return default  # parsers never see it; seal() reports it
        return value

    def seal(self):
        for key in self._malformed:
            # A malformed required URL is reported as malformed, not also as "not set".
            self._errors[key] = [m for m in dict.fromkeys(self._errors[key]) if "not set" not in m]
        super().seal()


# Lazy validation: production.py calls env.seal() once, so every missing variable is named at once.
env = Env(eager=False)
# A .env file beside manage.py is optional; variables already in the environment win.
env.read_env(BASE_DIR / ".env", recurse=False)

INSTALLED_APPS = [
    "{{ cookiecutter.project_slug }}",
    "home",
    "search",
    "wagtail.contrib.forms",
    "wagtail.contrib.redirects",
    "wagtail.contrib.sitemaps",
    "wagtail.embeds",
    "wagtail.sites",
    "wagtail.users",
    "wagtail.snippets",
    "wagtail.documents",
    "wagtail.images",
    "wagtail.search",
    "wagtail.admin",
    "wagtail",
    "modelcluster",
    "taggit",
    "django_filters",
    "django_tasks",
    "django_tasks_db",
    "dbbackup",  # manage.py dbbackup / dbrestore / mediabackup / mediarestore
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.sitemaps",  # the template /sitemap.xml renders
    # Wagtail's search index uses Postgres full-text search in production (check postgres.E005).
    "django.contrib.postgres",
]

MIDDLEWARE = [
    # Answers /healthz/ and /readyz/ before host validation and the HTTPS redirect.
    "{{ cookiecutter.project_slug }}.health.HealthCheckMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # Content-Security-Policy: SECURE_CSP on every response, WAGTAILADMIN_CSP on the admin's.
    "django.middleware.csp.ContentSecurityPolicyMiddleware",
    "{{ cookiecutter.project_slug }}.csp.AdminContentSecurityPolicyMiddleware",
    # Serves hashed, compressed static files (the Wagtail admin's included) from the app itself.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    # Anonymous page views from Redis (pagecache.py); before sessions, so a hit skips the rest.
    "{{ cookiecutter.project_slug }}.pagecache.PageCacheMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "wagtail.contrib.redirects.middleware.RedirectMiddleware",
]

ROOT_URLCONF = "{{ cookiecutter.project_slug }}.urls"
WSGI_APPLICATION = "{{ cookiecutter.project_slug }}.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        # The project package is an installed app: its templates/ and static/ are found as an app's.
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.debug",
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "{{ cookiecutter.project_slug }}.context_processors.site_description",
            ],
        },
    },
]

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": BASE_DIR / "db.sqlite3",
    }
}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# Django's defaults apply for the rest: LANGUAGE_CODE "en-us", USE_I18N, USE_TZ, BigAutoField keys.
TIME_ZONE = "{{ cookiecutter.time_zone }}"

STATIC_ROOT = BASE_DIR / "staticfiles"
STATIC_URL = "/static/"

MEDIA_ROOT = BASE_DIR / "media"
MEDIA_URL = "/media/"

STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    # Where django-dbbackup writes backups; production's storage.py sets it from the environment.
    "dbbackup": {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": str(BASE_DIR / "backups")},
    },
}
# Backup file names carry the site's name rather than the host's (containers get random ones).
DBBACKUP_HOSTNAME = "{{ cookiecutter.project_slug }}"

CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
    # Wagtail stores image rendition lookups in the cache alias of this name when it exists.
    "renditions": {
        "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
        "LOCATION": "renditions",
    },
    # The page cache's pages and generation (pagecache.py).
    "pagecache": {
        "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
        "LOCATION": "pagecache",
    },
}
# Whole-page cache for anonymous visitors: off here (0), production turns it on.
PAGE_CACHE_SECONDS = 0
# How long browsers and CDNs may keep a cached page (Cache-Control: max-age).
PAGE_CACHE_MAX_AGE = 60
# Caches in front of the site that are purged when content changes (frontendcache.py): none here,
# production.py builds them from the environment. With one, shared caches get s-maxage this long.
WAGTAILFRONTENDCACHE = {}
EDGE_CACHE_SECONDS = 86_400

# Wagtail's background work (search and reference index updates, file deletion, focal points)
# runs immediately inside the request here; production.py hands it to the worker process.
TASKS = {"default": {"BACKEND": "django_tasks.backends.immediate.ImmediateBackend"}}

# Mail goes to the console here; production.py sends it over SMTP.
MAILERS = {"default": {"BACKEND": "django.core.mail.backends.console.EmailBackend"}}

# Complex page models can exceed Django's default of 1,000 fields in Wagtail's page editor.
DATA_UPLOAD_MAX_NUMBER_FIELDS = 10_000

WAGTAIL_SITE_NAME = {{ cookiecutter.project_name | tojson }}
# <meta name="description"> of pages that have no search description of their own.
SITE_DESCRIPTION = {{ cookiecutter.description | tojson }}
DEFAULT_FROM_EMAIL = formataddr((WAGTAIL_SITE_NAME, "noreply@{{ cookiecutter.domain_name }}"))
SERVER_EMAIL = DEFAULT_FROM_EMAIL
WAGTAILADMIN_BASE_URL = "https://{{ cookiecutter.domain_name }}"

# Documents are served through Wagtail's view, which enforces collection privacy and sends them
# as downloads with "Content-Security-Policy: default-src 'none'". nginx must not serve
# MEDIA_ROOT/documents directly (deploy/nginx.conf denies it). production.py may change this for
# cloud storage; a system check warns when the choice bypasses privacy.
WAGTAILDOCS_SERVE_METHOD = "serve_view"

# Only file types that cannot carry scripts a browser would run (no html, svg, js or xml).
WAGTAILDOCS_EXTENSIONS = [
    "csv",
    "docx",
    "key",
    "odp",
    "ods",
    "odt",
    "pdf",
    "pptx",
    "rtf",
    "txt",
    "xlsx",
    "zip",
]
# Every document is a download, PDFs too (Wagtail opens PDFs inline unless told otherwise).
WAGTAILDOCS_INLINE_CONTENT_TYPES = []
WAGTAILDOCS_MAX_UPLOAD_SIZE = 10 * 1024 * 1024  # nginx's client_max_body_size matches this
WAGTAILIMAGES_MAX_UPLOAD_SIZE = 10 * 1024 * 1024

# SVG images are off. An SVG can carry scripts that run when the file is opened directly, so
# enable them only if every editor is trusted, or serve media/images with
# "Content-Security-Policy: default-src 'none'" (see Wagtail's "SVG images" security notes):
# WAGTAILIMAGES_EXTENSIONS = ["avif", "gif", "jpg", "jpeg", "png", "webp", "svg"]

# The admin would otherwise load avatars from gravatar.com and check releases.wagtail.org.
WAGTAIL_GRAVATAR_PROVIDER_URL = None
WAGTAIL_ENABLE_UPDATE_CHECK = False

# Content-Security-Policy for every page (Django's CSP middleware): only this site's own files,
# no inline script or style, no plugins, and no framing by other sites. Add origins here when a
# template loads something from elsewhere (e.g. "frame-src": ["https://www.youtube.com"] for
# video embeds in rich text). dev.py reports violations in the browser console instead.
SECURE_CSP = {
    "default-src": [CSP.SELF],
    "img-src": [CSP.SELF],  # storage.py adds the bucket when images live on S3
    "object-src": [CSP.NONE],
    "base-uri": [CSP.SELF],
    "form-action": [CSP.SELF],
    "frame-ancestors": [CSP.SELF],
}
# The Wagtail admin's policy (csp.py): the strict one, relaxed only where the admin needs it.
# Wagtail 8 has inline <script> and style attributes without nonces (inline panels, date
# pickers, vendor.js), and previews uploads as blob: and data: images.
WAGTAILADMIN_CSP = SECURE_CSP | {
    "script-src": [CSP.SELF, CSP.UNSAFE_INLINE],
    "style-src": [CSP.SELF, CSP.UNSAFE_INLINE],
    "img-src": [*SECURE_CSP["img-src"], "data:", "blob:"],
}
