from django.apps import AppConfig


class ProjectConfig(AppConfig):
    name = "{{ cookiecutter.project_slug }}"
    verbose_name = {{ cookiecutter.project_name | tojson }}

    def ready(self):
        # Registers the project's system checks and connects the page cache's invalidation signals
        # and the cache clearing after a database restore.
        from . import backups, checks, pagecache  # noqa: F401
