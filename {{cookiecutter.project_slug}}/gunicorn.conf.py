"""gunicorn settings, picked up automatically when gunicorn starts in this folder:

gunicorn {{ cookiecutter.project_slug }}.wsgi
"""

import os
from pathlib import Path

from dotenv import load_dotenv  # python-dotenv, which environs uses for the settings' .env

# The same optional .env beside manage.py that the Django settings read (variables already in the
# environment win), so PORT, WEB_CONCURRENCY and FORWARDED_ALLOW_IPS can live there too.
load_dotenv(Path(__file__).resolve().parent / ".env")

wsgi_app = "{{ cookiecutter.project_slug }}.wsgi"

# PaaS platforms hand the port over in PORT.
bind = f"0.0.0.0:{os.environ.get('PORT') or '8000'}"
# Sync workers: Wagtail has no async views. About two per core; set WEB_CONCURRENCY to tune.
workers = int(os.environ.get("WEB_CONCURRENCY") or 2 * (os.cpu_count() or 1) + 1)

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

# Trust X-Forwarded-* only from the proxy in front (comma separated IPs, or * on a private network).
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1,::1")

# One line per request and per error, on stdout/stderr, for the platform's log collector.
accesslog = "-"
errorlog = "-"
access_log_format = '%(h)s "%(r)s" %(s)s %(b)s %(M)sms "%(f)s" "%(a)s"'
