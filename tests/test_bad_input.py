"""Bad input to the real ``surgvlp`` console script: one line on stderr, exit 2, nothing lost, nothing left behind.

Every case runs the installed console script under ``python -X importtime``, so the same run also shows
which modules were imported: an input error must be found before torch is (a model load costs 5 to 10 s
and 880 MB). The work folder is compared file by file before and after each run: the inputs keep their
bytes, and no output, temporary or probe file stays behind.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from surgvlp.atomic import UnwritableOutput, atomic_paths
from surgvlp.errors import SurgVLPError
from surgvlp.recognition.decoding import segments
from surgvlp.recognition.prompts import load_prompt_set
from surgvlp.recognition.timeline import Timeline, write_json
from surgvlp.sources.sampling import sampling_rate, select_frames
from surgvlp.weights import WeightStore

SURGVLP = str(Path(sys.executable).with_name("surgvlp"))  # the installed console script
BUNDLE = Path(__file__).resolve().parents[1] / "bundles" / "surgvlp"
MODEL = "--checkpoint untrained-tiny --allow-untrained --device cpu"
ONE_THREAD = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def run_surgvlp(arguments: list[str], cwd: Path, env: dict[str, str] | None = None) -> tuple[int, list[str], set[str]]:
    """Exit status, the stderr lines that are not import timings, and the top-level packages imported."""
    completed = subprocess.run(
        [sys.executable, "-X", "importtime", SURGVLP, *arguments],
        cwd=cwd, capture_output=True, text=True, timeout=300, env={**os.environ, **ONE_THREAD, **(env or {})},
    )
    lines = completed.stderr.splitlines()
    imported = {line.rsplit("|", 1)[1].strip() for line in lines if line.startswith("import time:") and "|" in line}
    return completed.returncode, [line for line in lines if not line.startswith("import time:")], imported


def snapshot(folder: Path) -> dict[str, str]:
    """Every entry under ``folder``, hidden ones included: a link by its target, a file by its SHA-256."""
    state = {}
    for path in sorted(folder.rglob("*")):
        key = str(path.relative_to(folder))
        if path.is_symlink():
            state[key] = f"link to {os.readlink(path)}"
        elif path.is_file():
            state[key] = hashlib.sha256(path.read_bytes()).hexdigest()
        else:
            state[key] = "folder"
    return state


@pytest.fixture
def work(sample_case, tiny_model, tmp_path: Path) -> Path:
    """A folder of copies of the sample case, plus the files the cases point outputs at (links, a timeline)."""
    case = tmp_path / "case"
    case.mkdir()
    shutil.copy(sample_case.video, case / "case.mp4")
    shutil.copy(sample_case.phase_annotation, case / "case-phase.txt")
    shutil.copytree(sample_case.frames, case / "frames")
    (case / "prompts.txt").write_text("I use grasper to cauterize\nI use hook to dissect\n")
    (case / "sam2").mkdir()
    (case / "sam2" / "config.json").write_text('{"model_type": "sam2_video"}')
    (case / "sam2" / "model.safetensors").write_bytes(b"placeholder")
    shutil.copy(BUNDLE / "surgvlp" / "recognition" / "prompt_sets" / "cholec80.yaml", case / "my-phases.yaml")
    (tmp_path / "link.png").symlink_to(case / "case.mp4")
    os.link(case / "case.mp4", tmp_path / "hard.json")
    write_prediction(case / "pred.json")
    models = tmp_path / "bundle" / "models"
    models.mkdir(parents=True)
    shutil.copytree(BUNDLE / "configs", tmp_path / "bundle" / "configs")
    os.link(tiny_model.checkpoint, models / "model.pt")
    WeightStore(models).record("model", models / "model.pt", source="generated", untrained=True)
    return tmp_path


def write_prediction(path: Path) -> Path:
    """A Cholec80 phase timeline of 30 frames at 1 fps, as ``surgvlp phases`` writes one."""
    cholec80 = load_prompt_set("cholec80")
    labels = np.repeat(np.arange(3), 10)
    times = np.arange(labels.size, dtype=float)
    probabilities = np.eye(len(cholec80.classes))[labels] * 0.9 + 0.1 / len(cholec80.classes)
    write_json(Timeline({"path": "case.mp4", "duration": 30.0, "sampled_fps": 1.0},
                        {"variant": "untrained-tiny", "checkpoint_sha256": "1" * 64, "untrained": True},
                        cholec80, {"method": "argmax"}, times, probabilities,
                        segments(labels, times, probabilities), labels), path)
    return path


V = "case/case.mp4"
# (command line relative to the work folder, a part of the one-line message, environment)
CASES = {
    # outputs that are inputs, or each other
    "phases --out is the input": (f"phases {V} {MODEL} --out {V}", "is the same file as the input INPUT", None),
    "phases --csv is the input": (f"phases {V} {MODEL} --out o.json --csv {V}", "--csv case/case.mp4 is the same", None),
    "phases --plot is a symlink to the input": (f"phases {V} {MODEL} --out o.json --plot link.png", "--plot link.png is the same file as the input", None),
    "phases --out is a hard link to the input": (f"phases {V} {MODEL} --out hard.json", "--out hard.json is the same file as the input", None),
    "phases --out is the relative input": (f"phases {V} {MODEL} --out ./case/../case/case.mp4", "is the same file as the input", None),
    "phases --csv is --out": (f"phases {V} {MODEL} --out o.json --csv case/../o.json", "--csv case/../o.json is the same file as the output --out o.json", None),
    "phases --plot is --out": (f"phases {V} {MODEL} --out o.png --plot ./o.png", "is the same file as the output --out", None),
    "phases --out is the prompt set": (f"phases {V} {MODEL} --prompt-set case/my-phases.yaml --out case/my-phases.yaml", "the input --prompt-set", None),
    "phases --out in the input frame folder": (f"phases case/frames {MODEL} --out case/frames/o.json", "inside the folder of the input INPUT", None),
    "tools --out is the input": (f"tools {V} {MODEL} --out {V}", "is the same file as the input INPUT", None),
    "tools --csv is --out": (f"tools {V} {MODEL} --out t.json --csv t.json", "--csv t.json is the same file as the output --out", None),
    "embed --out is the video": (f"embed --video {V} {MODEL} --out {V}", "the input --video", None),
    "embed --out is the prompts": (f"embed --video {V} --prompts case/prompts.txt {MODEL} --out case/prompts.txt", "the input --prompts", None),
    "embed --out in the frame folder": (f"embed --frames case/frames {MODEL} --out case/frames/e.npz", "inside the folder of the input --frames", None),
    "evaluate --out is --pred": ("evaluate --pred case/pred.json --truth case/case-phase.txt --out case/pred.json", "the input --pred", None),
    "evaluate --out is --truth": ("evaluate --pred case/pred.json --truth case/case-phase.txt --out case/case-phase.txt", "the input --truth", None),
    "adapt --out is --truth": (f"adapt --video {V} --truth case/case-phase.txt {MODEL} --out case/case-phase.txt", "the input --truth", None),
    "export --out is the checkpoint": ("export onnx --bundle bundle --allow-untrained --out bundle/models/model.pt", "the input model file", None),
    "segment --json is the input": (f"segment {V} --text clipper {MODEL} --out m.seg.nrrd --json {V}", "--json case/case.mp4 is the same file as the input INPUT", None),
    "segment --out in the input frame folder": (f"segment case/frames --text clipper {MODEL} --out case/frames/m.seg.nrrd", "inside the folder of the input INPUT", None),
    "segment --out is the SAM2 folder's file": (f"segment {V} --text clipper {MODEL} --sam2 case/sam2 --out m.seg.nrrd --json case/sam2/config.json", "the input --sam2", None),
    # output folders and formats
    "segment --out not .seg.nrrd": (f"segment {V} --text clipper {MODEL} --out m.json", "--out m.json: name it *.seg.nrrd or *.nrrd", None),
    "segment --nifti not NIfTI": (f"segment {V} --text clipper {MODEL} --out m.seg.nrrd --nifti m.nrrd", "--nifti m.nrrd: name it *.nii.gz or *.nii", None),
    "phases --out is a folder": (f"phases {V} {MODEL} --out case", "is a folder", None),
    "phases --out under a file": (f"phases {V} {MODEL} --out case/case-phase.txt/o.json", "case/case-phase.txt is not a folder", None),
    "phases --plot in an unknown format": (f"phases {V} {MODEL} --out o.json --plot o.gif", "must end in one of .png, .pdf, .svg", None),
    # numbers
    "--fps 1e9": (f"phases {V} {MODEL} --out o.json --fps 1e9", "argument --fps: expected a number above 0 and at most 1000, got '1e9'", None),
    "--fps inf": (f"phases {V} {MODEL} --out o.json --fps inf", "argument --fps", None),
    "--fps nan": (f"embed --video {V} {MODEL} --out e.npz --fps nan", "argument --fps", None),
    "--fps 0": (f"adapt --video {V} --truth case/case-phase.txt {MODEL} --fps 0", "argument --fps", None),
    "--start nan": (f"phases {V} {MODEL} --out o.json --start nan", "argument --start: expected a number at least 0", None),
    "--start -1": (f"tools {V} {MODEL} --out o.json --start -1", "argument --start", None),
    "--end before --start": (f"phases {V} {MODEL} --out o.json --start 5 --end 3", "end 3 s must be after start 5 s", None),
    "--folder-fps inf": (f"phases case/frames {MODEL} --out o.json --folder-fps inf", "argument --folder-fps", None),
    "--device tpu": (f"phases {V} {MODEL} --out o.json --device tpu", "argument --device: expected cpu, cuda or cuda:N, got 'tpu'", None),
    "--decode-workers -1": (f"phases {V} {MODEL} --out o.json --decode-workers -1", "argument --decode-workers", None),
    "--batch-size 0": (f"embed --video {V} {MODEL} --out e.npz --batch-size 0", "argument --batch-size", None),
    "--min-segment -1": (f"phases {V} {MODEL} --out o.json --min-segment -1", "argument --min-segment", None),
    "--threshold 2": (f"tools {V} {MODEL} --out o.json --threshold 2", "argument --threshold: expected a number at least 0 and at most 1", None),
    "adapt --epochs 0": (f"adapt --video {V} --truth case/case-phase.txt {MODEL} --epochs 0", "argument --epochs", None),
    "evaluate --truth-fps 0": ("evaluate --pred case/pred.json --truth case/case-phase.txt --truth-fps 0", "argument --truth-fps", None),
    "evaluate --tolerance -1": ("evaluate --pred case/pred.json --truth case/case-phase.txt --relaxed --tolerance -1", "argument --tolerance", None),
    "sample-data --duration 1e8 s": ("sample-data sd --duration 100000000", "argument --duration: expected a whole number at most 3600", None),
    "sample-data --seed -1": ("sample-data sd --seed -1", "argument --seed", None),
    "weights init-untrained --seed -1": ("weights init-untrained --dir w --seed -1", "argument --seed", None),
    "weights fetch --timeout inf": ("weights fetch surgvlp --dir w --timeout inf", "argument --timeout", None),
    "SURGVLP_CACHE_LIMIT_MB=nan": ("cache info", "SURGVLP_CACHE_LIMIT_MB='nan': expected a number of megabytes, 0 or more", {"SURGVLP_CACHE_LIMIT_MB": "nan"}),
    "SURGVLP_CACHE_LIMIT_MB=inf": ("cache info", "SURGVLP_CACHE_LIMIT_MB='inf'", {"SURGVLP_CACHE_LIMIT_MB": "inf"}),
    "SURGVLP_CACHE_LIMIT_MB=-5": (f"phases {V} {MODEL} --out o.json", "SURGVLP_CACHE_LIMIT_MB='-5'", {"SURGVLP_CACHE_LIMIT_MB": "-5"}),
    "segment empty --text": (f"segment {V} --text= {MODEL} --out m.seg.nrrd", "argument --text: expected some text", None),
    "segment empty --negative": (f"segment {V} --text clipper --negative tissue,,bg {MODEL} --out m.seg.nrrd", "argument --negative", None),
    "segment --negative is --text": (f"segment {V} --text clipper --negative clipper {MODEL} --out m.seg.nrrd", "both the text and a contrasting prompt", None),
    "segment --confidence 2": (f"segment {V} --text clipper {MODEL} --out m.seg.nrrd --confidence 2", "argument --confidence", None),
    "segment --consecutive 0": (f"segment {V} --text clipper {MODEL} --out m.seg.nrrd --consecutive 0", "argument --consecutive", None),
    "segment --threads 0": (f"segment {V} --text clipper {MODEL} --out m.seg.nrrd --threads 0", "argument --threads", None),
    # missing inputs
    "segment missing --sam2 folder": (f"segment {V} --text clipper {MODEL} --sam2 case/nosam2 --out m.seg.nrrd", "SAM2 folder case/nosam2 does not exist", None),
    "segment --sam2 not fetched": (f"segment {V} --text clipper {MODEL} --sam2 sam2-small --out m.seg.nrrd", "run `surgvlp weights fetch sam2-small`", None),
    "segment --sam2 folder without weights": (f"segment {V} --text clipper {MODEL} --sam2 case --out m.seg.nrrd", "SAM2 folder case lacks config.json, model.safetensors", None),
    "phases missing input": (f"phases case/nothere.mp4 {MODEL} --out o.json", "INPUT case/nothere.mp4: no such file or folder", None),
    "phases missing --adapter": (f"phases {V} {MODEL} --adapter nothere.npz --out o.json", "--adapter nothere.npz: no such file", None),
    "phases missing --prompt-set file": (f"phases {V} {MODEL} --prompt-set nothere.yaml --out o.json", "neither a built-in set", None),
    "phases missing --checkpoint": (f"phases {V} --checkpoint nothere.pth --out o.json", "checkpoint nothere.pth is neither a file nor a recorded name", None),
    "phases missing --text-model": (f"phases {V} {MODEL} --text-model nothere --out o.json", "--text-model nothere: no such file or folder", None),
    "tools missing input": (f"tools case/nothere.dcm {MODEL} --out o.json", "no such file or folder", None),
    "embed missing --prompts": (f"embed --video {V} --prompts nothere.txt {MODEL} --out e.npz", "--prompts nothere.txt: no such file", None),
    "evaluate missing --pred": ("evaluate --pred nothere.json --truth case/case-phase.txt", "--pred nothere.json: no such file", None),
    "adapt missing second --video": (f"adapt --video {V} nothere.mp4 --truth case/case-phase.txt case/case-phase.txt {MODEL}", "--video nothere.mp4: no such file", None),
    "bundle verify missing --config": (f"bundle verify --bundle {BUNDLE} --config nothere.json", "nothere.json: no such file or folder", None),
    "bundle verify missing --bundle": ("bundle verify --bundle nothere", "nothere is not a MONAI bundle folder", None),
}


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_bad_input_is_one_line_and_costs_nothing(work: Path, case: str) -> None:
    command, message, env = CASES[case]
    before = snapshot(work)
    status, errors, imported = run_surgvlp(command.split(), work, env)
    assert status == 2, errors
    assert len(errors) == 1 and "Traceback" not in errors[0], errors
    assert errors[0].startswith("surgvlp ") and message in errors[0], errors
    assert snapshot(work) == before  # inputs keep their bytes; no output, temporary or probe file is left
    assert "torch" not in imported, f"{case}: torch was imported before the error"


def test_closed_stdout_ends_quietly_after_writing_the_report(work: Path) -> None:
    """``surgvlp evaluate ... | head``: no BrokenPipeError traceback, and the --out report is complete."""
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before the command prints anything
    completed = subprocess.run(
        [SURGVLP, "evaluate", "--pred", "case/pred.json", "--truth", "case/case-phase.txt", "--out", "report.json"],
        cwd=work, stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=120,
    )
    os.close(write_end)
    assert completed.returncode == 1 and completed.stderr == ""
    assert '"videos"' in (work / "report.json").read_text()


def test_phases_writes_every_output_together_in_the_format_asked(work: Path) -> None:
    """A plot named .pdf is a PDF; --fps above the video's 25 fps reads each frame once and records 25."""
    before = snapshot(work)
    arguments = f"phases {V} {MODEL} --batch-size 8 --fps 1000 --end 0.2 --out new/o.json --csv o.csv --plot o.pdf"
    status, errors, _ = run_surgvlp(arguments.split(), work)
    assert status == 0, errors
    after = snapshot(work)
    assert sorted(set(after) - set(before)) == ["new", "new/o.json", "o.csv", "o.pdf"]
    assert all(after[name] == digest for name, digest in before.items())
    assert (work / "o.pdf").read_bytes().startswith(b"%PDF-")
    timeline = (work / "new" / "o.json").read_text()
    assert '"sampled_fps":25.0' in timeline and '"sampled_frames":5' in timeline
    assert len((work / "o.csv").read_text().splitlines()) == 1 + 5


def test_outputs_appear_together_or_not_at_all(tmp_path: Path) -> None:
    (tmp_path / "kept.json").write_text("old")
    targets = {"--out": tmp_path / "kept.json", "--csv": tmp_path / "new" / "deep" / "t.csv", "--plot": None}
    with pytest.raises(SurgVLPError, match="plot failed"):
        with atomic_paths(targets) as staged:
            assert set(staged) == {"--out", "--csv"}
            staged["--out"].write_text("new")
            staged["--csv"].write_text("new")
            raise SurgVLPError("plot failed")
    assert sorted(path.name for path in tmp_path.rglob("*")) == ["kept.json"]  # no temporaries, no new folders
    assert (tmp_path / "kept.json").read_text() == "old"

    with atomic_paths(targets) as staged:
        for path in staged.values():
            path.write_text("new")
    assert (tmp_path / "kept.json").read_text() == (tmp_path / "new" / "deep" / "t.csv").read_text() == "new"
    assert sorted(path.name for path in tmp_path.rglob("*")) == ["deep", "kept.json", "new", "t.csv"]


def test_a_folder_that_cannot_be_created_is_one_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(UnwritableOutput, match="cannot write"):
        with atomic_paths({"--out": tmp_path / "file" / "o.json"}):
            pass


@pytest.mark.parametrize("start", [0.0, 0.37, 3.0])
@pytest.mark.parametrize("end", [10.0, 7.51])
def test_sampling_faster_than_the_native_rate_reads_every_frame_once(start: float, end: float) -> None:
    """Capped at the native 25 fps: every frame whose time is in the range (give or take half a frame), once."""
    native = 25.0
    times = np.arange(250) / native
    every_frame = np.flatnonzero((times >= start - 0.5 / native) & (times < end - 0.5 / native))
    for fps in (25.0, 26.0, 400.0, 1e9):
        np.testing.assert_array_equal(select_frames(times, native, sampling_rate(fps, native), start, end), every_frame)
    assert sampling_rate(1e9, native) == native and sampling_rate(None, native) is None


@pytest.mark.parametrize(("value", "limit"), [("0", 0), ("1.5", 1.5 * 1024 * 1024), ("", 2048 * 1024 * 1024)])
def test_cache_limit_accepts_megabytes(monkeypatch: pytest.MonkeyPatch, value: str, limit: float) -> None:
    from surgvlp.recognition.cache import CACHE_LIMIT_ENV, EmbeddingCache

    monkeypatch.setenv(CACHE_LIMIT_ENV, value)
    assert EmbeddingCache().limit_bytes == int(limit)


@pytest.mark.parametrize("value", ["-5", "nan", "inf", "-inf", "lots"])
def test_cache_limit_refuses_what_is_not_a_size(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    from surgvlp.recognition.cache import CACHE_LIMIT_ENV, EmbeddingCache

    monkeypatch.setenv(CACHE_LIMIT_ENV, value)
    with pytest.raises(SurgVLPError, match="expected a number of megabytes, 0 or more"):
        EmbeddingCache()
