"""Suite-wide fixtures: no network but loopback, and a tiny random-weight model in the official layout."""

from __future__ import annotations

import ipaddress
import socket
from pathlib import Path

import pytest

from surgvlp.untrained import ModelFiles, write_untrained_model

_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex


def _is_loopback(address: object) -> bool:
    if not isinstance(address, tuple):  # AF_UNIX paths and the like stay on this machine
        return True
    host = address[0]
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _guarded(real):
    def connect(self: socket.socket, address: object):
        if not _is_loopback(address):
            raise OSError(f"tests may only connect to 127.0.0.1, not {address!r}")
        return real(self, address)

    return connect


def pytest_configure(config: pytest.Config) -> None:
    """Fail any test that opens a connection to anything but loopback, whatever library it goes through."""
    socket.socket.connect = _guarded(_real_connect)
    socket.socket.connect_ex = _guarded(_real_connect_ex)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> ModelFiles:
    """A random-weight model with the official checkpoint keys and a small BERT (4 layers, tiny vocabulary)."""
    return write_untrained_model(tmp_path_factory.mktemp("tiny_model"), size="tiny", seed=0)
