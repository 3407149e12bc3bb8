#!/usr/bin/env python
"""Django's command-line utility. Uses development settings unless DJANGO_SETTINGS_MODULE is set
(production sets it to {{ cookiecutter.project_slug }}.settings.production)."""

import os
import sys

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "{{ cookiecutter.project_slug }}.settings.dev")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
