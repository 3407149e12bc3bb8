"""Backups are django-dbbackup's own commands (README: "Runbooks"); this only adds what a restore
needs on top: emptying the caches, so that no page, rendition or Site lookup from before the
restore is served afterwards (they describe a database that no longer exists)."""

import logging

from dbbackup.signals import post_restore
from django.core.cache import caches
from django.dispatch import receiver

logger = logging.getLogger(__name__)


@receiver(post_restore, dispatch_uid="clear-caches-after-restore")
def clear_caches(**kwargs):
    for cache in caches.all():
        try:
            cache.clear()
        except Exception as error:  # noqa: BLE001  the restore itself succeeded
            logger.error(
                "dbrestore: cache %r not cleared (%s: %s); clear it once Redis is back",
                cache,
                type(error).__name__,
                error,
            )
