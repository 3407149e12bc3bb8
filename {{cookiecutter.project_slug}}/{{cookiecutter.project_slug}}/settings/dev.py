"""Local development: zero services (SQLite, local files, in-process cache, console mail)."""

from .base import *

DEBUG = True

# Generated for this project when it was created; production reads DJANGO_SECRET_KEY instead.
SECRET_KEY = "__DEV_SECRET_KEY__"

ALLOWED_HOSTS = ["localhost", "127.0.0.1", "[::1]"]
