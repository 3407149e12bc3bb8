"""Refuse answers that would produce a broken project. Runs before any file is written;
on failure cookiecutter removes the half-made output directory."""

import keyword
import re
import sys
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

ANSWERS = {
    "project_name": {{ cookiecutter.project_name | tojson }},
    "project_slug": {{ cookiecutter.project_slug | tojson }},
    "description": {{ cookiecutter.description | tojson }},
    "author_name": {{ cookiecutter.author_name | tojson }},
    "author_email": {{ cookiecutter.author_email | tojson }},
    "domain_name": {{ cookiecutter.domain_name | tojson }},
    "time_zone": {{ cookiecutter.time_zone | tojson }},
}

# Top-level modules the generated project imports or ships; a project package with one of these
# names would shadow it (e.g. a project called "wagtail" could not import Wagtail).
TAKEN_NAMES = {
    "home", "search", "test", "tests", "conftest", "manage", "gunicorn", "wagtail", "django",
    "environs", "dotenv", "dj_database_url", "dj_email_url", "storages", "boto3", "botocore",
    "redis", "django_redis", "whitenoise", "brotli", "psycopg", "psycopg2", "sentry_sdk",
    "django_tasks", "django_tasks_db", "modelcluster", "modelsearch", "taggit", "treebeard",
    "willow", "pil", "pythonjsonlogger", "pytest", "pytest_django", "requests", "laces",
    "telepath", "anyascii", "bs4", "openpyxl", "filetype", "draftjs_exporter", "l18n",
}

HOSTNAME = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z][a-z0-9-]{0,61}[a-z0-9]$")
EMAIL = re.compile(r"^[^@\s\"]+@[^@\s\"]+\.[^@\s\"]+$")


def problems(answers):
    slug = answers["project_slug"]
    if not re.fullmatch(r"[a-z][a-z0-9_]*", slug):
        yield (
            f"project_slug {slug!r} is not a lower-case Python identifier: use letters a-z, digits and "
            "underscores, starting with a letter (e.g. 'my_site')."
        )
    elif "__" in slug or slug.endswith("_"):
        # The package name (pyproject.toml, uv.lock) is the slug with "-" for "_"; these would not
        # be valid or would be renamed by Python packaging tools.
        yield (
            f"project_slug {slug!r} has a double or trailing underscore: use single underscores "
            "between words (e.g. 'my_site')."
        )
    elif keyword.iskeyword(slug) or keyword.issoftkeyword(slug):
        yield f"project_slug {slug!r} is a Python keyword: choose another name (e.g. '{slug}_site')."
    elif slug in sys.stdlib_module_names or slug in TAKEN_NAMES:
        yield (
            f"project_slug {slug!r} would shadow the module of the same name that the project "
            f"imports: choose another name (e.g. '{slug}_site')."
        )
    if not answers["project_name"].strip():
        yield "project_name is empty: give the site a name."
    for key in ("project_name", "description", "author_name"):
        if "\n" in answers[key] or "\r" in answers[key]:
            yield f"{key} must be a single line."
    if not EMAIL.fullmatch(answers["author_email"]):
        yield f"author_email {answers['author_email']!r} is not an email address (e.g. 'you@example.com')."
    domain = answers["domain_name"]
    if not HOSTNAME.fullmatch(domain):
        yield (
            f"domain_name {domain!r} is not a lower-case host name: give just the host, "
            "without https://, a port or a path (e.g. 'www.example.com')."
        )
    try:
        ZoneInfo(answers["time_zone"])
    except (ZoneInfoNotFoundError, ValueError):
        yield (
            f"time_zone {answers['time_zone']!r} is not an IANA time zone name "
            "(e.g. 'UTC', 'Europe/London', 'America/New_York')."
        )


errors = list(problems(ANSWERS))
if errors:
    print("\nThe template cannot be baked with these answers:", file=sys.stderr)
    for error in errors:
        print(f"  - {error}", file=sys.stderr)
    print("Nothing was written. Run cookiecutter again with corrected answers.\n", file=sys.stderr)
    sys.exit(1)
