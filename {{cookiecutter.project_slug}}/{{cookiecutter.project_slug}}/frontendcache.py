"""Purging the caches in front of the site (the shipped nginx edge, Cloudflare, CloudFront) when
content changes, through Wagtail's frontend cache backends.

Backends come from the environment (settings/production.py builds WAGTAILFRONTENDCACHE): any of
FRONTEND_CACHE_PURGE_URL (HTTP PURGE, the shipped nginx or Varnish), CLOUDFLARE_API_TOKEN +
CLOUDFLARE_ZONE_ID, CLOUDFRONT_DISTRIBUTION_ID. None set: nothing is purged, and pages carry only
``max-age=PAGE_CACHE_MAX_AGE``, so shared caches keep them that long at most.

With a backend set, anonymous pages the page cache stores are sent with
``s-maxage=EDGE_CACHE_SECONDS`` (pagecache's ``cache_headers``), and the policy is: whatever the page
cache (pagecache.py) invalidates is purged at the edge too.
- A page published, unpublished or deleted: its URLs (on every Site whose tree holds it, with each
  of ``get_cached_paths()``), and its parent's (a parent commonly lists its children).
- A page moved: the old and the new URLs of the page and of every live page below it, and both
  parents.
- A live page saved outside publishing (not a draft or a lock): its URLs.
- An image or document changed or deleted: the pages that use it (Wagtail's reference index); the
  whole cache if something other than a page uses it (a snippet, a setting). A new upload is used
  by nothing yet and purges nothing.
- A Site, a snippet, a setting or a view restriction saved or deleted: the whole cache, since it
  can render into any page. Cloudflare purges everything in the zone, CloudFront invalidates
  ``/*``; the HTTP backend (ngx_cache_purge has no wildcards) purges every live page's URLs.
- URLs with a query string (other than tracking parameters) are never given ``s-maxage``: no
  purge can name them all, so shared caches keep them ``PAGE_CACHE_MAX_AGE`` at most, and the
  shipped nginx does not store them at all (deploy/nginx.conf).

How: the change is committed first (``transaction.on_commit``), then a ``purge`` task goes to the
worker queue (django-tasks; ``manage.py db_worker`` in production) ahead of other tasks. An
editor's request only inserts that row. Each backend call has a TIMEOUT; a backend that fails
(network error, timeout, HTTP or API error) is logged on one line and retried alone, after
RETRY_DELAYS (about 20 minutes in all), then logged as given up. What one transaction schedules
goes out as one task (a publish outside a transaction, e.g. in a shell, commits twice: two).

Why not Wagtail's own: Wagtail 8 also purges through a django-tasks task, but only on publish and
unpublish, for one host name per page, and without retries: its backends log and swallow errors,
and the HTTP one has no timeout. So the backends below subclass Wagtail's to raise, time out and
purge everything, and the ``wagtail.contrib.frontend_cache`` app is not installed (its signal
handlers would send a second, unretried purge for every publish).
"""

import logging
import threading
from datetime import timedelta
from urllib.parse import urlsplit, urlunsplit

import requests
from django.conf import settings
from django.db import transaction
from django.db.models.signals import post_delete, post_save, pre_delete
from django.dispatch import receiver
from django.utils import timezone
from django_tasks import task
from wagtail import __version__ as wagtail_version
from wagtail.contrib.frontend_cache import backends as wagtail_backends
from wagtail.contrib.frontend_cache.utils import get_backends
from wagtail.signals import page_published, page_unpublished, post_page_move

logger = logging.getLogger(__name__)

TIMEOUT = 5  # seconds per purge request: a hung endpoint must not hold the worker for long
RETRY_DELAYS = (2, 10, 30, 120, 300, 900)  # seconds before the 2nd, 3rd, ... attempt
PRIORITY = 50  # ahead of search-index and other tasks (default 0): visitors are waiting
# What Page.save_revision() and locking save on a live page: bookkeeping visitors never see.
DRAFT_FIELDS = {
    "draft_title", "has_unpublished_changes", "latest_revision", "latest_revision_created_at",
    "wagtail_admin_comments", "locked", "locked_at", "locked_by",
}  # fmt: skip


class PurgeFailed(Exception):
    pass


# ---------------------------------------------------------------------------------------------
# Backends: Wagtail's, made to raise on failure (so the task retries), with timeouts, and able to
# purge everything.


class HTTPBackend(wagtail_backends.HTTPBackend):
    """HTTP PURGE of each URL at LOCATION, with the URL's host in the Host header."""

    def purge_batch(self, urls):
        with requests.Session() as session:
            for url in urls:
                self.purge(url, session)

    def purge(self, url, session=requests):
        parts = urlsplit(url)
        target = urlunsplit((self.cache_scheme, self.cache_netloc, parts.path, parts.query, ""))
        headers = {"Host": parts.netloc, "User-Agent": f"Wagtail-frontendcache/{wagtail_version}"}
        try:
            response = session.request("PURGE", target, headers=headers, timeout=TIMEOUT)
        except requests.RequestException as error:
            raise PurgeFailed(f"{url}: {type(error).__name__}: {error}") from error
        # 404: the URL was not in the cache, which is what a purge wants.
        if response.status_code not in (200, 204, 404):
            raise PurgeFailed(f"{url}: HTTP {response.status_code}")

    purge_everything = None  # ngx_cache_purge 2.3 has no wildcards: every URL is named instead


class CloudflareBackend(wagtail_backends.CloudflareBackend):
    """Cloudflare's purge_cache API with an API token (BEARER_TOKEN) for one zone (ZONEID)."""

    API = "https://api.cloudflare.com/client/v4/zones/{}/purge_cache"

    def _purge_urls(self, urls):
        self.post({"files": list(urls)})

    def purge_everything(self):
        self.post({"purge_everything": True})

    def post(self, data):
        try:
            response = requests.post(
                self.API.format(self.cloudflare_zoneid),
                json=data,
                headers={"Authorization": f"Bearer {self.cloudflare_token}"},
                timeout=TIMEOUT,
            )
            body = response.json()
        except (requests.RequestException, ValueError) as error:
            raise PurgeFailed(f"Cloudflare: {type(error).__name__}: {error}") from error
        if response.status_code != 200 or not body.get("success"):
            errors = "; ".join(str(e.get("message")) for e in body.get("errors") or [])
            raise PurgeFailed(f"Cloudflare: HTTP {response.status_code}: {errors}")


class CloudfrontBackend(wagtail_backends.CloudfrontBackend):
    """CloudFront invalidations for DISTRIBUTION_ID, with boto3's credentials (AWS_* variables or
    an instance role) and endpoint (AWS_ENDPOINT_URL_CLOUDFRONT, if set)."""

    def __init__(self, params):
        import boto3
        from botocore.config import Config

        super().__init__(params)
        config = Config(connect_timeout=TIMEOUT, read_timeout=TIMEOUT, retries={"max_attempts": 2})
        # CloudFront is global: its API is in us-east-1 whatever region the site's bucket is in.
        self.client = boto3.client("cloudfront", region_name="us-east-1", config=config)

    def _create_invalidation(self, distribution_id, paths):
        import uuid

        self.client.create_invalidation(
            DistributionId=distribution_id,
            InvalidationBatch={
                "Paths": {"Quantity": len(paths), "Items": sorted(paths)},
                "CallerReference": str(uuid.uuid4()),
            },
        )

    def purge_everything(self):
        self._create_invalidation(self.cloudfront_distribution_id, ["/*"])


# ---------------------------------------------------------------------------------------------
# The task


@task(priority=PRIORITY)
def purge(urls, everything=False, backends=None, attempt=1):
    """Purge `urls` (or everything) from the named backends (default: all); retry failures."""
    if {urlsplit(url).hostname for url in urls} & {"localhost", "127.0.0.1"}:
        logger.warning(
            "frontend cache: purging URLs on localhost, which no visitor uses: set each Site's "
            "hostname and port (Settings > Sites) to the public ones"
        )
    failed = []
    for name, backend in get_backends(backends=backends).items():
        try:
            if everything and getattr(backend, "purge_everything", None):
                backend.purge_everything()
            else:
                # Everything, for a backend that cannot: every live page, and the URLs of pages
                # that just went away.
                targets = all_page_urls() | set(urls) if everything else urls
                targets = [u for u in targets if backend.invalidates_hostname(urlsplit(u).netloc)]
                if targets:
                    backend.purge_batch(sorted(targets))
            logger.info(
                "frontend cache: purged %s from %s",
                "everything" if everything else f"{len(urls)} URL(s)",
                name,
            )
        except Exception as error:  # noqa: BLE001  any failure is logged and retried
            failed.append(name)
            logger.warning(
                "frontend cache: purge from %s failed (attempt %s of %s): %s: %s",
                name,
                attempt,
                len(RETRY_DELAYS) + 1,
                type(error).__name__,
                error,
            )
    if not failed:
        return
    if attempt > len(RETRY_DELAYS) or not purge.get_backend().supports_defer:
        logger.error(
            "frontend cache: gave up purging %s from %s; pages there may be stale for up to "
            "EDGE_CACHE_SECONDS",
            "everything" if everything else urls,
            ", ".join(failed),
        )
        return
    run_after = timezone.now() + timedelta(seconds=RETRY_DELAYS[attempt - 1])
    purge.using(run_after=run_after).enqueue(urls, everything, failed, attempt + 1)


_pending = threading.local()


def schedule(urls=(), everything=False):
    """Enqueue a purge once the current transaction commits (now, outside a transaction). What
    one transaction schedules (a publish also saves the page) goes out as one task: the first of
    its on_commit callbacks takes the lot. A rolled-back transaction's batch is dropped when the
    next one schedules something."""
    if not settings.WAGTAILFRONTENDCACHE or not (urls or everything):
        return
    connection = transaction.get_connection()
    owner = connection.atomic_blocks[0] if connection.in_atomic_block else None
    batch = getattr(_pending, "batch", None)
    if batch is None or batch["owner"] is not owner:
        batch = _pending.batch = {"owner": owner, "urls": set(), "everything": False}
    batch["urls"].update(urls)
    batch["everything"] |= everything
    transaction.on_commit(_enqueue)


def _enqueue():
    batch = _pending.__dict__.pop("batch", None)
    if batch:
        purge.enqueue(sorted(batch["urls"]), batch["everything"])


# ---------------------------------------------------------------------------------------------
# URLs


def page_urls(page, url_path=None):
    """Every URL of `page` on every Site whose tree holds it (two host names, two URLs), with
    each of its cached paths; `url_path` gives a page's former place after a move."""
    from wagtail.models import Site

    url_path = url_path or page.url_path
    paths = page.specific_deferred.get_cached_paths()
    urls = set()
    for root in Site.get_site_root_paths():
        if url_path.startswith(root.root_path):
            base = root.root_url + url_path[len(root.root_path) - 1 :]
            urls.update(base + path.lstrip("/") for path in paths)
    return urls


def page_and_parent_urls(page):
    parent = page.get_parent()
    return page_urls(page) | (page_urls(parent) if parent and parent.depth > 1 else set())


def all_page_urls():
    from wagtail.models import Page

    urls = set()
    for page in Page.objects.live().filter(depth__gt=1).specific(defer=True).iterator():
        urls |= page_urls(page)
    return urls


# ---------------------------------------------------------------------------------------------
# Signals


@receiver(page_published, dispatch_uid="frontendcache-published")
@receiver(page_unpublished, dispatch_uid="frontendcache-unpublished")
def purge_page(sender, instance, **kwargs):
    if settings.WAGTAILFRONTENDCACHE:
        schedule(page_and_parent_urls(instance))


@receiver(post_page_move, dispatch_uid="frontendcache-move")
def purge_moved_page(sender, instance, url_path_before, url_path_after, **kwargs):
    if not settings.WAGTAILFRONTENDCACHE:
        return
    urls = set()
    for page in instance.get_descendants(inclusive=True).live().specific(defer=True):
        old_path = url_path_before + page.url_path[len(url_path_after) :]
        urls |= page_urls(page) | page_urls(page, url_path=old_path)
    for parent in (kwargs.get("parent_page_before"), kwargs.get("parent_page_after")):
        if parent is not None and parent.depth > 1:
            urls |= page_urls(parent)
    schedule(urls)


@receiver(pre_delete, dispatch_uid="frontendcache-delete-page")
def purge_deleted_page(sender, instance, **kwargs):
    from wagtail.models import Page

    # Before the delete: afterwards the page's place in the tree is gone.
    if settings.WAGTAILFRONTENDCACHE and isinstance(instance, Page) and instance.live:
        schedule(page_and_parent_urls(instance))


@receiver(post_save, dispatch_uid="frontendcache-save")
@receiver(post_delete, dispatch_uid="frontendcache-content-delete")
def purge_on_content_change(sender, instance, created=False, **kwargs):
    from wagtail.documents.models import AbstractDocument
    from wagtail.images.models import AbstractImage
    from wagtail.models import Page

    from .pagecache import renders_into_pages  # the page cache's list of what shows in pages

    if not settings.WAGTAILFRONTENDCACHE or not renders_into_pages(sender, instance):
        return
    if isinstance(instance, Page):
        # A draft saved on a live page changes only revision bookkeeping, not what visitors see.
        fields = kwargs.get("update_fields")
        drafting = fields is not None and set(fields) <= DRAFT_FIELDS
        if kwargs["signal"] is post_save and not drafting:
            schedule(page_urls(instance))
    elif isinstance(instance, AbstractImage | AbstractDocument):
        if not created:
            purge_users_of(instance)
    else:
        schedule(everything=True)


def purge_users_of(instance):
    """The pages that use an image or document; everything if something else uses it."""
    from wagtail.models import Page, ReferenceIndex

    page_type = ReferenceIndex._get_base_content_type(Page)
    page_ids, other = set(), False
    for base_type, object_id in ReferenceIndex.get_references_to(instance).values_list(
        "base_content_type", "object_id"
    ):
        if base_type == page_type.pk:
            page_ids.add(int(object_id))
        else:
            other = True
    if other:
        schedule(everything=True)
    elif page_ids:
        urls = set()
        for page in Page.objects.live().filter(pk__in=page_ids).specific(defer=True):
            urls |= page_urls(page)
        schedule(urls)
