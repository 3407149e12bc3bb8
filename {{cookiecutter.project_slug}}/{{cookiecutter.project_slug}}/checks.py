"""System checks that catch production settings the deployment guide warns against."""

from django.conf import settings
from django.core.checks import Error, Tags, Warning, register
from django.core.files.storage import storages
from django.core.files.storage.filesystem import FileSystemStorage

PER_PROCESS_CACHES = {
    "django.core.cache.backends.locmem.LocMemCache",
    "django.core.cache.backends.filebased.FileBasedCache",
    "django.core.cache.backends.dummy.DummyCache",
}


@register(Tags.caches, deploy=True)
def check_shared_caches(app_configs, **kwargs):
    """Wagtail's guide: not a cache tied to one process or machine."""
    return [
        Error(
            f"CACHES[{alias!r}] uses {config['BACKEND']}, which each process keeps to itself.",
            hint="Set REDIS_URL and use production settings (django_redis.cache.RedisCache).",
            id="{{ cookiecutter.project_slug }}.E001",
        )
        for alias, config in settings.CACHES.items()
        if config["BACKEND"] in PER_PROCESS_CACHES
    ]


@register(Tags.security)
def check_document_privacy(app_configs, **kwargs):
    """Warn when WAGTAILDOCS_SERVE_METHOD lets visitors skip collection privacy."""
    method = getattr(settings, "WAGTAILDOCS_SERVE_METHOD", None)
    local = isinstance(storages["default"], FileSystemStorage)
    if method == "serve_view" or (method == "redirect" and not local) or method is None:
        return []
    where = "MEDIA_ROOT/documents" if local else "the bucket"
    fix = '"serve_view"' if local else '"redirect" (signed, expiring URLs) or "serve_view"'
    return [
        Warning(
            f'WAGTAILDOCS_SERVE_METHOD = "{method}" links visitors straight to {where}, '
            "so documents in private collections can be downloaded by anyone with the link.",
            hint=f"Set WAGTAILDOCS_SERVE_METHOD to {fix} (or unset the environment override).",
            id="{{ cookiecutter.project_slug }}.W001",
        )
    ]
