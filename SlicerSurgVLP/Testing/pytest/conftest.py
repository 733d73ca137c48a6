"""Fixtures of the Slicer-side tests: the module folder importable, no network but loopback, MRML scenes.

These tests run in an environment like Slicer 5.12's Python (numpy 2, pydicom 3, ``slicer-core``; see
``requirements.txt``), not in the server's: ``SlicerSurgVLP/Testing/pytest`` is collected on its own.
"""

from __future__ import annotations

import ipaddress
import json
import sys
from pathlib import Path

import pytest

MODULE_DIR = Path(__file__).resolve().parents[2]  # SlicerSurgVLP/
REPO_DIR = MODULE_DIR.parent
DATA_DIR = Path(__file__).resolve().parent / "data"
sys.path.insert(0, str(MODULE_DIR))


def _refuse_remote_connections(event: str, args: tuple) -> None:
    """An audit hook: every socket connect in the test process (any library, any thread) must stay on loopback."""
    if event != "socket.connect":
        return
    address = args[1]
    if not isinstance(address, tuple):
        return  # AF_UNIX paths stay on this machine
    host = address[0]
    try:
        local = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        local = False
    if not local:
        raise OSError(f"tests may only connect to 127.0.0.1, not {address!r}")


def pytest_configure(config: pytest.Config) -> None:
    sys.addaudithook(_refuse_remote_connections)


@pytest.fixture
def phase_document() -> dict:
    """A phase timeline written by ``surgvlp phases`` (untrained-tiny, argmax) on the 8 s sample case."""
    return json.loads((DATA_DIR / "phase-timeline.json").read_text(encoding="utf-8"))


@pytest.fixture
def tool_document() -> dict:
    """The tool presence timeline ``surgvlp tools`` wrote for the same case."""
    return json.loads((DATA_DIR / "tool-timeline.json").read_text(encoding="utf-8"))


@pytest.fixture
def mrml_scene():
    """A scene with the Sequences, Segmentations, Tables, Plots and Volumes logics registered, as Slicer sets
    up ``slicer.mrmlScene`` at start-up; also returns the sequences logic (it creates proxy nodes)."""
    import slicer
    scene = slicer.vtkMRMLScene()
    logics = [cls() for cls in (slicer.vtkSlicerSequencesLogic, slicer.vtkSlicerSegmentationsModuleLogic,
                                slicer.vtkSlicerTablesLogic, slicer.vtkSlicerPlotsLogic, slicer.vtkSlicerVolumesLogic)]
    for logic in logics:
        logic.SetMRMLScene(scene)
    yield scene, logics[0]
    for logic in logics:
        logic.SetMRMLScene(None)
    scene.Clear(1)
