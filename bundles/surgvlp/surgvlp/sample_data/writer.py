"""Writing the synthetic sample case in every container the frame sources read, plus its ground truth.

Everything is first written into a staging folder inside the target folder and moved into place only
when complete, so an interrupted run never leaves half a case behind. Frames are rendered once, in
order, and each goes straight to the H.264 encoder and, on whole seconds, to the 1 fps outputs.

Files (``DIR/``):

- ``case.mp4``: H.264 High Profile, level 4.1, yuv420p, one keyframe per second, moov atom first.
- ``case_video.dcm``: the same mp4 bytes as a Video Endoscopic Image (transfer syntax
  1.2.840.10008.1.2.4.102, MPEG-4 AVC/H.264 High Profile / Level 4.1), one fragment.
- ``case_multiframe.dcm``: the rendered frames at 1 fps, uncompressed RGB, as a Multi-frame True Color
  Secondary Capture image with Frame Time 1000 ms (1 fps keeps it small; it is lossless, unlike the mp4).
- ``frames/case_<n>.png``: the same 1 fps frames, ``n`` = second; ``frames/fps.txt`` says ``1``.
- ``masks/case_<n>.png``: instrument label masks for those frames (0 background, ids in ``masks/instruments.json``).
- ``case-phase.txt``: Cholec80 phase annotation, ``Frame<TAB>Phase`` for every frame of the video.
- ``case-tool.txt``: Cholec80 tool annotation (``Frame`` then one 0/1 column per tool) for every second.
- ``case.json``: seed, duration, fps, size, phase segments and events in seconds, instrument ids, files.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
from PIL import Image
from tqdm import tqdm

from surgvlp.errors import SurgVLPError
from surgvlp.sample_data.dicom import CaseIdentity, multiframe_dataset, wrap_video, write_dicom
from surgvlp.sample_data.render import CaseRenderer
from surgvlp.sample_data.scenario import INSTRUMENTS, MIN_DURATION, PHASES, Scenario, plan_scenario
from surgvlp.sources.frame_folder import FPS_SIDECAR

DEFAULT_DURATION = 70
DEFAULT_FPS = 25
DEFAULT_SIZE = (640, 360)
SAMPLED_FPS = 1

_X264_OPTIONS = {"preset": "veryfast", "crf": "20", "profile": "high", "level": "4.1", "threads": "1"}
"""High Profile / level 4.1 as transfer syntax .102 requires; one encoder thread keeps the bytes reproducible (x264 frame threads differed between runs on CI)."""


CASE_FILES = {
    "video": "case.mp4",
    "dicom_video": "case_video.dcm",
    "dicom_multiframe": "case_multiframe.dcm",
    "frames": "frames",
    "masks": "masks",
    "phase_annotation": "case-phase.txt",
    "tool_annotation": "case-tool.txt",
    "description": "case.json",
}


@dataclass(frozen=True)
class SampleCase:
    """Paths of a written sample case (named as in :data:`CASE_FILES`) and the scenario it shows."""

    directory: Path
    scenario: Scenario
    video: Path
    dicom_video: Path
    dicom_multiframe: Path
    frames: Path
    masks: Path
    phase_annotation: Path
    tool_annotation: Path
    description: Path


def write_sample_case(
    directory: str | Path,
    duration: int = DEFAULT_DURATION,
    seed: int = 0,
    size: tuple[int, int] = DEFAULT_SIZE,
    fps: int = DEFAULT_FPS,
    progress: bool = True,
) -> SampleCase:
    """Render the case for ``seed`` (``duration`` whole seconds, ``size`` = (width, height)) into ``directory``."""
    width, height = size
    if int(duration) != duration or duration < MIN_DURATION:
        raise SurgVLPError(
            f"sample case duration {duration}: must be whole seconds, at least {MIN_DURATION} (one per phase)"
        )
    if int(fps) != fps or fps < SAMPLED_FPS:
        raise SurgVLPError(
            f"sample case fps {fps}: must be a whole number of frames per second, at least {SAMPLED_FPS}"
        )
    if width < 32 or height < 32 or width % 2 or height % 2:
        raise SurgVLPError(
            f"sample case size {width}x{height}: width and height must be even and at least 32 (H.264 4:2:0)"
        )
    directory = Path(directory)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".sample-data-", dir=directory))
    except OSError as error:
        raise SurgVLPError(f"{directory}: cannot write there: {error.strerror or error}") from error
    scenario = plan_scenario(seed, int(duration), int(fps), width, height)
    try:
        _write_case(staging, scenario, progress)
        for name in CASE_FILES.values():
            target = directory / name
            if target.is_dir():
                shutil.rmtree(target)
            os.replace(staging / name, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return SampleCase(directory, scenario, **{role: directory / name for role, name in CASE_FILES.items()})


def _write_case(folder: Path, scenario: Scenario, progress: bool) -> None:
    files = {role: folder / name for role, name in CASE_FILES.items()}
    identity = CaseIdentity(scenario.seed)
    files["frames"].mkdir()
    files["masks"].mkdir()
    (files["frames"] / FPS_SIDECAR).write_text(f"{SAMPLED_FPS}\n")
    seconds = scenario.duration
    dataset = multiframe_dataset(identity, scenario.width, scenario.height, seconds, SAMPLED_FPS)
    tools = np.zeros((seconds, len(INSTRUMENTS)), dtype=np.uint8)
    frames = _render_and_encode(files, scenario, tools, progress)
    write_dicom(dataset, files["dicom_multiframe"], frames, length=seconds * scenario.width * scenario.height * 3)
    wrap_video(files["video"], files["dicom_video"], identity)
    _write_annotations(files, scenario, tools)


def _render_and_encode(
    files: dict[str, Path], scenario: Scenario, tools: np.ndarray, progress: bool
) -> Iterator[bytes]:
    """Render every frame into the mp4; yield the whole-second frames (for the multi-frame DICOM) as RGB bytes.

    Whole-second frames also go to the frame and mask folders, and the instruments seen in them into ``tools``.
    """
    renderer = CaseRenderer(scenario)
    step = scenario.fps // SAMPLED_FPS
    with av.open(str(files["video"]), "w", options={"movflags": "+faststart"}) as container:
        stream = container.add_stream("libx264", rate=scenario.fps, options=_X264_OPTIONS)
        stream.width, stream.height, stream.pix_fmt = scenario.width, scenario.height, "yuv420p"
        stream.codec_context.gop_size = scenario.fps
        bar = tqdm(range(scenario.frame_count), desc="sample case", unit="frame", disable=None if progress else True)  # on a terminal only
        for number in bar:
            image, mask = renderer.render(number)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
            if number % step == 0:
                second = number // step
                Image.fromarray(image).save(files["frames"] / f"case_{second}.png")
                Image.fromarray(mask).save(files["masks"] / f"case_{second}.png")
                tools[second] = [np.any(mask == label) for label in range(1, len(INSTRUMENTS) + 1)]
                yield image.tobytes()
        container.mux(stream.encode(None))


def _write_annotations(files: dict[str, Path], scenario: Scenario, tools: np.ndarray) -> None:
    fps = scenario.fps
    phase_lines = ["Frame\tPhase"]
    for name, start, end in scenario.phase_bounds:
        phase_lines += [f"{frame}\t{name}" for frame in range(start * fps, end * fps)]
    files["phase_annotation"].write_text("\n".join(phase_lines) + "\n")
    tool_lines = ["\t".join(("Frame", *INSTRUMENTS))]
    tool_lines += ["\t".join(map(str, (second * fps, *row))) for second, row in enumerate(tools)]
    files["tool_annotation"].write_text("\n".join(tool_lines) + "\n")
    labels = {"0": "Background", **{str(number): name for number, name in enumerate(INSTRUMENTS, start=1)}}
    (files["masks"] / "instruments.json").write_text(json.dumps(labels, indent=2) + "\n")
    description = {
        "generator": "surgvlp sample-data",
        "seed": scenario.seed,
        "duration": scenario.duration,
        "fps": fps,
        "width": scenario.width,
        "height": scenario.height,
        "sampled_fps": SAMPLED_FPS,
        "phases": [{"name": name, "start": start, "end": end} for name, start, end in scenario.phase_bounds],
        "phase_names": list(PHASES),
        "instruments": labels,
        "events": [
            {"kind": event.kind, "start": round(event.start, 3), "end": round(event.end, 3)}
            for event in scenario.events
        ],
        "files": {role: name for role, name in CASE_FILES.items() if role != "description"},
    }
    files["description"].write_text(json.dumps(description, indent=2) + "\n")
