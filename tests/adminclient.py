"""A logged-in Wagtail admin session against a baked project under gunicorn, for tests.

    from adminclient import AdminClient, create_superuser

    create_superuser(project)            # or CREATE_SUPERUSER + more code in one project.shell()
    admin = AdminClient(server.base_url).login()
    admin.post("/admin/images/add/", data={...}, files={...})

Tests talk to gunicorn over plain HTTP the way nginx does: every request carries
`X-Forwarded-Proto: https` and `Host: example.com` (conftest.HTTPS), so Django treats it as HTTPS
and sets Secure cookies. The cookie jar is told to send those back over the plain-HTTP hop, and
unsafe requests carry the CSRF token and an `Origin` the project trusts, as a browser's would.
"""

import struct
import zlib

import requests
from conftest import HTTPS

USERNAME = "admin"
PASSWORD = "admin-pw-for-tests"  # noqa: S105
ORIGIN = "https://" + HTTPS["Host"]


# For project.shell(): creates the superuser, so a fixture's other setup can share one start-up.
CREATE_SUPERUSER = (
    "from django.contrib.auth import get_user_model\n"
    f"get_user_model().objects.create_superuser({USERNAME!r}, 'admin@example.com', {PASSWORD!r})\n"
)


def create_superuser(project, env=None):
    project.shell(CREATE_SUPERUSER, env=env)


class AdminClient:
    def __init__(self, base_url):
        self.base_url = base_url
        self.session = requests.Session()
        self.session.headers.update(HTTPS)

    def _keep_secure_cookies(self, response):
        # The client's side of the proxy is HTTPS: send Secure cookies over the plain-HTTP hop.
        for cookie in self.session.cookies:
            cookie.secure = False
        return response

    def get(self, path, **kwargs):
        kwargs.setdefault("timeout", 30)
        return self._keep_secure_cookies(self.session.get(self.base_url + path, **kwargs))

    def post(self, path, data=None, **kwargs):
        kwargs.setdefault("timeout", 60)
        kwargs.setdefault("allow_redirects", False)
        data = dict(data or {}) | {"csrfmiddlewaretoken": self.session.cookies["csrftoken"]}
        headers = {"Origin": ORIGIN} | kwargs.pop("headers", {})
        return self._keep_secure_cookies(
            self.session.post(self.base_url + path, data=data, headers=headers, **kwargs)
        )

    def login(self):
        assert self.get("/admin/login/").status_code == 200
        response = self.post("/admin/login/", {"username": USERNAME, "password": PASSWORD})
        assert response.status_code == 302, response.text[:2000]
        assert "sessionid" in self.session.cookies
        return self


def png(width=8, height=8):
    """A small, valid PNG image (solid red), for uploads."""
    rows = b"".join(b"\x00" + b"\xff\x00\x00" * width for _ in range(height))

    def chunk(kind, data):
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )
