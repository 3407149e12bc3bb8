"""WSGI entry point for gunicorn (see gunicorn.conf.py); production settings by default."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "{{ cookiecutter.project_slug }}.settings.production")

application = get_wsgi_application()
