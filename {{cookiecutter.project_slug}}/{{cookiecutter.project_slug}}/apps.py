from django.apps import AppConfig


class ProjectConfig(AppConfig):
    name = "{{ cookiecutter.project_slug }}"
    verbose_name = {{ cookiecutter.project_name | tojson }}

    def ready(self):
        # Registers the project's system checks and connects the page cache's invalidation signals.
        from . import checks, pagecache  # noqa: F401
