"""The project's own test suite. Uses SQLite unless DATABASE_URL points at a real database
(CI sets it to Postgres so tests run against what production uses)."""

from .base import *

SECRET_KEY = "insecure-test-only-key"
ALLOWED_HOSTS = ["testserver", "localhost"]

DATABASES = {
    "default": env.dj_db_url("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'test.sqlite3'}")
}

# Fast hashing: tests create users; production keeps Django's default hasher.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

STORAGES["default"] = {
    "BACKEND": "django.core.files.storage.FileSystemStorage",
    "OPTIONS": {"location": str(BASE_DIR / ".test-media")},  # str: task arguments are JSON
}

# Tests run without collectstatic: WhiteNoise looks files up on request instead of scanning a
# STATIC_ROOT that does not exist (which warns on every test).
WHITENOISE_AUTOREFRESH = True

env.seal()  # a malformed DATABASE_URL stops the tests instead of falling back to SQLite
