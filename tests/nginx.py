"""A real nginx running a baked project's shipped deploy/nginx.conf, for tests.

    from nginx import nginx_for

    with project.gunicorn() as server, nginx_for(project, server.base_url) as proxy:
        requests.get(proxy.https_url + "/", headers=HTTPS, verify=proxy.cert)

nginx_for(project, upstream_url) renders `project.path / "deploy/nginx.conf"` for a test run and
starts `nginx -p <prefix> -c <conf> -g 'daemon off;'` in the background (stopped on exit):
- both `listen` ports become free loopback ports (the IPv6 listens are dropped), and the TLS
  server gets a self-signed certificate made with openssl for 127.0.0.1, localhost and the
  project's domain, so X-Forwarded-Proto is really "https" and Django does not redirect-loop;
- /srv/<slug> (the documented project-folder placeholder) becomes project.path, so nginx serves
  the project's staticfiles/ and media/ itself;
- the upstream `server 127.0.0.1:8000` becomes upstream_url's host:port (gunicorn's base_url);
- pid, logs, temp files and the edge cache (proxy_cache_path) live in a private prefix
  directory, and the PURGE listener (127.0.0.1:8008) gets a free loopback port;
- Debian's cache purge module is loaded with load_module, as /etc/nginx/modules-enabled does.
Every substitution asserts that it matched, so a test fails when the shipped config changes
shape instead of silently testing something else. The file is included in a minimal http block
like Debian's /etc/nginx/nginx.conf (mime.types, sendfile, gzip).

The yielded object has:
- https_url, http_url: "https://127.0.0.1:<port>" / "http://127.0.0.1:<port>" (no trailing /)
- https_port, http_port
- purge_url: "http://127.0.0.1:<port>", the PURGE listener (FRONTEND_CACHE_PURGE_URL)
- cache_dir: the edge cache's directory
- cert: the certificate's path, for `verify=proxy.cert` (or use verify=False)
- access_log, error_log: Paths of nginx's logs (the shipped config turns access logging off for
  /static/ and /media/images/); conf: the rendered config; process: the nginx master Popen.

nginx passes `Host $host` (without the port) to Django, as it would on port 443. Send
`Host: <domain_name>` (conftest.HTTPS has example.com) or set DJANGO_ALLOWED_HOSTS. A browser
posting forms sends `Origin: https://127.0.0.1:<port>`: add it to DJANGO_CSRF_TRUSTED_ORIGINS.
nginx's 301 from plain HTTP goes to https://$host$request_uri, i.e. without the test port.
"""

import os
import re
import shutil
from contextlib import contextmanager
from pathlib import Path
from tempfile import TemporaryDirectory
from types import SimpleNamespace
from urllib.parse import urlsplit

import pytest
from conftest import background, check, free_port, wait_for_http

MIME_TYPES = Path("/etc/nginx/mime.types")
# Debian's libnginx-mod-http-cache-purge (ngx_cache_purge 2.3); Debian's own nginx.conf loads it
# from /etc/nginx/modules-enabled, the test's main config loads it itself.
PURGE_MODULE = Path("/usr/lib/nginx/modules/ngx_http_cache_purge_module.so")


def nginx_binary():
    found = shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.access(p, os.X_OK)), None
    )
    if not found:
        pytest.fail("nginx is needed: apt-get install -y nginx (.ci/run installs it)")
    return found


def substitute(text, pattern, replacement, count):
    """re.subn that fails the test unless `pattern` matched exactly `count` times."""
    new, found = re.subn(pattern, replacement, text, flags=re.MULTILINE)
    assert found == count, (
        f"deploy/nginx.conf changed shape: expected {count} match(es) of {pattern!r}, found {found}"
    )
    return new


def self_signed_cert(directory, domain):
    cert, key = directory / "cert.pem", directory / "key.pem"
    check(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-keyout", str(key), "-out", str(cert), "-subj", f"/CN={domain}",
         "-addext", f"subjectAltName=DNS:{domain},DNS:localhost,IP:127.0.0.1"]
    )  # fmt: skip
    return cert, key


def render(project, upstream, http_port, https_port, cert, key, purge_port, cache_dir):
    """The shipped site config with the test's ports, paths, upstream and certificate."""
    text = (project.path / "deploy" / "nginx.conf").read_text()
    slug = project.slug
    # The edge cache lives in the private prefix; the purge listener gets a free port.
    text = substitute(text, rf"^(proxy_cache_path) /var/cache/{slug}-edge ", rf"\1 {cache_dir} ", 1)
    text = substitute(
        text, r"^(\s*)listen 127\.0\.0\.1:8008;$", rf"\1listen 127.0.0.1:{purge_port};", 1
    )
    text = substitute(text, r"^(\s*)listen 80;$", rf"\1listen 127.0.0.1:{http_port};", 1)
    text = substitute(text, r"^\s*listen \[::\]:80;\n", "", 1)
    text = substitute(
        text, r"^(\s*)listen 443 ssl( http2)?;$", rf"\1listen 127.0.0.1:{https_port} ssl\2;", 1
    )
    text = substitute(text, r"^\s*listen \[::\]:443 ssl( http2)?;\n", "", 1)
    text = substitute(text, r"^(\s*)server 127\.0\.0\.1:8000;$", rf"\g<1>server {upstream};", 1)
    text = substitute(text, r"^(\s*ssl_certificate) +\S+;$", rf"\1 {cert};", 1)
    text = substitute(text, r"^(\s*ssl_certificate_key) +\S+;$", rf"\1 {key};", 1)
    # Every alias points into the project folder (static, media/images).
    text = substitute(text, rf"^(\s*alias )/srv/{slug}/", rf"\g<1>{project.path}/", 2)
    unknown = [line for line in text.splitlines() if "/srv/" in line.split("#")[0]]
    assert not unknown, f"deploy/nginx.conf has /srv paths the test does not know: {unknown}"
    return text


def main_config(prefix, site_conf, access_log, error_log):
    temp = {
        name: prefix / "temp" / name
        for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    }
    for path in temp.values():
        path.mkdir(parents=True)
    # A root master would run workers as "nobody", who cannot read pytest's 0700 tmp dirs.
    user = "user root root;\n" if os.geteuid() == 0 else ""
    if not PURGE_MODULE.exists():
        pytest.fail(
            f"{PURGE_MODULE} is needed: apt-get install -y libnginx-mod-http-cache-purge"
            " (.ci/run installs it)"
        )
    return f"""load_module {PURGE_MODULE};
{user}worker_processes 1;
pid {prefix / "nginx.pid"};
error_log {error_log} info;
events {{ worker_connections 256; }}
http {{
    sendfile on;
    tcp_nopush on;
    types_hash_max_size 2048;
    include {MIME_TYPES};
    default_type application/octet-stream;
    access_log {access_log};
    gzip on;
    client_body_temp_path {temp["client_body"]};
    proxy_temp_path {temp["proxy"]};
    fastcgi_temp_path {temp["fastcgi"]};
    uwsgi_temp_path {temp["uwsgi"]};
    scgi_temp_path {temp["scgi"]};
    include {site_conf};
}}
"""


@contextmanager
def nginx_for(project, upstream_url):
    """Run nginx with the project's deploy/nginx.conf in front of upstream_url (see module doc)."""
    binary = nginx_binary()
    upstream = urlsplit(upstream_url).netloc
    assert upstream, f"upstream_url must look like http://127.0.0.1:PORT, not {upstream_url!r}"
    with TemporaryDirectory(prefix="nginx-") as tmp:
        prefix = Path(tmp)
        http_port, https_port, purge_port = free_port(), free_port(), free_port()
        while len({http_port, https_port, purge_port}) < 3:
            https_port, purge_port = free_port(), free_port()
        domain = project.answers.get("domain_name", "example.com")
        cert, key = self_signed_cert(prefix, domain)
        site_conf = prefix / "site.conf"
        cache_dir = prefix / "edge-cache"
        site_conf.write_text(
            render(project, upstream, http_port, https_port, cert, key, purge_port, cache_dir)
        )
        access_log, error_log = prefix / "access.log", prefix / "error.log"
        conf = prefix / "nginx.conf"
        conf.write_text(main_config(prefix, site_conf, access_log, error_log))
        base = [binary, "-p", f"{prefix}/", "-e", str(error_log), "-c", str(conf)]
        check([*base, "-t", "-q"])  # a config error fails here with nginx's message
        with background([*base, "-g", "daemon off;"], log=prefix / "stdout.log") as process:
            http_url = f"http://127.0.0.1:{http_port}"
            try:
                # /healthz/ is proxied even over plain HTTP (a 502 is an answer too); "/" redirects.
                wait_for_http(http_url + "/healthz/", timeout=20, process=process)
            except (RuntimeError, TimeoutError) as error:
                pytest.fail(f"nginx did not start: {error}\n{error_log.read_text()[-4000:]}")
            yield SimpleNamespace(
                http_url=http_url,
                https_url=f"https://127.0.0.1:{https_port}",
                http_port=http_port,
                https_port=https_port,
                purge_url=f"http://127.0.0.1:{purge_port}",
                cache_dir=cache_dir,
                cert=str(cert),
                access_log=access_log,
                error_log=error_log,
                conf=site_conf,
                process=process,
            )
