"""Redis faults for tests: a private redis-server, and a TCP proxy in front of it that can stall
(a network partition) or refuse connections (a server that is down), all on loopback.

    with redis_server(port) as redis, PartitionProxy(port) as proxy:
        ...  # point REDIS_URL at proxy.port
        proxy.stall()    # connections are accepted, nothing is forwarded either way
        proxy.resume()   # connections that carried traffic during the stall are reset
        proxy.refuse()   # the port is closed: connects are refused, open connections reset
        proxy.resume()   # listening again on the same port
"""

import shutil
import socket
import struct
import threading
import time
from contextlib import contextmanager, suppress

import pytest
import redis as redis_lib
from conftest import background


@contextmanager
def redis_server(port, *args):
    """A private redis-server on `port` (no persistence unless `args` ask for it); `.client` is
    a redis-py client for it."""
    cmd = [shutil.which("redis-server") or pytest.fail("redis-server is needed"),
           "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
           *args]  # fmt: skip
    with background(cmd) as process:
        client = redis_lib.Redis(host="127.0.0.1", port=port)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis_lib.ConnectionError:
                if time.monotonic() > deadline or process.poll() is not None:
                    pytest.fail(f"redis-server on {port} did not start")
                time.sleep(0.05)
        process.client = client
        yield process


def _reset(sock):
    """Close with a TCP reset, as a peer that lost the connection's state does."""
    with suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with suppress(OSError):
        sock.close()


class _Link:
    """One client connection and its upstream connection, pumped by two threads."""

    def __init__(self, proxy, client, upstream):
        self.proxy, self.client, self.upstream = proxy, client, upstream
        self.saw_stall = False  # carried traffic while stalled: dropped on resume
        self.closed = threading.Event()
        for source, target in ((client, upstream), (upstream, client)):
            threading.Thread(target=self.pump, args=(source, target), daemon=True).start()

    def pump(self, source, target):
        source.settimeout(0.2)
        while not self.closed.is_set():
            try:
                data = source.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                break
            if not data:
                break
            if self.proxy.stalled:
                self.saw_stall = True  # a partition: the bytes never arrive
                continue
            try:
                target.sendall(data)
            except OSError:
                break
        self.close()

    def close(self):
        if not self.closed.is_set():
            self.closed.set()
            _reset(self.client)
            _reset(self.upstream)


class PartitionProxy:
    """Forwards 127.0.0.1:`port` (a free port of its own) to 127.0.0.1:`upstream_port`."""

    def __init__(self, upstream_port):
        self.upstream_port = upstream_port
        self.stalled = False
        self.links = []
        self.lock = threading.Lock()
        self.listener = None
        self.port = None
        self.stop = threading.Event()

    def __enter__(self):
        self.listen()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.close_listener()
        self.drop(lambda link: True)

    def listen(self):
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port or 0))
        listener.listen(64)
        listener.settimeout(0.2)
        self.port = listener.getsockname()[1]
        self.listener = listener
        threading.Thread(target=self.accept, args=(listener,), daemon=True).start()

    def accept(self, listener):
        while not self.stop.is_set() and self.listener is listener:
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                break
            try:
                upstream = socket.create_connection(("127.0.0.1", self.upstream_port), timeout=2)
            except OSError:
                _reset(client)  # Redis itself is down: the client sees the connection drop
                continue
            with self.lock:
                self.links = [link for link in self.links if not link.closed.is_set()]
                self.links.append(_Link(self, client, upstream))

    def close_listener(self):
        listener, self.listener = self.listener, None
        if listener is not None:
            listener.close()

    def drop(self, which):
        with self.lock:
            links = [link for link in self.links if which(link)]
        for link in links:
            link.close()

    def stall(self):
        """Accept connections, answer nothing (a partition, or a Redis stuck on a slow call)."""
        self.stalled = True

    def refuse(self):
        """Close the port and reset every open connection (a Redis that is down)."""
        self.close_listener()
        self.drop(lambda link: True)

    def resume(self):
        if self.listener is None:
            self.listen()
        # Connections that sent or received during the stall have lost bytes: a real network
        # would reset them once the partition heals. The others carry on.
        self.drop(lambda link: link.saw_stall)
        self.stalled = False
