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


def signs_urls(storage):
    """False for storages whose file URLs anyone can open: django-storages' S3 storage without
    querystring_auth, or with a custom_domain (a CDN) and no CloudFront signer."""
    if getattr(storage, "querystring_auth", True) is False:
        return False
    return not getattr(storage, "custom_domain", None) or bool(
        getattr(storage, "cloudfront_signer", None)
    )


@register(Tags.security)
def check_document_privacy(app_configs, **kwargs):
    """Warn when the documents' serve method lets visitors skip collection privacy."""
    storage = storages["default"]
    local = isinstance(storage, FileSystemStorage)
    # Wagtail's own default when the setting is unset: serve_view on disk, redirect otherwise.
    method = getattr(settings, "WAGTAILDOCS_SERVE_METHOD", None) or (
        "serve_view" if local else "redirect"
    )
    if method == "serve_view":
        return []
    if local:
        problem = f'WAGTAILDOCS_SERVE_METHOD = "{method}" links visitors to MEDIA_ROOT/documents'
        fix = 'Set WAGTAILDOCS_SERVE_METHOD to "serve_view" (or unset the environment override).'
    elif method == "direct":
        problem = 'WAGTAILDOCS_SERVE_METHOD = "direct" links visitors straight to the bucket'
        fix = (
            'Set WAGTAILDOCS_SERVE_METHOD to "redirect" (signed, expiring URLs) or "serve_view" '
            "(or unset the environment override)."
        )
    elif not signs_urls(storage):
        problem = 'WAGTAILDOCS_SERVE_METHOD = "redirect" sends visitors to unsigned file URLs'
        fix = (
            'Give STORAGES["default"] signed URLs (querystring_auth=True, no custom_domain; '
            'see settings/storage.py) or set WAGTAILDOCS_SERVE_METHOD to "serve_view".'
        )
    else:
        return []
    return [
        Warning(
            f"{problem}, so documents in private collections can be downloaded by anyone with "
            "the link.",
            hint=fix,
            id="{{ cookiecutter.project_slug }}.W001",
        )
    ]
