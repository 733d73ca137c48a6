"""The synthetic sample case: files, determinism, ground truth, DICOM conformance and phase separability."""

from __future__ import annotations

import argparse
import json

import av
import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
import torch
import torchvision
from PIL import Image
from pydicom.encaps import decode_data_sequence

from surgvlp.cli import sample_data as sample_data_cli
from surgvlp.errors import SurgVLPError
from surgvlp.sample_data import (
    CASE_FILES,
    INSTRUMENTS,
    PHASES,
    VIDEO_ENDOSCOPIC_IOD_ATTRIBUTES,
    write_sample_case,
)
from surgvlp.sample_data.dicom import CaseIdentity, multiframe_dataset, write_dicom
from surgvlp.sample_data.scenario import PHASE_LOOKS
from surgvlp.sources import open_source

DURATION, SIZE, FPS = 14, (160, 96), 25


@pytest.fixture(scope="session")
def case(tmp_path_factory):
    return write_sample_case(tmp_path_factory.mktemp("case"), duration=DURATION, seed=5, size=SIZE, progress=False)


def test_every_file_is_written(case):
    for name in CASE_FILES.values():
        assert (case.directory / name).exists(), name
    assert sorted(path.name for path in case.frames.glob("*.png")) == sorted(f"case_{n}.png" for n in range(DURATION))
    assert (case.frames / "fps.txt").read_text().strip() == "1"
    assert len(list(case.masks.glob("case_*.png"))) == DURATION
    assert not list(case.directory.glob(".sample-data-*")), "staging folder left behind"
    description = json.loads(case.description.read_text())
    assert (description["seed"], description["duration"], description["fps"]) == (5, DURATION, FPS)
    assert (description["width"], description["height"]) == SIZE
    assert [phase["name"] for phase in description["phases"]] == list(PHASES)


def test_same_seed_same_bytes_other_seed_other_case(tmp_path):
    first, second, other = (
        write_sample_case(tmp_path / name, duration=7, seed=seed, size=(64, 48), progress=False)
        for name, seed in (("first", 1), ("second", 1), ("other", 2))
    )
    for name in (
        "case.mp4",
        "case_video.dcm",
        "case_multiframe.dcm",
        "case-phase.txt",
        "case-tool.txt",
        "frames/case_3.png",
        "masks/case_3.png",
        "case.json",
    ):
        assert (first.directory / name).read_bytes() == (second.directory / name).read_bytes(), name
    assert (first.video.read_bytes()) != other.video.read_bytes()
    assert pydicom.dcmread(first.dicom_video).StudyInstanceUID != pydicom.dcmread(other.dicom_video).StudyInstanceUID


def test_rewriting_a_case_replaces_it(tmp_path):
    write_sample_case(tmp_path, duration=8, seed=0, size=(64, 48), progress=False)
    case = write_sample_case(tmp_path, duration=7, seed=0, size=(64, 48), progress=False)
    assert len(list(case.frames.glob("*.png"))) == 7
    assert open_source(case.video).duration == 7.0


def test_dicom_files_appear_only_when_complete(tmp_path):
    dataset = multiframe_dataset(CaseIdentity(seed=0), 8, 8, 2, fps=1)

    def interrupted():
        yield bytes(8 * 8 * 3)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_dicom(dataset, tmp_path / "frames.dcm", interrupted(), length=2 * 8 * 8 * 3)
    assert list(tmp_path.iterdir()) == []
    write_dicom(dataset, tmp_path / "frames.dcm", [bytes(2 * 8 * 8 * 3)], length=2 * 8 * 8 * 3)
    assert [path.name for path in tmp_path.iterdir()] == ["frames.dcm"]
    assert pydicom.dcmread(tmp_path / "frames.dcm").pixel_array.shape == (2, 8, 8, 3)


def test_phase_annotation_covers_every_frame_in_cholec80_order(case):
    lines = case.phase_annotation.read_text().splitlines()
    assert lines[0] == "Frame\tPhase"
    rows = [line.split("\t") for line in lines[1:]]
    assert [int(frame) for frame, _ in rows] == list(range(DURATION * FPS))
    names = [name for _, name in rows]
    assert list(dict.fromkeys(names)) == list(PHASES)
    for phase in json.loads(case.description.read_text())["phases"]:
        assert set(names[phase["start"] * FPS : phase["end"] * FPS]) == {phase["name"]}


def test_tool_annotation_and_masks_agree_with_the_phase_instruments(case):
    labels = json.loads((case.masks / "instruments.json").read_text())
    assert labels == {"0": "Background", **{str(i + 1): name for i, name in enumerate(INSTRUMENTS)}}
    lines = case.tool_annotation.read_text().splitlines()
    assert lines[0].split("\t") == ["Frame", *INSTRUMENTS]
    seen_per_phase: dict[str, set[str]] = {name: set() for name in PHASES}
    for second, line in enumerate(lines[1:]):
        frame, *flags = line.split("\t")
        assert int(frame) == second * FPS
        mask = np.asarray(Image.open(case.masks / f"case_{second}.png"))
        assert mask.shape == (SIZE[1], SIZE[0]) and mask.max() <= len(INSTRUMENTS)
        present = {INSTRUMENTS[label - 1] for label in np.unique(mask) if label}
        assert present == {name for name, flag in zip(INSTRUMENTS, flags, strict=True) if flag == "1"}
        phase = case.scenario.phase_at(second)
        assert present <= set(PHASE_LOOKS[phase].instruments)
        seen_per_phase[phase] |= present
    for phase, seen in seen_per_phase.items():
        assert seen, f"no instrument visible in {phase}"


def test_video_stream_matches_its_dicom_transfer_syntax(case):
    with av.open(str(case.video)) as container:
        context = container.streams.video[0].codec_context
        assert (context.name, context.profile, context.level, context.pix_fmt) == ("h264", "High", 41, "yuv420p")
    dataset = pydicom.dcmread(case.dicom_video)
    assert dataset.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.4.102"  # H.264 High Profile / Level 4.1
    assert dataset.PixelData.startswith(b"\xfe\xff\x00\xe0\x00\x00\x00\x00")  # empty Basic Offset Table
    stream = case.video.read_bytes()
    assert decode_data_sequence(dataset.PixelData) == [stream + b"\0" * (len(stream) % 2)]


def test_dicom_video_has_every_required_attribute(case):
    dataset = pydicom.dcmread(case.dicom_video)
    assert dataset.SOPClassUID == "1.2.840.10008.5.1.4.1.1.77.1.1.1"  # Video Endoscopic Image Storage
    for module, attributes in VIDEO_ENDOSCOPIC_IOD_ATTRIBUTES.items():
        for keyword, kind in attributes.items():
            assert keyword in dataset, f"{module}: {keyword} missing"
            if kind.startswith("1"):
                assert dataset[keyword].value not in (None, "", []), f"{module}: type 1 {keyword} empty"
    assert dataset.file_meta.MediaStorageSOPInstanceUID == dataset.SOPInstanceUID
    for keyword in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"):
        assert dataset[keyword].value.is_valid, keyword
    assert (dataset.PhotometricInterpretation, dataset.PlanarConfiguration) == ("YBR_PARTIAL_420", 0)
    assert (dataset.Rows, dataset.Columns, dataset.NumberOfFrames) == (SIZE[1], SIZE[0], DURATION * FPS)
    assert float(dataset.FrameTime) == pytest.approx(1000 / FPS)
    assert dataset.FrameIncrementPointer == pydicom.tag.Tag("FrameTime")


def test_multiframe_dicom_is_read_by_pydicom_and_simpleitk(case):
    frames = np.stack([np.asarray(Image.open(case.frames / f"case_{n}.png")) for n in range(DURATION)])
    dataset = pydicom.dcmread(case.dicom_multiframe)
    assert (dataset.NumberOfFrames, float(dataset.FrameTime)) == (DURATION, 1000.0)
    assert np.array_equal(dataset.pixel_array, frames)
    assert np.array_equal(sitk.GetArrayFromImage(sitk.ReadImage(str(case.dicom_multiframe))), frames)
    assert dataset.StudyInstanceUID == pydicom.dcmread(case.dicom_video).StudyInstanceUID


def test_phases_are_separable_from_random_resnet_features(tmp_path):
    """A linear probe on an untrained ResNet, trained on one case, recognises the phases of another seed."""
    torch.manual_seed(0)
    network = torchvision.models.resnet18(weights=None)
    network.fc = torch.nn.Identity()
    network.eval()
    mean, std = torch.tensor([0.485, 0.456, 0.406])[:, None, None], torch.tensor([0.229, 0.224, 0.225])[:, None, None]

    def features(seed):
        case = write_sample_case(tmp_path / str(seed), duration=21, seed=seed, size=SIZE, progress=False)
        frames = list(open_source(case.video))
        batch = torch.from_numpy(np.stack([frame.image for frame in frames])).permute(0, 3, 1, 2) / 255.0
        with torch.no_grad():
            embeddings = network((batch - mean) / std).numpy()
        return embeddings, np.array([PHASES.index(case.scenario.phase_at(frame.time)) for frame in frames])

    (train, train_labels), (test, test_labels) = features(0), features(1)
    centre, scale = train.mean(0), train.std(0) + 1e-6
    train, test = (train - centre) / scale, (test - centre) / scale
    weights = np.linalg.solve(train.T @ train + np.eye(train.shape[1]), train.T @ np.eye(len(PHASES))[train_labels])
    accuracy = np.mean((test @ weights).argmax(1) == test_labels)
    assert accuracy >= 0.85


def test_command_line(tmp_path, capsys):
    parser = argparse.ArgumentParser()
    sample_data_cli.register(parser.add_subparsers())
    args = parser.parse_args(
        ["sample-data", str(tmp_path / "cli"), "--duration", "7", "--size", "64x48", "--seed", "4"]
    )
    assert args.handler(args) == 0
    assert "7 s synthetic case" in capsys.readouterr().out
    assert open_source(tmp_path / "cli" / "case_video.dcm").duration == 7.0
    with pytest.raises(SystemExit):
        parser.parse_args(["sample-data", str(tmp_path), "--size", "big"])
    for bad in (["--duration", "3"], ["--size", "63x48"], ["--fps", "0"]):
        args = parser.parse_args(["sample-data", str(tmp_path / "bad"), *bad])
        with pytest.raises(SurgVLPError):
            args.handler(args)
