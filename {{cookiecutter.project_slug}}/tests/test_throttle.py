"""Who is the client: X-Forwarded-For counts only from a trusted proxy (throttle.client_ip)."""

import pytest
from django.test import RequestFactory, override_settings

from {{ cookiecutter.project_slug }}.throttle import client_ip

TRUSTED = ["127.0.0.1", "::1", "10.0.0.0/8"]


@override_settings(FORWARDED_ALLOW_IPS=TRUSTED)
@pytest.mark.parametrize(
    ("peer", "forwarded", "client"),
    [
        ("198.51.100.7", "", "198.51.100.7"),  # no proxy
        ("198.51.100.7", "203.0.113.9", "198.51.100.7"),  # not a trusted proxy: ignored
        ("127.0.0.1", "203.0.113.9", "203.0.113.9"),  # nginx on the same host
        ("127.0.0.1", "1.2.3.4, 203.0.113.9", "203.0.113.9"),  # 1.2.3.4 was written by the client
        ("127.0.0.1", "203.0.113.9, 10.1.2.3", "203.0.113.9"),  # load balancer -> nginx -> app
        ("127.0.0.1", "", "127.0.0.1"),
    ],
)
def test_client_ip(peer, forwarded, client):
    request = RequestFactory().get("/", REMOTE_ADDR=peer, HTTP_X_FORWARDED_FOR=forwarded)
    assert client_ip(request) == client


@override_settings(FORWARDED_ALLOW_IPS=["*"])
def test_client_ip_with_every_peer_trusted_takes_the_proxys_entry():
    forwarded = "1.1.1.1, 2.2.2.2"
    request = RequestFactory().get("/", REMOTE_ADDR="10.0.0.5", HTTP_X_FORWARDED_FOR=forwarded)
    assert client_ip(request) == "2.2.2.2"
