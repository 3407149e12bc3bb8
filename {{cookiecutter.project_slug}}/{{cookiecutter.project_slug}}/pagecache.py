"""Whole-page cache for anonymous visitors, kept in Redis (the "pagecache" cache alias).

Wagtail 8 has no maintained page-cache package (wagtail-cache stops at Wagtail 7), so this is a
small one. Turn it off with PAGE_CACHE_SECONDS=0.

What is cached: GET requests for Wagtail pages (the ``wagtail_serve`` view) from anonymous
visitors, i.e. requests without a session cookie, a messages cookie or an Authorization header,
whose response is a 200 that sets no cookie, used no CSRF token (a page with a form) and is not
marked private, no-cache or no-store (Wagtail marks previews and restricted pages that way).
Anonymity is decided here, not through ``Vary: Cookie`` (Wagtail's userbar adds it to every page,
which would split the cache per visitor cookie); any other header the response varies on must
match the stored copy's request. A HEAD request is answered from the GET's entry, and gets the
same headers as the GET.

Bounded memory: tracking parameters (TRACKING_PARAMS, any ``utm_*``) are left out of the cache
key, so ``/about/?utm_source=x`` is served from ``/about/``'s entry. Any other query string is a
page of its own (``?page=2``), but each page stores at most QUERY_VARIANTS_PER_PAGE of them per
generation: random query strings cannot fill Redis. Entries are compressed (django-redis's zlib
compressor, production.py), and Redis itself is capped with ``maxmemory`` and ``allkeys-lru``
(README): old generations' pages are never read again and are the first to go.

Invalidation, in two layers:

- The durable one is in PostgreSQL: the PageCacheGeneration row (models.py). Publishing,
  unpublishing, moving, copying or deleting a page, and saving or deleting a live page, a Site, a
  view restriction, an image, a document, a snippet or a setting adds one to it, inside the
  change's own transaction: the new number becomes visible together with the new content, and it
  cannot be lost to a Redis that is stalled, refusing, restarting from old data, or skipped by an
  open circuit breaker. Every process re-reads it at most once per GENERATION_READ_EVERY (1 s;
  one tiny query per second per process, none per hit), and at once when Redis announces a
  change (below). It is part of every page's Redis key: pages stored under an older number are
  never read again. (The price: two transactions that both change content take the row's lock
  in turn, from the change to the commit.)
- The fast one is in Redis: after the commit, the change also writes a new random generation to
  Redis. Every instance reads it with the page in one round trip, so when Redis is healthy the
  very next request anywhere renders afresh. If that write fails (it gives up after one short
  timeout, so the editor never waits), the database number still reaches every instance within
  about a second.

Outgoing headers: a cacheable page is sent with ``Cache-Control: max-age=PAGE_CACHE_MAX_AGE``
(``cache_headers()``, the one place that decides them, for hits too), so browsers and CDNs show an
old page for at most that long after a publish; with a purge backend configured, also
``s-maxage=EDGE_CACHE_SECONDS`` for shared caches (frontendcache.py purges them), except on query
strings no purge can name. Pages rendered for logged-in visitors are sent with
``Cache-Control: private``. ``X-Page-Cache`` says hit or miss.

Failures: a failing or hung Redis costs one short timeout, logs one line, and the cache is then
skipped for SKIP_AFTER_ERROR seconds; pages are rendered as if it were off. A Redis that answers
but refuses a write (out of memory under ``noeviction``, a read-only replica) is not an outage:
the page is not stored, hits keep being served, and the refusal is logged (at most one line per
SKIP_AFTER_ERROR seconds). If the database cannot be read, the last generation read is kept.
"""

import functools
import hashlib
import logging
import time
import uuid
from urllib.parse import parse_qsl, urlencode

from django.conf import settings
from django.core.cache import caches
from django.core.exceptions import MiddlewareNotUsed
from django.db import DatabaseError, transaction
from django.db.models import F
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver
from django.http import HttpResponse
from django.utils.cache import patch_cache_control
from django.utils.http import split_header_value
from redis.exceptions import ResponseError
from wagtail.signals import (
    page_published,
    page_unpublished,
    post_page_move,
    published,
    unpublished,
)

ALIAS = "pagecache"
GENERATION_KEY = "generation"
SKIP_AFTER_ERROR = 5  # seconds without Redis after an error, so a hung Redis costs one timeout
GENERATION_READ_EVERY = 1.0  # seconds a process trusts the database generation it last read
QUERY_VARIANTS_PER_PAGE = 10  # query strings stored per page and generation
NOT_STORED = {"private", "no-cache", "no-store"}
# Query parameters that only feed analytics: dropped from the cache key (edge: deploy/nginx.conf
# keeps the same list for its own cache key).
TRACKING_PREFIXES = ("utm_",)
TRACKING_PARAMS = frozenset(
    {
        "gclid",
        "dclid",
        "gbraid",
        "wbraid",
        "fbclid",
        "msclkid",
        "mc_cid",
        "mc_eid",
        "yclid",
        "_ga",
        "_gl",
        "igshid",
        "twclid",
        "ttclid",
        "li_fat_id",
    }
)

logger = logging.getLogger(__name__)
_skip_until = 0.0  # per process: only ever delays using Redis, never decides what is fresh
_quiet_until = 0.0  # per process: no second "refused" line before this


def _failed(action, error):
    global _skip_until, _quiet_until
    cause = error.__cause__ or error  # django-redis wraps redis-py's error
    now = time.monotonic()
    if isinstance(cause, ResponseError):  # Redis answered: it refuses, it is not down
        if now >= _quiet_until:
            _quiet_until = now + SKIP_AFTER_ERROR
            logger.warning(
                "page cache: Redis refused the %s, page not stored: %s: %s",
                action,
                type(cause).__name__,
                cause,
            )
        return
    _skip_until = now + SKIP_AFTER_ERROR
    logger.warning(
        "page cache: %s failed, skipping Redis for %s s: %s: %s",
        action,
        SKIP_AFTER_ERROR,
        type(error).__name__,
        error,
    )


def is_tracking(name):
    name = name.lower()
    return name in TRACKING_PARAMS or name.startswith(TRACKING_PREFIXES)


class DatabaseGeneration:
    """This process's view of the PageCacheGeneration row: re-read at most once a second, and at
    once when Redis announces a change."""

    def __init__(self):
        self.value = None
        self.read_at = float("-inf")
        self.announced = None  # the Redis generation this process saw last

    def announces_change(self, redis_generation):
        """True when Redis holds a generation this process has not seen yet (the first one seen
        aside): a change was committed, so the database already has its number."""
        changed = self.announced is not None and redis_generation != self.announced
        self.announced = redis_generation
        return changed

    def get(self, now=False):
        from .models import PageCacheGeneration

        if now or time.monotonic() - self.read_at >= GENERATION_READ_EVERY:
            self.read_at = time.monotonic()
            try:
                row = PageCacheGeneration.objects.filter(pk=1).values_list("value", flat=True)
                self.value = row.first() or 0
            except DatabaseError as error:  # keep the last value: no change can commit now
                logger.warning(
                    "page cache: reading the generation failed: %s: %s", type(error).__name__, error
                )
        return self.value


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
        self.database_generation = DatabaseGeneration()

    def __call__(self, request):
        if not self.is_anonymous_read(request):
            return self.mark_private(request, self.get_response(request))

        # Read before rendering: a page is never labelled with a generation newer than itself.
        database_generation = self.database_generation.get()
        key, budget = self.keys(request, database_generation)
        generation = entry = None
        if database_generation is not None and time.monotonic() >= _skip_until:
            try:
                found = self.cache.get_many([GENERATION_KEY, key])
                generation = found.get(GENERATION_KEY) or self.new_generation()
                entry = found.get(key)
                # A change was committed: follow it at once rather than within the second.
                if (
                    self.database_generation.announces_change(generation)
                    and self.database_generation.get(now=True) != database_generation
                ):
                    database_generation = self.database_generation.value
                    key, budget = self.keys(request, database_generation)
                    entry = self.cache.get(key)
            except Exception as error:  # noqa: BLE001  a cache must never fail a page
                _failed("read", error)

        if (
            entry
            and entry["generation"] == generation
            and entry["vary"] == self.vary(request, entry)
        ):
            response = HttpResponse(entry["content"], status=200, headers=entry["headers"])
            self.cache_headers(request, response)
            response["X-Page-Cache"] = "hit"
            return response

        response = self.get_response(request)
        if self.is_storable(request, response):
            self.cache_headers(request, response)
            response["X-Page-Cache"] = "miss"
            if generation and request.method == "GET":
                self.store(request, response, key, generation, budget)
        return self.mark_private(request, response)

    def keys(self, request, database_generation):
        """The page's key, and for a query string other than tracking ones, the key that counts
        this page's stored query strings (the budget)."""
        url, page_url = self.cache_urls(request)
        key = f"page:{database_generation}:{digest(url)}"
        budget = f"variants:{database_generation}:{digest(page_url)}" if url != page_url else None
        return key, budget

    def cache_headers(self, request, response):
        """The caching headers of every cacheable page (GET or HEAD, stored, not stored or a
        hit): browsers and CDNs keep it for at most PAGE_CACHE_MAX_AGE seconds. With an edge or
        CDN that is purged on publish (frontendcache.py), shared caches keep it for
        EDGE_CACHE_SECONDS, unless a query string other than tracking parameters makes it a URL
        no purge names."""
        edge = settings.WAGTAILFRONTENDCACHE and all(is_tracking(name) for name in request.GET)
        if edge:
            patch_cache_control(
                response, max_age=self.max_age, s_maxage=settings.EDGE_CACHE_SECONDS
            )
        else:
            patch_cache_control(response, max_age=self.max_age)

    def store(self, request, response, key, generation, budget):
        names = [name.lower() for name in split_header_value(response.get("Vary", ""))]
        entry = {
            "generation": generation,
            "vary_names": [name for name in names if name != "cookie"],
            # Set again on every hit: a hit follows today's settings, not the stored copy's.
            "headers": [
                (k, v) for k, v in response.items() if k not in ("X-Page-Cache", "Cache-Control")
            ],
            "content": response.content,
        }
        entry["vary"] = self.vary(request, entry)
        try:
            if budget is None or self.within_budget(budget):
                self.cache.set(key, entry, self.seconds)
        except Exception as error:  # noqa: BLE001
            _failed("write", error)

    def within_budget(self, budget):
        """Count the query strings stored for this page; true while within the budget."""
        self.cache.add(budget, 0, self.seconds)
        try:
            return self.cache.incr(budget) <= QUERY_VARIANTS_PER_PAGE
        except ValueError:  # evicted since the line above: store nothing
            return False

    def new_generation(self):
        # First request after Redis was emptied: start a generation no stored page can carry.
        self.cache.add(GENERATION_KEY, uuid.uuid4().hex, timeout=None)
        return self.cache.get(GENERATION_KEY)

    def is_anonymous_read(self, request):
        return (
            request.method in ("GET", "HEAD")
            and "Authorization" not in request.headers
            and not self.private_cookies.intersection(request.COOKIES)
        )

    @staticmethod
    def cache_urls(request):
        """The URL a page is cached under (no tracking parameters, the others sorted), and the
        same without its query string."""
        page_url = f"{request.scheme}://{request.get_host()}{request.path}"
        query = parse_qsl(request.META.get("QUERY_STRING", ""), keep_blank_values=True)
        kept = sorted((name, value) for name, value in query if not is_tracking(name))
        return (f"{page_url}?{urlencode(kept)}" if kept else page_url), page_url

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


def digest(text):
    return hashlib.sha256(text.encode()).hexdigest()


# ---------------------------------------------------------------------------------------------
# Invalidation: the database generation moves inside the change's transaction; Redis's moves
# once the change is committed, so no request can render the old content under the new one.


def invalidate(**kwargs):
    from .models import PageCacheGeneration

    if not PageCacheGeneration.objects.filter(pk=1).update(value=F("value") + 1):
        PageCacheGeneration.objects.get_or_create(pk=1, defaults={"value": 1})  # row deleted
    transaction.on_commit(invalidate_redis)


def invalidate_redis():
    try:
        caches[ALIAS].set(GENERATION_KEY, uuid.uuid4().hex, timeout=None)
    except Exception as error:  # noqa: BLE001
        logger.warning(
            "page cache: Redis missed an invalidation; instances follow the database's "
            "generation within %s s: %s: %s",
            GENERATION_READ_EVERY,
            type(error).__name__,
            error,
        )


for signal in (page_published, page_unpublished, post_page_move, published, unpublished):
    signal.connect(invalidate, dispatch_uid=f"pagecache-{id(signal)}")


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
        invalidate()
