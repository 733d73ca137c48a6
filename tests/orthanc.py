"""A real Orthanc on 127.0.0.1 for the test session, holding the sample case's DICOM video and multi-frame image.

Orthanc comes from the Debian packages ``orthanc`` and ``orthanc-dicomweb`` (what ``.ci/run`` installs). It runs
from the documented ``monai_app/orthanc.json`` with only its port, DICOMweb ``Host`` and storage folders changed,
so the tests exercise the safe settings users start it with. Instances go in through Orthanc's own REST
``/instances``, independently of the DICOMweb code under test.
"""

from __future__ import annotations

import http.client
import json
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

from surgvlp.sources.dicom_uids import MULTIFRAME_TRUE_COLOR_SC_IMAGE_STORAGE

ORTHANC = Path("/usr/sbin/Orthanc")
DICOMWEB_PLUGIN = Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so")
CONFIG_TEMPLATE = Path(__file__).resolve().parents[1] / "monai_app" / "orthanc.json"
INSTALL = "install the Debian packages: apt-get install orthanc orthanc-dicomweb (.ci/run does this)"
START_SECONDS = 10.0
"""Orthanc answers within about a second; the deadline only bounds a hung start on a loaded machine."""


@dataclass(frozen=True)
class Orthanc:
    """A running Orthanc: its REST API at ``url``, its DICOMweb root at ``dicomweb``."""

    port: int
    folder: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def dicomweb(self) -> str:
        return f"{self.url}/dicom-web"

    def request(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None) -> tuple[int, bytes]:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            connection.request(method, path, body=body, headers=headers or {})
            response = connection.getresponse()
            return response.status, response.read()
        finally:
            connection.close()

    def upload(self, path: Path) -> str:
        """Store a DICOM file through Orthanc's REST API; Orthanc's id of the new instance."""
        status, body = self.request("POST", "/instances", path.read_bytes(), {"Content-Type": "application/dicom"})
        assert status == 200, f"Orthanc refused {path}: HTTP {status} {body[:200]!r}"
        return json.loads(body)["ID"]


@dataclass(frozen=True)
class OrthancCase:
    """The sample case's DICOM files as stored in Orthanc, and the non-video instances stored beside them."""

    dicom_video: Path
    dicom_multiframe: Path
    still_image: Path
    one_frame_multiframe: Path


@pytest.fixture(scope="session")
def orthanc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Orthanc]:
    """Orthanc with DICOMweb on a free port of 127.0.0.1 (remote access refused, DICOM port closed)."""
    missing = [path for path in (ORTHANC, DICOMWEB_PLUGIN) if not path.exists()]
    if missing:
        pytest.fail(f"{missing[0]} is missing: {INSTALL}", pytrace=False)
    folder = tmp_path_factory.mktemp("orthanc")
    server = Orthanc(free_port(), folder)
    config = json.loads(CONFIG_TEMPLATE.read_text())
    config.update(HttpPort=server.port, StorageDirectory=str(folder / "storage"), IndexDirectory=str(folder / "index"))
    config["DicomWeb"]["Host"] = f"127.0.0.1:{server.port}"
    (folder / "orthanc.json").write_text(json.dumps(config, indent=2))
    with open(folder / "orthanc.log", "wb") as log:
        process = subprocess.Popen([str(ORTHANC), str(folder / "orthanc.json")], stdout=log, stderr=subprocess.STDOUT)
    try:
        _wait_until_answering(server, process)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="session")
def orthanc_case(orthanc: Orthanc, sample_case, tmp_path_factory: pytest.TempPathFactory) -> OrthancCase:
    """The sample case's DICOM video and multi-frame image in Orthanc, next to a still image and a one-frame
    multi-frame image (neither is a video, so neither may be listed)."""
    folder = tmp_path_factory.mktemp("orthanc_upload")
    case = OrthancCase(
        sample_case.dicom_video,
        sample_case.dicom_multiframe,
        _write_image(folder / "still.dcm", SecondaryCaptureImageStorage, frames=None),
        _write_image(folder / "one_frame.dcm", MULTIFRAME_TRUE_COLOR_SC_IMAGE_STORAGE, frames=1),
    )
    for path in (case.dicom_video, case.dicom_multiframe, case.still_image, case.one_frame_multiframe):
        orthanc.upload(path)
    return case


def sop_instance_uid(path: Path) -> str:
    """The id a DICOMweb datastore gives the instance stored from ``path``, read by pydicom."""
    return str(pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID)


def free_port() -> int:
    """A port free on every interface (Orthanc listens on all of them and refuses non-local clients)."""
    with socket.socket() as probe:
        probe.bind(("", 0))
        return probe.getsockname()[1]


def _wait_until_answering(server: Orthanc, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            break
        try:
            if server.request("GET", "/system")[0] == 200:
                return
        except (OSError, http.client.HTTPException):
            pass
        time.sleep(0.02)
    log = (server.folder / "orthanc.log").read_text(errors="replace").strip().splitlines()[-5:]
    state = f"exited with status {process.returncode}" if process.poll() is not None else "did not answer"
    pytest.fail(f"Orthanc {state} within {START_SECONDS} s on port {server.port}; its log ends:\n" + "\n".join(log))


def _write_image(path: Path, sop_class: str, frames: int | None) -> Path:
    """A small 8-bit RGB image in its own study: a single-frame ``sop_class`` instance, or ``frames`` frames."""
    dataset = Dataset()
    dataset.SOPClassUID = sop_class
    dataset.SOPInstanceUID = generate_uid()
    dataset.StudyInstanceUID = generate_uid()
    dataset.SeriesInstanceUID = generate_uid()
    dataset.PatientID = "NOT-A-VIDEO"
    dataset.Modality = "OT"
    dataset.SamplesPerPixel, dataset.PhotometricInterpretation, dataset.PlanarConfiguration = 3, "RGB", 0
    dataset.Rows = dataset.Columns = 8
    dataset.BitsAllocated = dataset.BitsStored = 8
    dataset.HighBit, dataset.PixelRepresentation = 7, 0
    if frames is not None:
        dataset.NumberOfFrames = frames
    dataset.PixelData = np.zeros((frames or 1, 8, 8, 3), dtype=np.uint8).tobytes()
    dataset.file_meta = FileMetaDataset()
    dataset.file_meta.MediaStorageSOPClassUID = sop_class
    dataset.file_meta.MediaStorageSOPInstanceUID = dataset.SOPInstanceUID
    dataset.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    dataset.is_little_endian, dataset.is_implicit_VR = True, False
    pydicom.dcmwrite(path, dataset, write_like_original=False)
    return path
