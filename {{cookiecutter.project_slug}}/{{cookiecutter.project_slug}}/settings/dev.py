"""Local development: zero services (SQLite, local files, in-process cache, console mail)."""

from .base import *

DEBUG = True

# Generated for this project when it was created; production reads DJANGO_SECRET_KEY instead.
SECRET_KEY = "__DEV_SECRET_KEY__"

ALLOWED_HOSTS = ["localhost", "127.0.0.1", "[::1]"]

# The production policy, reported in the browser console instead of enforced: Django's debug
# pages use inline styles and scripts.
SECURE_CSP_REPORT_ONLY, SECURE_CSP = SECURE_CSP, {}
