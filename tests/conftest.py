"""Suite-wide fixtures: no network but loopback, and a tiny random-weight model in the official layout."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterator

import pytest

from surgvlp.folders import BUNDLE_DIR_ENV
from surgvlp.recognition.cache import CACHE_DIR_ENV
from surgvlp.network.untrained import ModelFiles, write_untrained_model
from surgvlp.untrained_policy import ALLOW_UNTRAINED_ENV
from surgvlp.weights import WEIGHTS_DIR_ENV, WeightStore

pytest_plugins = ["orthanc"]  # the `orthanc` and `orthanc_case` fixtures: a real Orthanc for DICOMweb tests

_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex


def is_loopback(address: object) -> bool:
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
        if not is_loopback(address):
            raise OSError(f"tests may only connect to 127.0.0.1, not {address!r}")
        return real(self, address)

    return connect


def pytest_configure(config: pytest.Config) -> None:
    """Fail any test that opens a connection to anything but loopback, whatever library it goes through."""
    socket.socket.connect = _guarded(_real_connect)
    socket.socket.connect_ex = _guarded(_real_connect_ex)


@pytest.fixture(scope="session", autouse=True)
def isolated_folders(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Weights, the user data folder and the embedding cache in throw-away folders: tests never touch the bundle
    or the home folder."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(WEIGHTS_DIR_ENV, str(tmp_path_factory.mktemp("weights")))
        patch.setenv("XDG_DATA_HOME", str(tmp_path_factory.mktemp("user_data")))
        patch.delenv(BUNDLE_DIR_ENV, raising=False)
        patch.setenv(CACHE_DIR_ENV, str(tmp_path_factory.mktemp("cache")))
        patch.delenv(ALLOW_UNTRAINED_ENV, raising=False)
        yield


@pytest.fixture
def one_torch_thread() -> Iterator[None]:
    """Run a model on one CPU thread, as the shared test machines need, and restore the setting after."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory, isolated_folders: None) -> ModelFiles:
    """A random-weight model with the official checkpoint keys and a small BERT (4 layers, tiny vocabulary),
    recorded as untrained in the test weights folder, as ``surgvlp weights init-untrained`` does."""
    files = write_untrained_model(tmp_path_factory.mktemp("tiny_model"), size="tiny", seed=0)
    store = WeightStore()
    store.record_own_text_model(store.record("untrained-tiny", files.checkpoint, source="generated", untrained=True))
    return files


@pytest.fixture(scope="session")
def sample_case(tmp_path_factory: pytest.TempPathFactory):
    """A short synthetic laparoscopy in every container (mp4, DICOM video, multi-frame DICOM, frame folder)."""
    from surgvlp.sample_data import write_sample_case

    return write_sample_case(tmp_path_factory.mktemp("sample_case"), duration=21, seed=0, size=(160, 96))
