from django.apps import AppConfig


class ProjectConfig(AppConfig):
    name = "{{ cookiecutter.project_slug }}"
    verbose_name = {{ cookiecutter.project_name | tojson }}

    def ready(self):
        # Registers the project's system checks and connects the signals that invalidate the page
        # cache, purge the edge and CDN caches, and clear the caches after a database restore.
        from . import backups, checks, frontendcache, pagecache  # noqa: F401
