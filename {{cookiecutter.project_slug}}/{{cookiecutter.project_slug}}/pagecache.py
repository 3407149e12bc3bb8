"""Whole-page cache for anonymous visitors, kept in Redis (the "pagecache" cache alias).

Wagtail 8 has no maintained page-cache package (wagtail-cache stops at Wagtail 7), so this is a
small one. Turn it off with PAGE_CACHE_SECONDS=0.

What is cached: GET requests for Wagtail pages (the ``wagtail_serve`` view) from anonymous
visitors, i.e. requests without a session cookie, a messages cookie or an Authorization header,
whose response is a 200 that sets no cookie, used no CSRF token (a page with a form) and is not
marked private, no-cache or no-store (Wagtail marks previews and restricted pages that way).
Anonymity is decided here, not through ``Vary: Cookie`` (Wagtail's userbar adds it to every page,
which would split the cache per visitor cookie); any other header the response varies on must
match the stored copy's request.

Invalidation: each stored page carries the cache generation it was rendered under. Publishing,
unpublishing, moving, copying or deleting a page, and saving or deleting a live page, a Site, a
view restriction, an image, a document, a snippet or a setting writes a new random generation
(after the database transaction commits). Every app instance reads the generation with the page
in one round trip, so the next request anywhere renders afresh: O(1), no key scans.

Outgoing headers: a cacheable page is sent with ``Cache-Control: max-age=PAGE_CACHE_MAX_AGE``, so
browsers and CDNs show an old page for at most that long after a publish; with a purge backend
configured, also ``s-maxage=EDGE_CACHE_SECONDS`` (frontendcache.py). Pages rendered for
logged-in visitors are sent with ``Cache-Control: private``. ``X-Page-Cache`` says hit or miss.

Failures: a failing or hung Redis costs one short timeout, logs one line, and the cache is then
skipped for SKIP_AFTER_ERROR seconds; pages are rendered as if it were off.
"""

import functools
import hashlib
import logging
import time
import uuid

from django.conf import settings
from django.core.cache import caches
from django.core.exceptions import MiddlewareNotUsed
from django.db import transaction
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver
from django.http import HttpResponse
from django.utils.cache import patch_cache_control
from django.utils.http import split_header_value
from wagtail.signals import (
    page_published,
    page_unpublished,
    post_page_move,
    published,
    unpublished,
)

from .frontendcache import edge_cache_control

ALIAS = "pagecache"
GENERATION_KEY = "generation"
SKIP_AFTER_ERROR = 5  # seconds without Redis after an error, so a hung Redis costs one timeout
NOT_STORED = {"private", "no-cache", "no-store"}

logger = logging.getLogger(__name__)
_skip_until = 0.0  # per process: only ever delays using Redis, never decides what is fresh


def _failed(action, error):
    global _skip_until
    _skip_until = time.monotonic() + SKIP_AFTER_ERROR
    logger.warning(
        "page cache: %s failed, skipping Redis for %s s: %s: %s",
        action,
        SKIP_AFTER_ERROR,
        type(error).__name__,
        error,
    )


class PageCacheMiddleware:
    """Place after SecurityMiddleware/WhiteNoise and before SessionMiddleware: a hit skips the
    session, CSRF, auth and message middleware and the page's database queries."""

    def __init__(self, get_response):
        self.get_response = get_response
        self.seconds = settings.PAGE_CACHE_SECONDS
        if not self.seconds:
            raise MiddlewareNotUsed("PAGE_CACHE_SECONDS is 0")
        self.max_age = settings.PAGE_CACHE_MAX_AGE
        self.cache = caches[ALIAS]
        self.private_cookies = {settings.SESSION_COOKIE_NAME, "messages"}

    def __call__(self, request):
        if not self.is_anonymous_get(request):
            return self.mark_private(request, self.get_response(request))
        if time.monotonic() < _skip_until:
            return self.get_response(request)

        key = "page:" + hashlib.sha256(request.build_absolute_uri().encode()).hexdigest()
        try:
            found = self.cache.get_many([GENERATION_KEY, key])
            generation = found.get(GENERATION_KEY) or self.new_generation()
        except Exception as error:  # noqa: BLE001  a cache must never fail a page
            _failed("read", error)
            return self.get_response(request)

        entry = found.get(key)
        if (
            entry
            and entry["generation"] == generation
            and entry["vary"] == self.vary(request, entry)
        ):
            response = HttpResponse(entry["content"], status=200, headers=entry["headers"])
            response["X-Page-Cache"] = "hit"
            return response

        response = self.get_response(request)
        if self.is_storable(request, response):
            # With an edge or CDN that is purged on publish: s-maxage for shared caches.
            patch_cache_control(response, max_age=self.max_age, **edge_cache_control(request))
            response["X-Page-Cache"] = "miss"
            names = [name.lower() for name in split_header_value(response.get("Vary", ""))]
            entry = {
                "generation": generation,
                "vary_names": [name for name in names if name != "cookie"],
                "headers": [(k, v) for k, v in response.items() if k != "X-Page-Cache"],
                "content": response.content,
            }
            entry["vary"] = self.vary(request, entry)
            try:
                self.cache.set(key, entry, self.seconds)
            except Exception as error:  # noqa: BLE001
                _failed("write", error)
        return self.mark_private(request, response)

    def new_generation(self):
        # First request after Redis was emptied: start a generation no stored page can carry.
        self.cache.add(GENERATION_KEY, uuid.uuid4().hex, timeout=None)
        return self.cache.get(GENERATION_KEY)

    def is_anonymous_get(self, request):
        return (
            request.method == "GET"
            and "HTTP_AUTHORIZATION" not in request.META
            and not self.private_cookies.intersection(request.COOKIES)
        )

    @staticmethod
    def vary(request, entry):
        return [request.headers.get(name, "") for name in entry["vary_names"]]

    @staticmethod
    def is_page(request):
        match = getattr(request, "resolver_match", None)
        return match is not None and match.url_name == "wagtail_serve"

    def is_storable(self, request, response):
        user = getattr(request, "user", None)
        cache_control = {
            d.split("=")[0].lower() for d in split_header_value(response.get("Cache-Control", ""))
        }
        return (
            self.is_page(request)
            and response.status_code == 200
            and not response.streaming
            and not response.cookies
            and "CSRF_COOKIE_NEEDS_UPDATE" not in request.META  # the page holds a CSRF token
            and not (user and user.is_authenticated)
            and not cache_control & NOT_STORED
            and "*" not in response.get("Vary", "")
        )

    def mark_private(self, request, response):
        """Keep pages rendered for one visitor (an editor's userbar) out of shared caches."""
        if (
            self.is_page(request)
            and "Cache-Control" not in response
            and "X-Page-Cache" not in response
        ):
            patch_cache_control(response, private=True)
        return response


# ---------------------------------------------------------------------------------------------
# Invalidation: a new generation once the change is committed, so no request can render the old
# content under the new generation.


def invalidate():
    try:
        caches[ALIAS].set(GENERATION_KEY, uuid.uuid4().hex, timeout=None)
    except Exception as error:  # noqa: BLE001
        logger.error(
            "page cache: invalidation failed, pages may be stale for up to "
            "PAGE_CACHE_SECONDS: %s: %s",
            type(error).__name__,
            error,
        )


def invalidate_on_commit(**kwargs):
    transaction.on_commit(invalidate)


for signal in (page_published, page_unpublished, post_page_move, published, unpublished):
    signal.connect(invalidate_on_commit, dispatch_uid=f"pagecache-{id(signal)}")


@functools.cache
def content_classes():
    """Models whose saved changes pages can show (imported late: models load after this module)."""
    from wagtail.contrib.settings.models import BaseGenericSetting, BaseSiteSetting
    from wagtail.documents.models import AbstractDocument
    from wagtail.images.models import AbstractImage
    from wagtail.models import BaseViewRestriction, Site

    documents_and_images = (AbstractDocument, AbstractImage)
    return (Site, BaseViewRestriction, BaseGenericSetting, BaseSiteSetting, *documents_and_images)


def renders_into_pages(sender, instance):
    from wagtail.models import Page
    from wagtail.snippets.models import get_snippet_models

    if isinstance(instance, Page):
        return instance.live
    return issubclass(sender, content_classes()) or sender in get_snippet_models()


@receiver(post_save, dispatch_uid="pagecache-save")
@receiver(post_delete, dispatch_uid="pagecache-delete")
def invalidate_on_content_change(sender, instance, **kwargs):
    if renders_into_pages(sender, instance):
        invalidate_on_commit()
