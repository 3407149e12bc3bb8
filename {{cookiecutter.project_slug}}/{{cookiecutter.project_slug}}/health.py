"""Health probes, answered before host validation and the HTTPS redirect so that load balancers
and orchestrators can call them by IP over plain HTTP.

/healthz/  the process is alive (no I/O).
/readyz/   the database answers (else 503); the cache is reported but optional, because the site
           keeps serving without it.
"""

import logging

from django.core.cache import caches
from django.db import DatabaseError, connection
from django.http import JsonResponse

logger = logging.getLogger(__name__)


def database_ready():
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return True
    except DatabaseError as error:
        logger.warning("readyz: database unavailable: %s", str(error).strip().splitlines()[0])
        return False


def cache_ready():
    # Cache errors are ignored by design, so a failed write shows up as a read that misses.
    cache = caches["default"]
    cache.set("readyz", "ok", 10)
    return cache.get("readyz") == "ok"


class HealthCheckMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.path == "/healthz/":
            return JsonResponse({"status": "ok"})
        if request.path == "/readyz/":
            database = database_ready()
            body = {
                "database": "ok" if database else "unavailable",
                "cache": "ok" if cache_ready() else "unavailable",
            }
            return JsonResponse(body, status=200 if database else 503)
        return self.get_response(request)
