"""Local development: zero services (SQLite, local files, in-process cache, console mail)."""

from .base import *

DEBUG = True

# Development only. The template wrote a random key into .env (git-ignored) when it made this
# project, so tracked files hold no secret and re-bakes stay identical; a fresh clone without .env
# runs on the fallback. Production never reads either: it needs DJANGO_SECRET_KEY.
SECRET_KEY = env.str(
    "DJANGO_DEV_SECRET_KEY", default="django-insecure-dev-only-fallback-never-use-in-production"
)

ALLOWED_HOSTS = ["localhost", "127.0.0.1", "[::1]"]

# The production policy, reported in the browser console instead of enforced: Django's debug
# pages use inline styles and scripts.
SECURE_CSP_REPORT_ONLY, SECURE_CSP = SECURE_CSP, {}
