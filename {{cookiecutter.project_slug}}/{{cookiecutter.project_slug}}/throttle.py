"""Throttled password guessing: at most THROTTLE_LIMIT failures within THROTTLE_WINDOW seconds
per client IP and per account or restriction, then HTTP 429 with Retry-After until the window
passes.

- Django logins (the Wagtail admin's): django-axes (settings/production.py), with this module's
  client_ip and lockout_response.
- Wagtail's page passwords, document-collection passwords and the admin's password reset have no
  Django login; ThrottleMiddleware counts them in the "default" cache (Redis, shared by every
  instance). It counts an attempt *before* the view runs, so a locked-out client never reaches
  the password check, and gives the attempt back when it succeeds (a redirect). Every password
  reset request counts (each one sends an email).
- If Redis is down the middleware lets requests through and logs it: a cache outage must not lock
  everyone out. nginx's limit_req (deploy/nginx.conf) is the first line in front of both.
"""

import ipaddress
import logging

from django.conf import settings
from django.core.cache import caches
from django.template.response import TemplateResponse
from django.urls import Resolver404, resolve

logger = logging.getLogger(__name__)

# URL name -> what else, besides the client IP, is counted: a view argument or a form field.
THROTTLED = {
    "wagtailcore_authenticate_with_password": ("page restriction", "page_view_restriction_id"),
    "wagtaildocs_authenticate_with_password": ("document restriction", "restriction_id"),
    "wagtailadmin_password_reset": ("password reset for", "email"),
}


def _trusted(address):
    allowed = settings.FORWARDED_ALLOW_IPS
    if "*" in allowed:
        return True
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in ipaddress.ip_network(entry, strict=False) for entry in allowed)


def client_ip(request):
    """The client's address. X-Forwarded-For is believed only when the request comes from a proxy
    in FORWARDED_ALLOW_IPS (gunicorn applies the same rule to X-Forwarded-Proto). The list is read
    from the right, past our own trusted proxies: anything further left the client could have
    written itself."""
    peer = request.META.get("REMOTE_ADDR", "")
    if not _trusted(peer):
        return peer
    forwarded = [a.strip() for a in request.headers.get("X-Forwarded-For", "").split(",")]
    forwarded = [a for a in forwarded if a]
    for address in reversed(forwarded):
        if not _trusted(address) or "*" in settings.FORWARDED_ALLOW_IPS:
            return address
    return forwarded[0] if forwarded else peer


def too_many(request, retry_after):
    """The 429 answer: a page that says what happened and when to try again."""
    response = TemplateResponse(
        request, "429.html", {"retry_after": retry_after}, status=429
    ).render()
    response["Retry-After"] = str(retry_after)
    response["Cache-Control"] = "no-store"
    return response


def lockout_response(request, original_response=None, credentials=None):
    """django-axes' answer to a locked-out login (AXES_LOCKOUT_CALLABLE)."""
    return too_many(request, settings.THROTTLE_WINDOW)


class ThrottleMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response
        self.cache = caches["default"]

    def __call__(self, request):
        if request.method != "POST":
            return self.get_response(request)
        try:
            match = resolve(request.path_info)
        except Resolver404:
            return self.get_response(request)
        if match.url_name not in THROTTLED:
            return self.get_response(request)

        what, source = THROTTLED[match.url_name]
        ip = client_ip(request)
        subject = match.kwargs.get(source) or request.POST.get(source, "").strip().lower()[:254]
        keys = [f"throttle:ip:{ip}", f"throttle:{match.url_name}:{subject}"]
        counts = [self._count(key) for key in keys]
        if None in counts:  # the cache is unavailable: fail open
            logger.warning("throttle: cache unavailable, not counting %s %s", what, subject)
            return self.get_response(request)
        if max(counts) > settings.THROTTLE_LIMIT:
            logger.warning("throttle: 429 for %s (%s %s)", ip, what, subject)
            return too_many(request, self._retry_after(keys))

        response = self.get_response(request)
        if match.url_name != "wagtailadmin_password_reset" and response.status_code in (301, 302):
            for key in keys:  # the right password: only failures count
                self._give_back(key)
        return response

    def _count(self, key):
        """Count one attempt in the window that started with the first; None without a cache."""
        try:
            self.cache.add(key, 0, timeout=settings.THROTTLE_WINDOW)
            return self.cache.incr(key)  # atomic, and keeps the window's expiry
        except ValueError:  # the window ended between add and incr: this is a new one
            self.cache.add(key, 1, timeout=settings.THROTTLE_WINDOW)
            return 1
        except Exception:  # noqa: BLE001  any cache error means "unknown", never a failed login
            return None

    def _give_back(self, key):
        try:
            if self.cache.decr(key) <= 0:
                self.cache.delete(key)  # nothing counted: the next failure starts a new window
        except Exception:  # noqa: BLE001, S110  the window may have ended; nothing to give back
            pass

    def _retry_after(self, keys):
        ttl = getattr(self.cache, "ttl", None)  # django-redis knows how long a window has left
        if ttl is None:
            return settings.THROTTLE_WINDOW
        remaining = [t for t in (ttl(key) for key in keys) if isinstance(t, int) and t > 0]
        return max(remaining, default=settings.THROTTLE_WINDOW)
