"""The suite's own rule: no connection leaves the machine."""

from __future__ import annotations

import http.server
import socket
import threading
import urllib.request

import pytest

from conftest import is_loopback


@pytest.mark.parametrize(
    ("address", "allowed"),
    [(("127.0.0.1", 80), True), (("127.8.9.10", 80), True), (("::1", 80, 0, 0), True), (("localhost", 80), True),
     (("192.0.2.1", 80), False), (("10.0.0.1", 443), False), (("huggingface.co", 443), False), ("/tmp/socket", True)],
)
def test_only_loopback_counts_as_local(address, allowed):
    assert is_loopback(address) is allowed


def test_every_socket_goes_through_the_guard():
    """The guard refuses before any packet is sent; urllib, http.client and requests all end in connect()."""
    probe = socket.socket()
    try:
        with pytest.raises(OSError, match="tests may only connect to 127.0.0.1"):
            probe.connect(("huggingface.co", 443))
    finally:
        probe.close()


def test_loopback_still_works():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{server.server_address[1]}/", timeout=10) as response:
            assert response.status == 200
    finally:
        server.shutdown()
