"""The synthetic laparoscopic sample case that every test, benchmark and demo uses.

Example::

    case = write_sample_case("sample_case", duration=14, seed=0, size=(160, 96))
    case.video, case.dicom_video, case.dicom_multiframe, case.frames, case.phase_annotation

It is deterministic for a seed: the same seed gives the same frames, annotations and DICOM UIDs.
"""

from surgvlp.sample_data.dicom import CaseIdentity, VIDEO_ENDOSCOPIC_IOD_ATTRIBUTES, wrap_video
from surgvlp.sample_data.scenario import INSTRUMENTS, PHASES, Scenario, plan_scenario
from surgvlp.sample_data.writer import (
    CASE_FILES,
    DEFAULT_DURATION,
    DEFAULT_FPS,
    DEFAULT_SIZE,
    SampleCase,
    write_sample_case,
)

__all__ = [
    "CASE_FILES",
    "DEFAULT_DURATION",
    "DEFAULT_FPS",
    "DEFAULT_SIZE",
    "INSTRUMENTS",
    "PHASES",
    "VIDEO_ENDOSCOPIC_IOD_ATTRIBUTES",
    "CaseIdentity",
    "SampleCase",
    "Scenario",
    "plan_scenario",
    "wrap_video",
    "write_sample_case",
]
