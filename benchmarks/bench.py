"""Benchmark: a baked project against a `wagtail start` project, same machine, same run.

    uv run benchmarks/bench.py [--duration 10] [--workers 2] [--connections 16] [--json]

Bakes the template's defaults and makes a `wagtail start` baseline with the same Wagtail, both on
a fresh PostgreSQL database each (persistent connections for both) and, for the baked project, a
private redis-server. Each app runs alone under gunicorn with the same worker count on loopback
while wrk (apt-get install wrk) drives it for --duration seconds after a short warm-up. Prints a
Markdown report of ratios measured in this one run. Needs PostgreSQL on 127.0.0.1:5432 (like the
test suite), redis-server, nginx with the cache purge module and wrk. Not part of `uv run pytest`.

The edge rows run the shipped deploy/nginx.conf over TLS in front of gunicorn with
FRONTEND_CACHE_PURGE_URL set and the Procfile's worker running, as in production. The publish row
publishes the homepage ROUNDS times while it is cached at the edge and measures, from the start
of publish(), how long until the edge serves the new title.

--json adds one JSON object as the last line of stdout, every ratio over the `wagtail start`
homepage: {"ratios": {"cached_django": page cache hit, "edge_cached": edge hit, "uncached": a new
URL each request through the edge (edge bypass, page cache miss), "static_whitenoise",
"static_nginx"}, "edge_publish_visible_s": the median publish-to-fresh time}.
"""

import argparse
import datetime
import json
import os
import platform
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack, contextmanager
from pathlib import Path

TEMPLATE = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(TEMPLATE / "tests"))

from conftest import (  # noqa: E402  the test suite's machinery: bake, shared venv, processes
    Project,
    background,
    bake,
    check,
    free_port,
    fresh_database,
    project_venv,
    wait_for_http,
)
from nginx import nginx_for  # noqa: E402

PYTHON = "3.13"
ROUNDS = 5  # publishes timed through the edge
MISS_SCRIPT = 'request = function() return wrk.format(nil, "/?n=" .. math.random(1, 1e9)) end\n'

QUERIES = """
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext, override_settings
from wagtail.models import Page, Site

from home.models import ContentPage

home = Site.objects.get(is_default_site=True).root_page.specific
while Page.objects.count() < {pages}:
    n = Page.objects.count()
    home.add_child(instance=ContentPage(title=f"Page {{n}}", slug=f"page-{{n}}"))


def queries(path, seconds):
    with override_settings(PAGE_CACHE_SECONDS=seconds):
        client = Client(HTTP_HOST="example.com")
        assert client.get(path, secure=True).status_code == 200
        with CaptureQueriesContext(connection) as captured:
            assert client.get(path, secure=True).status_code == 200
    return len(captured)


print("RESULT", Page.objects.count(), queries("/", 0), queries("/page-5/", 0), queries("/", 600))
"""

BASELINE_SETTINGS = """
import os

import dj_database_url

from .production import *

SECRET_KEY = os.environ["DJANGO_SECRET_KEY"]
ALLOWED_HOSTS = ["*"]
# The same kind of database as the baked project, with the same persistent connections.
DATABASES = {"default": dj_database_url.parse(os.environ["DATABASE_URL"], conn_max_age=600)}
# Wagtail's search index needs it on PostgreSQL (wagtail start does not add it).
INSTALLED_APPS = [*INSTALLED_APPS, "django.contrib.postgres"]
"""


# Run inside the baked project (manage.py shell): publish the homepage while the edge holds it,
# then time from the start of publish() to the first response through the edge with the new title.
PUBLISH_ROUNDS = """
import ssl, statistics, time, urllib.request
from wagtail.models import Site

context = ssl.create_default_context(cafile={cert!r})


def fetch():
    request = urllib.request.Request({url!r}, headers={{"Host": "example.com"}})
    with urllib.request.urlopen(request, context=context, timeout=10) as response:
        return response.headers.get("X-Cache-Status"), response.read().decode()


site = Site.objects.get(is_default_site=True)
site.hostname, site.port = "example.com", 443  # purges name the host visitors use
site.save()
times = []
for n in range({rounds}):
    for _ in range(50):  # the page is in the edge cache before each publish
        if fetch()[0] == "HIT":
            break
        time.sleep(0.1)
    else:
        raise SystemExit("the homepage never became an edge HIT")
    page = site.root_page.specific
    page.title = f"Edge round {{n}}"
    revision = page.save_revision()
    started = time.monotonic()  # publish() commits the page part-way through: time all of it
    revision.publish()
    while f"<h1>Edge round {{n}}</h1>" not in fetch()[1]:
        if time.monotonic() - started > 30:
            raise SystemExit("the edge still served the old page 30 s after the publish")
        time.sleep(0.01)
    times.append(time.monotonic() - started)
print("RESULT", *times)
"""


def procfile_worker(project):
    """The Procfile's `worker` command, with the project's interpreter."""
    line = re.search(r"^worker: (.*)$", (project.path / "Procfile").read_text(), re.M).group(1)
    return [project.python, *shlex.split(line)[1:]]


class TmpFactory:
    def __init__(self, root):
        self.root, self.n = Path(root), 0

    def mktemp(self, name):
        self.n += 1
        path = self.root / f"{name}{self.n}"
        path.mkdir()
        return path


def wrk(url, duration, connections, script=None, warmup=2):
    base = ["wrk", "-t2", f"-c{connections}", "--latency", "-H", "Host: example.com",
            "-H", "X-Forwarded-Proto: https"]  # fmt: skip
    if script:
        base += ["-s", script]
    subprocess.run([*base, f"-d{warmup}s", url], capture_output=True, check=True)
    out = subprocess.run(
        [*base, f"-d{duration}s", url], capture_output=True, text=True, check=True
    ).stdout
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sockets = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out
    )
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "p50": latency(out, "50%"),
        "p99": latency(out, "99%"),
        "errors": int(errors.group(1)) if errors else 0,
        "socket_errors": sum(map(int, sockets.groups())) if sockets else 0,
        "requests": int(re.search(r"(\d+) requests in", out).group(1)),
    }


def latency(out, percentile):
    value, unit = re.search(rf"^\s+{percentile}\s+([\d.]+)(us|ms|s)\s*$", out, re.M).groups()
    return float(value) * {"us": 0.001, "ms": 1, "s": 1000}[unit]


def worker_rss_mb(master):
    children = subprocess.run(
        ["ps", "-o", "rss=", "--ppid", str(master.pid)], capture_output=True, text=True
    ).stdout.split()
    sizes = [int(kb) / 1024 for kb in children]
    return sum(sizes) / len(sizes)


@contextmanager
def redis_server():
    port = free_port()
    cmd = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
           "--appendonly", "no"]  # fmt: skip
    with background(cmd) as process:
        for _ in range(100):
            if subprocess.run(["redis-cli", "-p", str(port), "ping"], capture_output=True).stdout:
                break
            time.sleep(0.05)
        process.url = f"redis://127.0.0.1:{port}/0"
        yield process


@contextmanager
def baseline_server(venv, root, database, workers):
    """`wagtail start` as it ships, pointed at PostgreSQL."""
    check([str(venv / "bin" / "wagtail"), "start", "baseline", str(root)])
    (root / "baseline" / "settings" / "bench.py").write_text(BASELINE_SETTINGS)
    env = {
        "PATH": f"{venv / 'bin'}{os.pathsep}{os.environ['PATH']}",
        "GUNICORN_CMD_ARGS": os.environ.get("GUNICORN_CMD_ARGS", ""),
        "DJANGO_SETTINGS_MODULE": "baseline.settings.bench",
        "DJANGO_SECRET_KEY": "baseline-" + "x" * 50,
        "DATABASE_URL": database,
    }
    python = str(venv / "bin" / "python")
    check([python, "manage.py", "migrate", "--noinput", "-v0"], cwd=root, env=env)
    check([python, "manage.py", "collectstatic", "--noinput", "-v0"], cwd=root, env=env)
    port = free_port()
    cmd = [str(venv / "bin" / "gunicorn"), "baseline.wsgi", "-w", str(workers),
           "-b", f"127.0.0.1:{port}", "--access-logfile", str(root / "access.log")]  # fmt: skip
    with background(cmd, cwd=root, env=env, log=root / "gunicorn.log") as process:
        process.base_url = f"http://127.0.0.1:{port}"
        wait_for_http(process.base_url + "/", timeout=60, process=process)
        yield process


def machine():
    cpu = next(
        (line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
         if line.startswith("model name")), platform.processor())  # fmt: skip
    memory = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text()).group(1))
    return f"{cpu}, {os.cpu_count()} CPUs, {memory // 1024 // 1024} GiB RAM, {platform.platform()}"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers for both apps")
    parser.add_argument("--connections", type=int, default=16, help="wrk connections")
    parser.add_argument(
        "--json", action="store_true", help="end with one line of JSON: the ratios and times"
    )
    parser.add_argument(
        "--gunicorn-args",
        default="",
        help='extra gunicorn options for both apps (GUNICORN_CMD_ARGS), e.g. "--max-requests 0"',
    )
    args = parser.parse_args()
    for tool in ("wrk", "redis-server", "nginx"):
        if not shutil.which(tool) and not Path(f"/usr/sbin/{tool}").exists():
            sys.exit(f"{tool} is needed: apt-get install -y {tool.replace('-server', '')}")
    run = lambda url, **kw: wrk(url, args.duration, args.connections, **kw)  # noqa: E731
    results, queries, rss = {}, [], {}
    started = datetime.datetime.now(datetime.UTC)
    if args.gunicorn_args:
        os.environ["GUNICORN_CMD_ARGS"] = args.gunicorn_args
    gunicorn_env = {"GUNICORN_CMD_ARGS": args.gunicorn_args} if args.gunicorn_args else {}
    report_to = os.dup(1)
    os.dup2(2, 1)  # progress, and cookiecutter's hook output, go to stderr; the report to stdout

    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="wagtail-bench-")))
        venv = project_venv(PYTHON, TmpFactory(tmp))
        print(f"baking the template and `wagtail start` in {tmp} ...", file=sys.stderr)
        redis = stack.enter_context(redis_server())
        path = bake(tmp / "bake", python_version=PYTHON)
        project = Project(
            path, {}, venv, stack.enter_context(fresh_database()), redis.url,
            {"WEB_CONCURRENCY": str(args.workers)},
        )  # fmt: skip
        project.prepare()
        miss_script = tmp / "miss.lua"
        miss_script.write_text(MISS_SCRIPT)

        for pages in (10, 1000):
            print(f"counting queries with {pages} pages ...", file=sys.stderr)
            out = project.shell(QUERIES.format(pages=pages))
            queries.append(list(map(int, out.split("RESULT")[1].split())))
        # The pages above queued search and reference index work: done now, so the worker the
        # edge rows run with is idle, as on a site between publishes.
        project.manage("db_worker", "--batch", timeout=1200)

        with baseline_server(venv, tmp / "start", stack.enter_context(fresh_database()),
                             args.workers) as baseline:  # fmt: skip
            print("wrk: wagtail start ...", file=sys.stderr)
            results["baseline"] = run(baseline.base_url + "/")
            rss["`wagtail start`"] = worker_rss_mb(baseline)

        with project.gunicorn(env={"PAGE_CACHE_SECONDS": "0"} | gunicorn_env) as server:
            print("wrk: page cache off ...", file=sys.stderr)
            results["off"] = run(server.base_url + "/")
            rss["baked, page cache off"] = worker_rss_mb(server)

        with project.gunicorn(env=gunicorn_env) as server:
            home = subprocess.run(
                ["curl", "-s", "-H", "Host: example.com", "-H", "X-Forwarded-Proto: https",
                 server.base_url + "/"], capture_output=True, text=True, check=True,
            ).stdout  # fmt: skip
            css = re.search(r'href="(/static/css/site\.[0-9a-f]{12}\.css)"', home).group(1)
            print("wrk: page cache hit, miss, static ...", file=sys.stderr)
            results["hit"] = run(server.base_url + "/")
            results["miss"] = run(server.base_url + "/", script=str(miss_script))
            results["whitenoise"] = run(server.base_url + css)
            rss["baked, page cache on"] = worker_rss_mb(server)

        # The shipped edge: nginx's cache in front, purged by the worker (gunicorn's port first,
        # since nginx points at it and gunicorn is told nginx's purge address).
        port = free_port()
        # Pages the page cache stored above carry the headers of a site without purging.
        check(["redis-cli", "-u", redis.url, "flushdb"])
        proxy = stack.enter_context(nginx_for(project, f"http://127.0.0.1:{port}"))
        edge_env = {"FRONTEND_CACHE_PURGE_URL": proxy.purge_url}
        with (
            project.gunicorn(port=port, env=edge_env | gunicorn_env),
            background(procfile_worker(project), cwd=project.path, env=project.env | edge_env,
                       log=tmp / "worker.log"),
        ):  # fmt: skip
            print("wrk: edge hit, edge miss, static through nginx ...", file=sys.stderr)
            results["edge"] = run(proxy.https_url + "/")
            results["edge_miss"] = run(proxy.https_url + "/", script=str(miss_script))
            results["nginx"] = run(proxy.https_url + css)
            print(f"publishing {ROUNDS} times through the edge ...", file=sys.stderr)
            code = PUBLISH_ROUNDS.format(cert=proxy.cert, url=proxy.https_url + "/", rounds=ROUNDS)
            out = project.shell(code, env=edge_env)
            publish_times = [float(t) for t in out.split("RESULT")[1].split()]

    os.dup2(report_to, 1)
    print(report(results, queries, rss, args, started, publish_times))
    if args.json:
        base = results["baseline"]["rps"]
        ratios = {
            "cached_django": results["hit"]["rps"] / base,
            "edge_cached": results["edge"]["rps"] / base,
            "uncached": results["edge_miss"]["rps"] / base,
            "static_whitenoise": results["whitenoise"]["rps"] / base,
            "static_nginx": results["nginx"]["rps"] / base,
        }
        summary = {
            "ratios": {name: round(value, 2) for name, value in ratios.items()},
            "edge_publish_visible_s": round(statistics.median(publish_times), 3),
        }
        print(json.dumps(summary))


def report(r, queries, rss, args, started, publish_times):
    base, off = r["baseline"]["rps"], r["off"]["rps"]
    rows = [
        ("homepage, `wagtail start` (baseline)", "baseline", "1.0×", ""),
        ("homepage, page cache hit", "hit", f"{r['hit']['rps'] / base:.1f}× baseline", "≥ 10×"),
        ("homepage, page cache off", "off", f"{off / base:.2f}× baseline", "≥ 1.0×"),
        ("homepage, page cache miss (new URL each request)", "miss",
         f"{r['miss']['rps'] / base:.2f}× baseline", "≥ 1.0×"),
        ("hashed static file, WhiteNoise (gunicorn)", "whitenoise",
         f"{r['whitenoise']['rps'] / off:.1f}× uncached page", "≥ 20×"),
        ("homepage, edge hit (deploy/nginx.conf proxy_cache, TLS)", "edge",
         f"{r['edge']['rps'] / base:.1f}× baseline", "≥ 50×"),
        ("homepage through the edge, new URL each request (edge bypass, page cache miss)",
         "edge_miss", f"{r['edge_miss']['rps'] / base:.2f}× baseline", "≥ 1.0×"),
        ("hashed static file, nginx (deploy/nginx.conf, TLS)", "nginx",
         f"{r['nginx']['rps'] / off:.1f}× uncached page", ""),
    ]  # fmt: skip
    lines = [
        f"Run {started:%Y-%m-%d %H:%M} UTC on {machine()}.",
        f"gunicorn sync workers: {args.workers} each"
        + (f" (extra options: `{args.gunicorn_args}`)" if args.gunicorn_args else "")
        + f"; wrk: 2 threads, {args.connections} "
        f"connections, {args.duration} s per row after a 2 s warm-up; loopback; PostgreSQL for "
        "both; Redis for the baked project.",
        "",
        "| what | requests/s | p50 ms | p99 ms | non-2xx/3xx, socket errors | ratio | target |",
        "|---|---:|---:|---:|---:|---|---|",
    ]
    for label, key, ratio, target in rows:
        m = r[key]
        lines.append(
            f"| {label} | {m['rps']:,.0f} | {m['p50']:.1f} | {m['p99']:.1f} "
            f"| {m['errors']}, {m['socket_errors']} "
            f"| {ratio} | {target} |"
        )
    lines += [
        "",
        "| publish → first fresh response through the edge | median s | max s | target |",
        "|---|---:|---:|---|",
        f"| homepage, {len(publish_times)} publishes (worker: the Procfile's db_worker) "
        f"| {statistics.median(publish_times):.3f} | {max(publish_times):.3f} | ≤ 1.0 s |",
        "",
        "| pages in the tree | queries: homepage | queries: a content page | queries: cached homepage |",
        "|---:|---:|---:|---:|",
        *(f"| {n:,} | {home} | {page} | {cached} |" for n, home, page, cached in queries),
        "",
        "| server | RSS per gunicorn worker (MiB) |",
        "|---|---:|",
        *(f"| {name} | {mb:.0f} |" for name, mb in rss.items()),
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
