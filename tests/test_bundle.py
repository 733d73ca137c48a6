"""The MONAI bundle, model-zoo style: each config run on the CPU with the tiny weights, as a user runs it.

A copy of the bundle folder (configs and code, no installed package on the path) is given the tiny model with
``surgvlp weights convert``; ``python -m monai.bundle`` and ``torchrun`` then run it in subprocesses, the way
a hospital runs the bundle, and the timelines are compared with the library's own.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

import surgvlp
from surgvlp.bundle.inference import INDEX_NAME, Shard, TimelineInference, as_flag, list_videos, timeline_name
from surgvlp.cli import bundle as bundle_cli
from surgvlp.cli import export as export_cli
from surgvlp.cli import main
from surgvlp.bundle.convert import convert_checkpoint
from surgvlp.recognition.scoring import phase_probabilities
from surgvlp.errors import SurgVLPError
from surgvlp.network.loading import load_model
from surgvlp.bundle.metadata_check import check_metadata, metadata_problems
from surgvlp.network.phase_network import PhasePrompts, open_phase_network
from surgvlp.network.preprocess import to_model_input
from surgvlp.recognition.prompts import load_prompt_set
from surgvlp.sources import open_source
from surgvlp.recognition.timeline import read_timeline
from surgvlp.weights import VARIANTS, WeightStore, sha256_file
from surgvlp.weights.variants import TEXT_MODEL_URL

pytestmark = pytest.mark.filterwarnings("ignore:parsing config_file:UserWarning")

SOURCE_BUNDLE = Path(surgvlp.__file__).resolve().parents[1]
INSTALLED_CODE = str(SOURCE_BUNDLE)
RUN_OPTIONS = ["--device", "cpu", "--allow_untrained", "True", "--batch_size", "8"]
# Runs ``python -m monai.bundle`` with the project's editable install taken off the path, and reports where
# the surgvlp package was imported from: the bundle must run on its own code.
ISOLATED_MONAI_BUNDLE = (
    "import atexit, runpy, sys\n"
    f"sys.path[:] = [entry for entry in sys.path if entry != {INSTALLED_CODE!r}]\n"
    "atexit.register(lambda: print('surgvlp code:', sys.modules['surgvlp'].__file__))\n"
    "sys.argv[0] = 'monai.bundle'\n"
    "runpy.run_module('monai.bundle', run_name='__main__', alter_sys=True)\n"
)


def _cli(module, argv: list[str]) -> int:
    """Parse ``argv`` with the subcommand parser of ``module`` and run its handler, as ``surgvlp`` does."""
    parser = argparse.ArgumentParser(prog="surgvlp")
    module.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.handler(args) or 0


def _copy_bundle(dest: Path) -> Path:
    shutil.copytree(SOURCE_BUNDLE / "configs", dest / "configs")
    shutil.copytree(SOURCE_BUNDLE / "surgvlp", dest / "surgvlp", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(SOURCE_BUNDLE / "LICENSE", dest / "LICENSE")
    return dest


@pytest.fixture(scope="session")
def bundle(tmp_path_factory, tiny_model) -> Path:
    """A copy of the bundle holding the tiny model, converted with the cholec80 phase prompts."""
    root = _copy_bundle(tmp_path_factory.mktemp("bundle") / "surgvlp_bundle")
    convert_checkpoint("untrained-tiny", root, prompt_set="cholec80")
    return root


@pytest.fixture(scope="session")
def videos(tmp_path_factory, sample_case) -> Path:
    """Two videos (the mp4 and its DICOM wrapping) and an annotation file, which is not a video."""
    folder = tmp_path_factory.mktemp("videos")
    for path in (sample_case.video, sample_case.dicom_video, sample_case.phase_annotation):
        shutil.copy(path, folder / path.name)
    return folder


def _bundle_run(bundle: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", ISOLATED_MONAI_BUNDLE, "run", "--config_file", str(bundle / "configs" / "inference.json"),
         "--bundle_root", str(bundle), *args],
        cwd=cwd, capture_output=True, text=True, timeout=300, check=False,
    )


@pytest.fixture(scope="session")
def single_process_run(bundle, videos, tmp_path_factory) -> tuple[subprocess.CompletedProcess, Path]:
    out = tmp_path_factory.mktemp("single")
    cache = tmp_path_factory.mktemp("single_cache")
    result = _bundle_run(bundle, "--dataset_dir", str(videos), "--output_dir", str(out), "--cache_dir", str(cache),
                         *RUN_OPTIONS, cwd=tmp_path_factory.mktemp("elsewhere"))
    return result, out


def test_convert_copies_the_checkpoint_and_inherits_untrained(bundle, tiny_model):
    store = WeightStore(bundle / "models")
    entries = {entry.name: entry for entry in store.entries()}
    assert entries["model"].path == bundle / "models" / "model.pt"
    assert entries["model"].sha256 == sha256_file(tiny_model.checkpoint)  # the bytes, unchanged
    assert entries["model"].untrained and entries["phase_prompts"].untrained
    assert (bundle / "models" / "text_model" / "vocab.txt").read_text() == (tiny_model.text_model_dir / "vocab.txt").read_text()
    assert all(ok for _, ok, _ in store.verify())


def test_phase_network_is_the_zero_shot_rule(bundle, sample_case):
    """softmax(pred) of the network equals the library's phase probabilities from both encoders."""
    network = open_phase_network(bundle / "models", allow_untrained=True).network
    images = to_model_input([frame.image for frame in open_source(sample_case.video, fps=0.15)])
    with torch.inference_mode():
        probabilities = torch.softmax(network(images), dim=1).numpy()
    loaded = load_model("untrained-tiny", allow_untrained=True, device="cpu")
    prompt_set = load_prompt_set("cholec80")
    classes = prompt_set.class_embeddings(loaded.encoder.encode_prompts(prompt_set.all_prompts()))
    expected = phase_probabilities(loaded.encoder.encode_images(images).numpy(), classes)
    np.testing.assert_allclose(probabilities, expected, atol=1e-5)


def test_inference_config_writes_a_timeline_per_video_from_the_copied_bundle(single_process_run, videos, tmp_path):
    result, out = single_process_run
    assert result.returncode == 0, result.stderr[-2000:]
    code_line = next(line for line in result.stdout.splitlines() if line.startswith("surgvlp code:"))
    assert "surgvlp_bundle" in code_line and INSTALLED_CODE not in code_line
    assert sorted(path.name for path in out.iterdir()) == ["case.mp4.phases.json", "case_video.dcm.phases.json", INDEX_NAME]
    index = json.loads((out / INDEX_NAME).read_text())
    assert index["untrained"] is True and index["world_size"] == 1
    assert [Path(record["video"]).name for record in index["videos"]] == ["case.mp4", "case_video.dcm"]
    document = json.loads((out / "case.mp4.phases.json").read_text())
    assert document["untrained"] is True and document["model"]["variant"] == "model"
    # the same timeline as `surgvlp phases` on the same video with the same weights
    reference = tmp_path / "reference.json"
    assert main(["phases", str(videos / "case.mp4"), "--out", str(reference), "--checkpoint", "untrained-tiny",
                 "--allow-untrained", "--device", "cpu", "--batch-size", "8"]) == 0
    bundle_timeline, cli_timeline = read_timeline(out / "case.mp4.phases.json"), read_timeline(reference)
    np.testing.assert_allclose(bundle_timeline.scores, cli_timeline.scores, atol=1e-5)
    np.testing.assert_array_equal(bundle_timeline.labels, cli_timeline.labels)
    assert len(bundle_timeline.times) == 21


def test_multi_gpu_config_on_cpu_gives_the_single_process_timelines(bundle, videos, single_process_run, tmp_path):
    _, single = single_process_run
    out = tmp_path / "sharded"
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "monai.bundle", "run",
         "--config_file", "['configs/inference.json','configs/multi_gpu_inference.json']",
         "--dataset_dir", str(videos), "--output_dir", str(out), "--cache_dir", str(tmp_path / "cache"),
         "--allow_untrained", "True", "--batch_size", "8"],
        cwd=bundle, capture_output=True, text=True, timeout=300, check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    index = json.loads((out / INDEX_NAME).read_text())
    assert index["world_size"] == 2 and sorted(record["rank"] for record in index["videos"]) == [0, 1]
    for name in ("case.mp4.phases.json", "case_video.dcm.phases.json"):
        sharded, alone = read_timeline(out / name), read_timeline(single / name)
        np.testing.assert_allclose(sharded.scores, alone.scores, atol=1e-5)
        np.testing.assert_array_equal(sharded.labels, alone.labels)
        assert [(s.label, s.start, s.end) for s in sharded.segments] == [(s.label, s.start, s.end) for s in alone.segments]


def _run_in_process(bundle: Path, monkeypatch, *config_files: str, **overrides) -> None:
    from monai.bundle import run

    monkeypatch.setattr(sys, "path", sys.path.copy())  # the config puts the bundle on the path
    run(config_file=[str(bundle / "configs" / name) for name in config_files], logging_file=False,
        bundle_root=str(bundle), device="cpu", batch_size=8, **overrides)


def test_tools_config_writes_tool_timelines(bundle, videos, tmp_path, monkeypatch):
    _run_in_process(bundle, monkeypatch, "inference.json", "inference_tools.json",
                    videos=[str(videos / "case.mp4")], output_dir=str(tmp_path), allow_untrained=True)
    document = json.loads((tmp_path / "case.mp4.tools.json").read_text())
    assert document["task"] == "tool" and document["untrained"] is True
    assert set(document["presence"]) == {"Grasper", "Bipolar", "Hook", "Scissors", "Clipper", "Irrigator", "SpecimenBag"}


@pytest.mark.parametrize("allow", [False, "false"])
def test_untrained_weights_are_refused_with_one_line(bundle, videos, tmp_path, monkeypatch, capsys, allow):
    with pytest.raises(SystemExit) as stopped:
        _run_in_process(bundle, monkeypatch, "inference.json",
                        dataset_dir=str(videos), output_dir=str(tmp_path), allow_untrained=allow)
    assert stopped.value.code == 2
    message = capsys.readouterr().err.strip().splitlines()
    assert len(message) == 1 and "untrained" in message[0] and "--allow-untrained" in message[0]
    assert not list(tmp_path.iterdir())


def test_a_broken_video_is_reported_and_the_others_still_run(bundle, videos, tmp_path, tiny_model):
    broken = tmp_path / "broken.mp4"
    broken.write_bytes((videos / "case.mp4").read_bytes()[:2000])
    out = tmp_path / "out"
    inference = TimelineInference([broken, videos / "case.mp4"], out, weights_dir=bundle / "models",
                                  allow_untrained=True, device="cpu", batch_size=8, cache_dir=tmp_path / "cache")
    with pytest.raises(SurgVLPError, match="1 of 2 videos failed"):
        inference.infer()
    records = json.loads((out / INDEX_NAME).read_text())["videos"]
    assert records[0]["timeline"] is None and records[0]["error"]
    assert records[1]["timeline"] == "case.mp4.phases.json" and (out / "case.mp4.phases.json").is_file()


def test_a_bundle_without_weights_says_how_to_get_them(videos, tmp_path):
    inference = TimelineInference(videos, tmp_path / "out", weights_dir=tmp_path / "models", device="cpu")
    with pytest.raises(SurgVLPError, match="surgvlp weights convert peskavlp"):
        inference.infer()
    with pytest.raises(SurgVLPError, match="no converted checkpoint"):
        open_phase_network(tmp_path / "models")


def test_list_videos_finds_videos_by_content(videos, tmp_path):
    assert [path.name for path in list_videos(videos)] == ["case.mp4", "case_video.dcm"]
    assert list_videos([videos / "case.mp4"]) == [videos / "case.mp4"]
    with pytest.raises(SurgVLPError, match="holds no video"):
        list_videos(tmp_path)
    with pytest.raises(SurgVLPError, match="does not exist"):
        list_videos(tmp_path / "missing")


def test_shards_cover_every_video_once():
    videos = [Path(f"v{index}.mp4") for index in range(5)]
    shards = [Shard(rank, 2).select(videos) for rank in range(2)]
    assert shards == [videos[0::2], videos[1::2]]
    assert Shard().select(videos) == videos
    assert timeline_name(Path("a/case.mp4"), "tool") == "case.mp4.tools.json"


def test_flags_read_strings_as_users_mean_them():
    assert as_flag("False", "x") is False and as_flag("true", "x") is True and as_flag(1, "x") is True
    with pytest.raises(SurgVLPError, match="must be true or false"):
        as_flag("maybe", "allow_untrained")


def test_bundle_verify_passes_with_the_tiny_weights(bundle, capsys):
    assert _cli(bundle_cli, ["bundle", "verify", "--bundle", str(bundle), "--allow-untrained"]) == 0
    assert capsys.readouterr().out.count("ok ") == 3


def test_verify_net_in_out_fails_when_the_metadata_disagrees(bundle, tmp_path):
    from monai.bundle import verify_net_in_out

    metadata = json.loads((bundle / "configs" / "metadata.json").read_text())
    metadata["network_data_format"]["outputs"]["pred"]["num_channels"] = 5
    (tmp_path / "metadata.json").write_text(json.dumps(metadata))
    with pytest.raises(ValueError, match="output channel number"):
        verify_net_in_out(net_id="network_def", meta_file=str(tmp_path / "metadata.json"), device="cpu",
                          config_file=str(bundle / "configs" / "inference.json"), bundle_root=str(bundle), allow_untrained=True)


def test_our_metadata_meets_the_model_zoo_requirements():
    metadata = check_metadata(SOURCE_BUNDLE / "configs" / "metadata.json")
    assert metadata["version"] in metadata["changelog"]
    assert metadata["network_data_format"]["inputs"]["image"]["spatial_shape"] == [224, 224]
    assert list(metadata["network_data_format"]["outputs"]["pred"]["channel_def"].values()) == load_prompt_set("cholec80").class_names


def test_metadata_versions_are_the_installed_ones():
    from importlib.metadata import version

    metadata = check_metadata(SOURCE_BUNDLE / "configs" / "metadata.json")
    pinned = {"monai": metadata["monai_version"], "torch": metadata["pytorch_version"], "numpy": metadata["numpy_version"]}
    for package, expected in (pinned | metadata["required_packages_version"]).items():
        assert version(package) == expected, package


@pytest.mark.parametrize(
    "change, problem",
    [
        (lambda m: m.pop("copyright"), "copyright is missing"),
        (lambda m: m.update(version="0.2.0"), "changelog has no entry for the current version 0.2.0"),
        (lambda m: m.update(required_packages_version=["av"]), "required_packages_version must be an object"),
        (lambda m: m["network_data_format"]["inputs"]["image"].pop("is_patch_data"), "inputs#image#is_patch_data is missing"),
        (lambda m: m["network_data_format"]["outputs"]["pred"].update(num_channels=True), "num_channels must be an integer"),
        (lambda m: m["network_data_format"]["outputs"]["pred"].update(num_channels=6), "channel_def names 7 channels"),
    ],
)
def test_metadata_check_names_what_is_wrong(tmp_path, change, problem):
    metadata = json.loads((SOURCE_BUNDLE / "configs" / "metadata.json").read_text())
    change(metadata)
    assert any(problem in found for found in metadata_problems(metadata))
    (tmp_path / "metadata.json").write_text(json.dumps(metadata))
    with pytest.raises(SurgVLPError, match="model zoo requirements"):
        check_metadata(tmp_path / "metadata.json")


def test_onnx_export_matches_pytorch(bundle, tmp_path, capsys):
    import onnx
    import onnxruntime

    from surgvlp.bundle.export import LOGIT_TOLERANCE

    out = tmp_path / "phases.onnx"
    assert _cli(export_cli, ["export", "onnx", "--out", str(out), "--bundle", str(bundle), "--allow-untrained"]) == 0
    assert "ok: ONNX Runtime vs PyTorch" in capsys.readouterr().out
    properties = {prop.key: prop.value for prop in onnx.load(str(out), load_external_data=False).metadata_props}
    assert properties["surgvlp.untrained"] == "true"
    assert json.loads(properties["surgvlp.classes"])[0] == "Preparation"
    network = open_phase_network(bundle / "models", allow_untrained=True).network
    images = torch.randn(3, 3, 224, 224, generator=torch.Generator().manual_seed(1))  # another batch size
    session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    (logits,) = session.run(["pred"], {"image": images.numpy()})
    with torch.inference_mode():
        np.testing.assert_allclose(logits, network(images).numpy(), atol=LOGIT_TOLERANCE)


def test_export_refuses_untrained_weights(bundle, tmp_path):
    with pytest.raises(SurgVLPError, match="untrained"):
        _cli(export_cli, ["export", "onnx", "--out", str(tmp_path / "x.onnx"), "--bundle", str(bundle)])
    assert not (tmp_path / "x.onnx").exists()


def test_convert_from_the_official_zip_without_prompts(tmp_path, tiny_model, capsys):
    """An official-style zip installs byte for byte; without --prompt-set there is no phase head to export."""
    archive = tmp_path / "PeskaVLP.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED) as bundle_zip:
        bundle_zip.write(tiny_model.checkpoint, "PeskaVLP.pth")
    target = _copy_bundle(tmp_path / "bundle")
    shutil.copytree(tiny_model.text_model_dir, tmp_path / "text_model")  # a text model beside the zip
    assert main(["weights", "convert", str(archive), "--bundle", str(target)]) == 0
    assert "model: " in capsys.readouterr().out
    assert sha256_file(target / "models" / "model.pt") == sha256_file(tiny_model.checkpoint)
    with pytest.raises(SurgVLPError, match="no phase prompt embeddings"):
        open_phase_network(target / "models")


def test_phase_prompts_must_come_from_the_same_checkpoint(tmp_path, tiny_model):
    store = WeightStore(tmp_path)
    store.record("model", tiny_model.checkpoint, source="generated", untrained=True)
    PhasePrompts(load_prompt_set("cholec80"), torch.randn(7, 768), "0" * 64).save(tmp_path / "phase_prompts.pt")
    store.record("phase_prompts", tmp_path / "phase_prompts.pt", source="generated", untrained=True)
    with pytest.raises(SurgVLPError, match="embedded by another checkpoint"):
        open_phase_network(tmp_path, allow_untrained=True)
    (tmp_path / "damaged.pt").write_bytes(b"not a torch file")
    with pytest.raises(SurgVLPError, match="not a readable phase prompts file"):
        PhasePrompts.load(tmp_path / "damaged.pt")


def test_convert_rejects_a_tool_prompt_set(tmp_path, tiny_model):
    with pytest.raises(SurgVLPError, match="for tool recognition"):
        convert_checkpoint("untrained-tiny", tmp_path, prompt_set="cholec80-tools")
    assert not (tmp_path / "models").exists()


def test_large_files_point_at_the_official_locations():
    listed = yaml.safe_load((SOURCE_BUNDLE / "configs" / "large_files.yml").read_text())["large_files"]
    urls = {entry["path"]: entry["url"] for entry in listed}
    assert urls["models/peskavlp.zip"] == VARIANTS["peskavlp"].url
    assert urls["models/Bio_ClinicalBERT/vocab.txt"] == f"{TEXT_MODEL_URL}/vocab.txt"
    assert all(not entry["path"].startswith(("/", "..")) for entry in listed)


def test_the_bundle_has_the_files_a_bundle_needs():
    for name in ("configs/metadata.json", "configs/inference.json", "configs/logging.conf", "LICENSE", "docs/README.md"):
        assert (SOURCE_BUNDLE / name).is_file(), name
    assert "CC BY-NC-SA 4.0" in (SOURCE_BUNDLE / "LICENSE").read_text()
