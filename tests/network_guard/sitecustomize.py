"""Loaded by every Python process the tests start (through PYTHONPATH): no connection but to loopback.

A server or command that tries to reach the network at start-up (a download of weights, of dcmqi, of a schema)
fails, and the attempt is written to $SURGVLP_NETWORK_LOG so that the test that started it can fail too.
"""

import ipaddress
import os
import socket

_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex


def _allowed(address):
    if not isinstance(address, tuple) or address[0] == "localhost":
        return True
    try:
        return ipaddress.ip_address(address[0]).is_loopback
    except ValueError:
        return False


def _guarded(real):
    def connect(self, address):
        if not _allowed(address):
            log = os.environ.get("SURGVLP_NETWORK_LOG")
            if log:
                with open(log, "a", encoding="utf-8") as stream:
                    stream.write(f"{os.getpid()} tried to connect to {address!r}\n")
            raise OSError(f"network use is not allowed in tests: {address!r}")
        return real(self, address)

    return connect


socket.socket.connect = _guarded(_real_connect)
socket.socket.connect_ex = _guarded(_real_connect_ex)
