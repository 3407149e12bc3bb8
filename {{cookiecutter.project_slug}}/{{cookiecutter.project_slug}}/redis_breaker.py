"""A circuit breaker for the Redis caches: after a connection error or timeout, every cache call
in this process fails at once for SKIP_SECONDS instead of waiting out its own timeout.

Without it a hung Redis costs each request one SOCKET_TIMEOUT per cache call, and a page with
many images makes many (a rendition lookup and store per image). django-redis turns the raised
error into a cache miss (IGNORE_EXCEPTIONS) and logs it; the page renders from the database.
"""

import time

import redis

SKIP_SECONDS = 5
_skip_until = 0.0  # per process; all cache aliases share one Redis server


class CircuitBreakerRedis(redis.Redis):
    """django-redis's REDIS_CLIENT_CLASS: every command but pipelines goes through here."""

    def execute_command(self, *args, **options):
        global _skip_until
        if time.monotonic() < _skip_until:
            raise redis.ConnectionError(f"Redis skipped for {SKIP_SECONDS} s after an error")
        try:
            return super().execute_command(*args, **options)
        except (redis.ConnectionError, redis.TimeoutError):
            _skip_until = time.monotonic() + SKIP_SECONDS
            raise
