"""``surgvlp segment`` end to end: the files it writes, what it prints, and its one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import nrrd
import pytest
import slicerio

from surgvlp.cli import main
from surgvlp.segmentation.untrained_sam2 import write_untrained_sam2


@pytest.fixture(scope="module")
def sam2_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_untrained_sam2(tmp_path_factory.mktemp("cli-sam2") / "sam2")


def segment_args(sample_case, tiny_model, *extra: str) -> list[str]:
    return [
        "segment", str(sample_case.frames), "--text", "the clipper", "--negative", "tissue,background",
        "--negative", "the grasper", "--end", "3", "--checkpoint", str(tiny_model.checkpoint), "--allow-untrained",
        "--device", "cpu", *extra,
    ]


def test_segment_writes_seg_nrrd_nifti_and_json_with_sam2(sample_case, tiny_model, sam2_folder, tmp_path, capsys) -> None:
    out, nifti, report = tmp_path / "masks.seg.nrrd", tmp_path / "masks.nii.gz", tmp_path / "masks.json"
    arguments = ["--sam2", str(sam2_folder), "--confidence", "0", "--consecutive", "1", "--out", str(out), "--nifti", str(nifti), "--json", str(report)]
    assert main(segment_args(sample_case, tiny_model, *arguments)) == 0
    printed = capsys.readouterr().out.strip()
    assert printed.startswith(f"wrote {out}: 3 frames, mode sam2, start frame 0 (0.00 s)") and "untrained model" in printed
    data = json.loads(report.read_text())
    assert data["mode"] == "sam2" and data["untrained"] is True and data["start_frame"] == 0
    assert data["prompt"] == {"text": "the clipper", "negatives": ["tissue", "background", "the grasper"]}
    assert data["frames"]["time"] == [0.0, 1.0, 2.0] and data["settings"]["threads"] == 1
    assert data["sam2"]["model_sha256"] and data["sam2"]["untrained"] is True
    segment = slicerio.read_segmentation(str(out))["segments"][0]
    assert segment["name"] == "the clipper" and segment["tags"]["SurgVLP.Mode"] == "sam2"
    assert nrrd.read_header(str(out))["sizes"].tolist() == [160, 96, 3]
    assert nifti.stat().st_size > 0


def test_without_sam2_the_masks_are_coarse_and_say_so(sample_case, tiny_model, tmp_path, capsys) -> None:
    out = tmp_path / "coarse.seg.nrrd"
    assert main(segment_args(sample_case, tiny_model, "--out", str(out), "--confidence", "0", "--consecutive", "1")) == 0
    assert ", mode coarse, " in capsys.readouterr().out
    assert nrrd.read_header(str(out))["SurgVLP_Mode"] == "coarse"


def test_an_untrained_sam2_needs_the_explicit_request(sample_case, tiny_model, sam2_folder, tmp_path, capsys) -> None:
    arguments = [argument for argument in segment_args(sample_case, tiny_model) if argument != "--allow-untrained"]
    assert main([*arguments, "--sam2", str(sam2_folder), "--out", str(tmp_path / "m.seg.nrrd")]) == 2
    error = capsys.readouterr().err.strip()
    assert "\n" not in error and "untrained" in error and str(sam2_folder) in error
    assert list(tmp_path.iterdir()) == []
