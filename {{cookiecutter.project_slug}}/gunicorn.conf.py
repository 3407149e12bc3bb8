"""gunicorn settings, picked up automatically when gunicorn starts in this folder:

gunicorn {{ cookiecutter.project_slug }}.wsgi
"""

import os
from pathlib import Path

from dotenv import dotenv_values
from gunicorn.glogging import Logger

# The same variables Django reads: the real environment first, then .env beside this file; a
# variable that is present but empty counts as unset (as in the settings).
_environ = dotenv_values(Path(__file__).with_name(".env")) | dict(os.environ)


def setting(name, default):
    return _environ.get(name) or default


wsgi_app = "{{ cookiecutter.project_slug }}.wsgi"

# PaaS platforms hand the port over in PORT.
bind = f"0.0.0.0:{setting('PORT', '8000')}"
# Sync workers: Wagtail has no async views. About two per core; set WEB_CONCURRENCY to tune.
workers = int(setting("WEB_CONCURRENCY", 2 * (os.cpu_count() or 1) + 1))

# A request that runs longer than this is killed and its worker replaced.
timeout = 30
# On SIGTERM workers finish in-flight requests for up to this long before exiting.
graceful_timeout = 30
# Behind a proxy that keeps connections alive (nginx upstream keepalive).
keepalive = 5
# Recycle workers now and then (bounds slow memory growth); jitter stops all restarting at once.
# Not lower: a worker serving cached pages answers ~700 requests/s, and each restart re-imports
# Django and Wagtail (~1.5 s); at 1,000 the benchmark lost two thirds of its throughput to restarts.
max_requests = 20_000
max_requests_jitter = 2_000
# The heartbeat file lives in memory: a slow or full disk cannot make workers look dead.
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None  # noqa: S108

# No runtime control socket: its default path is per user, so two sites (or two instances) on one
# host would fight over it, and deploys restart processes through the platform anyway.
control_socket_disable = True

# The proxy in front says whether the visitor used HTTPS. gunicorn believes it only from the
# addresses in FORWARDED_ALLOW_IPS (comma separated IPs or networks, or * when nothing but the
# proxy can reach this port) and then sets the request's scheme, which Django follows; from
# anyone else the header is ignored and the request is plain HTTP (redirected to https).
# The settings read the same variable to decide whose X-Forwarded-For names the client.
forwarded_allow_ips = setting("FORWARDED_ALLOW_IPS", "127.0.0.1,::1")
# Only the header deploy/nginx.conf overwrites; gunicorn's defaults also accept X-Forwarded-Ssl
# and X-Forwarded-Protocol, which nginx passes through from the client untouched.
secure_scheme_headers = {"X-FORWARDED-PROTO": "https"}

# One line per request and per error, on stdout/stderr, for the platform's log collector.
accesslog = "-"
errorlog = "-"
access_log_format = '%(h)s "%(r)s" %(s)s %(b)s %(M)sms "%(f)s" "%(a)s"'


class BoundedAccessLogger(Logger):
    """Cuts the client-controlled parts of an access log line (request line, referrer, user
    agent: up to 8 KB each) to a few hundred characters, so a line stays under 2 KB."""

    def atoms(self, resp, req, environ, request_time):
        atoms = super().atoms(resp, req, environ, request_time)
        for key in ("r", "f", "a", "U", "q"):
            value = atoms.get(key)
            if isinstance(value, str) and len(value) > 500:
                atoms[key] = value[:300] + f"...[{len(value) - 500} cut]..." + value[-200:]
        return atoms


logger_class = BoundedAccessLogger
