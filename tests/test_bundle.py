"""The MONAI bundle, model-zoo style: MONAI's own functions are the judges, the tiny weights the model.

A copy of the bundle folder (configs and code, no installed package on the path) is given the tiny model with
``surgvlp weights convert``. MONAI's ``ConfigWorkflow`` (initialize, check_properties, run, finalize, as the
zoo's unit tests do), ``verify_metadata`` against the shipped schema, ``verify_net_in_out``, ``ckpt_export``
and a ``CheckpointLoader`` then check it; ``python -m monai.bundle`` and ``torchrun`` run it in subprocesses,
the way a hospital runs the bundle, and the timelines are compared with the library's own.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from importlib.metadata import version
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from surgvlp.bundle.convert import convert_checkpoint
from surgvlp.bundle.inference import INDEX_NAME, Shard, as_flag, list_videos, timeline_name
from surgvlp.bundle.verification import SCHEMA_SHA256, shipped_schema
from surgvlp.cli import bundle as bundle_cli
from surgvlp.cli import export as export_cli
from surgvlp.cli import main
from surgvlp.errors import SurgVLPError
from surgvlp.network.checkpoint import IGNORED_KEYS, file_is_marked_untrained
from surgvlp.network.phase_network import ZeroShotNetwork, build_network, open_bundle_network, text_model_dir
from surgvlp.network.preprocess import to_model_input
from surgvlp.recognition.prompts import load_prompt_set
from surgvlp.recognition.timeline import read_timeline
from surgvlp.sources import open_source
from surgvlp.weights import VARIANTS, WeightStore, sha256_file
from surgvlp.weights.variants import TEXT_MODEL_URL

pytestmark = [
    pytest.mark.filterwarnings("ignore:parsing config_file:UserWarning"),
    pytest.mark.filterwarnings("ignore:No hash value provided:UserWarning"),  # MONAI on files the tests lay out
    pytest.mark.filterwarnings("ignore:`torch.jit:FutureWarning"),  # ckpt_export is TorchScript's, deprecated
]

REPO = Path(__file__).resolve().parents[1]
SOURCE_BUNDLE = REPO / "bundles" / "surgvlp"
INSTALLED_CODE = str(SOURCE_BUNDLE)
RUN_OPTIONS = ["--device", "cpu", "--allow_untrained", "True", "--batch_size", "8"]
SCORE_TOLERANCE = 1e-4
"""Probabilities of one network computed in two processes (other thread counts, so float32 sums round
differently): 100 * cos turns a 1e-7 difference of a cosine into up to 2.5e-5 of a probability."""
# Runs ``python -m monai.bundle`` and reports where the surgvlp package was imported from.
REPORTING_MONAI_BUNDLE = (
    "import atexit, runpy, sys\n"
    "atexit.register(lambda: print('surgvlp code:', sys.modules['surgvlp'].__file__))\n"
    "sys.argv[0] = 'monai.bundle'\n"
    "runpy.run_module('monai.bundle', run_name='__main__', alter_sys=True)\n"
)
# The same with the project's editable install taken off the path: the copied bundle must run on its own code.
ISOLATED_MONAI_BUNDLE = f"import sys\nsys.path[:] = [entry for entry in sys.path if entry != {INSTALLED_CODE!r}]\n" + REPORTING_MONAI_BUNDLE


@pytest.fixture(autouse=True)
def one_torch_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _cli(module, argv: list[str]) -> int:
    """Parse ``argv`` with the subcommand parser of ``module`` and run its handler, as ``surgvlp`` does."""
    parser = argparse.ArgumentParser(prog="surgvlp")
    module.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.handler(args) or 0


def _copy_bundle(dest: Path, code: bool = True) -> Path:
    shutil.copytree(SOURCE_BUNDLE / "configs", dest / "configs")
    if code:
        shutil.copytree(SOURCE_BUNDLE / "surgvlp", dest / "surgvlp", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(SOURCE_BUNDLE / "LICENSE", dest / "LICENSE")
    shutil.copy(SOURCE_BUNDLE / "large_files.yml", dest / "large_files.yml")
    return dest


def _paths(bundle: Path) -> dict[str, str]:
    configs = bundle / "configs"
    return {"config_file": str(configs / "inference.json"), "meta_file": str(configs / "metadata.json"), "bundle_root": str(bundle)}


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


def _loaded_network(bundle: Path) -> ZeroShotNetwork:
    """``network_def`` as MONAI's config parser builds it, with ``model.pt`` loaded strictly."""
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config(str(bundle / "configs" / "inference.json"))
    parser.read_meta(str(bundle / "configs" / "metadata.json"))
    parser["bundle_root"] = str(bundle)
    network = parser.get_parsed_content("network_def")
    network.load_state_dict(torch.load(bundle / "models" / "model.pt", weights_only=True), strict=True)
    return network.eval()


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


# -- network_def and models/model.pt ---------------------------------------------------------------------------


def test_model_pt_is_the_state_dict_of_network_def(bundle, tiny_model):
    """The official tensors unchanged under their own names, plus the head; nothing else, nothing missing."""
    stored = torch.load(bundle / "models" / "model.pt", weights_only=True)
    official = {key: value for key, value in torch.load(tiny_model.checkpoint, weights_only=True).items() if key not in IGNORED_KEYS}
    assert set(stored) == set(official) | {"class_embeddings"}
    assert all(torch.equal(stored[key], value) for key, value in official.items())
    assert stored["class_embeddings"].shape == (7, 768)
    network = build_network(text_model_dir(bundle / "models"), 7)
    assert set(network.state_dict()) == set(stored)
    network.load_state_dict(stored, strict=True)


def test_model_pt_still_loads_as_an_encoder_checkpoint(bundle):
    """Read as an official-layout checkpoint (``surgvlp phases --checkpoint``), model.pt gives the same encoders."""
    from surgvlp.network.loading import load_model

    loaded = load_model(bundle / "models", allow_untrained=True, device="cpu")  # a weights folder stands for its model.pt
    images = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(2))
    with torch.inference_mode():
        np.testing.assert_allclose(loaded.encoder.encode_images(images).numpy(), _loaded_network(bundle).encode_image(images).numpy(), atol=1e-5)


def test_convert_records_the_files_and_inherits_untrained(bundle, tiny_model):
    store = WeightStore(bundle / "models")
    entries = {entry.name: entry for entry in store.entries()}
    assert entries["model"].path == bundle / "models" / "model.pt"
    assert entries["model"].untrained and entries["prompt_set"].untrained
    record = json.loads((bundle / "models" / "prompt_set.json").read_text())
    assert record["source_checkpoint_sha256"] == sha256_file(tiny_model.checkpoint)
    assert record["prompt_set"]["name"] == "cholec80"
    assert (bundle / "models" / "text_model" / "vocab.txt").read_text() == (tiny_model.text_model_dir / "vocab.txt").read_text()
    assert file_is_marked_untrained(bundle / "models" / "model.pt")  # the file itself says so, wherever it goes
    verified = {entry.name: ok for entry, ok, _ in store.verify()}
    assert all(verified.values()) and "model/text_model/vocab.txt" in verified  # the test text model is hashed too


def test_a_bundle_converted_from_a_copy_unknown_to_the_weights_folder_is_untrained(tiny_model, tmp_path):
    copied = Path(shutil.copytree(tiny_model.checkpoint.parent, tmp_path / "copied"))  # with its text_model/
    target = _copy_bundle(tmp_path / "bundle", code=False)
    converted = convert_checkpoint(copied / "model.pth", target, store=WeightStore(tmp_path / "empty"))
    assert converted.checkpoint.untrained and file_is_marked_untrained(target / "models" / "model.pt")
    from surgvlp.network.loading import load_model

    with pytest.raises(SurgVLPError, match="untrained .*--allow-untrained"):
        load_model(target / "models")


def test_the_head_is_the_zero_shot_rule_of_the_text_encoder(bundle, sample_case):
    """softmax(network_def(frames)) equals softmax(100 cos) from the network's own two encoders."""
    network = _loaded_network(bundle)
    images = to_model_input([frame.image for frame in open_source(sample_case.video, fps=0.15)])
    prompt_set = load_prompt_set("cholec80")
    from surgvlp.network.text import PromptTokenizer

    tokens = PromptTokenizer(bundle / "models" / "text_model")(prompt_set.all_prompts())
    with torch.inference_mode():
        probabilities = torch.softmax(network(images), dim=1).numpy()
        prompts = network.encode_text(**tokens).numpy()
        frames = torch.nn.functional.normalize(network.encode_image(images), dim=1).numpy()
    classes = prompt_set.class_embeddings(prompts)
    expected = torch.softmax(torch.from_numpy(100 * frames @ classes.T), dim=1).numpy()
    np.testing.assert_allclose(probabilities, expected, atol=1e-5)


def test_monai_checkpoint_loader_loads_model_pt_strictly_into_network_def(bundle):
    from ignite.engine import Engine
    from monai.bundle import ConfigParser
    from monai.handlers import CheckpointLoader

    parser = ConfigParser()
    parser.read_config(str(bundle / "configs" / "inference.json"))
    parser.read_meta(str(bundle / "configs" / "metadata.json"))
    parser["bundle_root"] = str(bundle)
    network = parser.get_parsed_content("network_def")
    CheckpointLoader(load_path=str(bundle / "models" / "model.pt"), load_dict={"model": network}, strict=True)(Engine(lambda *_: None))
    stored = torch.load(bundle / "models" / "model.pt", weights_only=True)
    assert all(torch.equal(value, stored[key]) for key, value in network.state_dict().items())


def test_monai_verify_net_in_out_and_ckpt_export_see_the_same_network(bundle, tmp_path):
    from monai.bundle import ckpt_export, verify_net_in_out

    verify_net_in_out(net_id="network_def", device="cpu", **_paths(bundle))
    ckpt_export(net_id="network_def", filepath=str(tmp_path / "model.ts"), ckpt_file=str(bundle / "models" / "model.pt"), **_paths(bundle))
    exported = torch.jit.load(str(tmp_path / "model.ts"))
    images = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        np.testing.assert_allclose(exported(images).numpy(), _loaded_network(bundle)(images).numpy(), atol=1e-4)


def test_ckpt_export_fails_when_model_pt_is_not_network_defs(bundle, tmp_path):
    """What MONAI's ckpt_export reported before: a state_dict with a variable missing must not export."""
    from monai.bundle import ckpt_export

    stored = torch.load(bundle / "models" / "model.pt", weights_only=True)
    stored.pop("class_embeddings")
    torch.save(stored, tmp_path / "model.pt")
    with pytest.raises(RuntimeError, match="class_embeddings"):
        ckpt_export(net_id="network_def", filepath=str(tmp_path / "model.ts"), ckpt_file=str(tmp_path / "model.pt"), **_paths(bundle))


def test_verify_net_in_out_fails_when_the_metadata_disagrees(bundle, tmp_path):
    from monai.bundle import verify_net_in_out

    metadata = json.loads((bundle / "configs" / "metadata.json").read_text())
    metadata["network_data_format"]["outputs"]["pred"]["dtype"] = "float16"
    (tmp_path / "metadata.json").write_text(json.dumps(metadata))
    with pytest.raises(ValueError, match="dtype of output"):
        verify_net_in_out(net_id="network_def", device="cpu", **(_paths(bundle) | {"meta_file": str(tmp_path / "metadata.json")}))


# -- MONAI's infer workflow -----------------------------------------------------------------------------------


def test_monai_infer_workflow_has_every_required_property_and_runs(bundle, videos, tmp_path):
    """The model zoo's unit-test pattern: initialize, check_properties, run, finalize."""
    from monai.bundle import ConfigWorkflow
    from monai.handlers import CheckpointLoader

    workflow = ConfigWorkflow(
        workflow_type="infer", logging_file=str(bundle / "configs" / "logging.conf"), **_paths(bundle),
        dataset_dir=str(videos), videos=[str(videos / "case.mp4")], output_dir=str(tmp_path / "out"),
        cache_dir=str(tmp_path / "cache"), device="cpu", batch_size=8, allow_untrained=True,
    )
    workflow.initialize()
    assert workflow.check_properties() == []
    assert isinstance(workflow.network_def, ZeroShotNetwork) and isinstance(workflow.dataset, torch.utils.data.Dataset)
    loaders = [handler for handler in workflow.parser.get_parsed_content("handlers") if isinstance(handler, CheckpointLoader)]
    assert [loader.load_path for loader in loaders] == [str(bundle / "models" / "model.pt")]
    assert loaders[0].load_dict["model"] is workflow.evaluator.network
    workflow.run()
    workflow.finalize()
    stored = torch.load(bundle / "models" / "model.pt", weights_only=True)
    assert all(torch.equal(value.cpu(), stored[key]) for key, value in workflow.evaluator.network.state_dict().items())
    assert (tmp_path / "out" / "case.mp4.phases.json").is_file() and (tmp_path / "out" / INDEX_NAME).is_file()


def test_inference_config_writes_a_timeline_per_video_from_the_copied_bundle(single_process_run, bundle, videos, tmp_path):
    result, out = single_process_run
    assert result.returncode == 0, result.stderr[-2000:]
    code_line = next(line for line in result.stdout.splitlines() if line.startswith("surgvlp code:"))
    assert "surgvlp_bundle" in code_line and INSTALLED_CODE not in code_line
    assert sorted(path.name for path in out.iterdir()) == ["case.mp4.phases.json", "case_video.dcm.phases.json", INDEX_NAME]
    index = json.loads((out / INDEX_NAME).read_text())
    assert index["untrained"] is True and index["world_size"] == 1
    assert [Path(record["video"]).name for record in index["videos"]] == ["case.mp4", "case_video.dcm"]
    document = json.loads((out / "case.mp4.phases.json").read_text())
    assert document["untrained"] is True and document["model"]["checkpoint_sha256"] == sha256_file(bundle / "models" / "model.pt")
    bundle_timeline = read_timeline(out / "case.mp4.phases.json")
    assert len(bundle_timeline.times) == 21
    # the scores are network_def's own output on the same frames ...
    images = to_model_input([frame.image for frame in open_source(videos / "case.mp4", fps=1.0)])
    with torch.inference_mode():
        expected = torch.softmax(_loaded_network(bundle)(images), dim=1).numpy()
    np.testing.assert_allclose(bundle_timeline.scores, expected, atol=SCORE_TOLERANCE)
    # ... and the timeline `surgvlp phases` writes for the same video with the same weights
    reference = tmp_path / "reference.json"
    assert main(["phases", str(videos / "case.mp4"), "--out", str(reference), "--checkpoint", "untrained-tiny",
                 "--allow-untrained", "--device", "cpu", "--batch-size", "8"]) == 0
    cli_timeline = read_timeline(reference)
    np.testing.assert_allclose(bundle_timeline.scores, cli_timeline.scores, atol=SCORE_TOLERANCE)
    np.testing.assert_array_equal(bundle_timeline.labels, cli_timeline.labels)


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
        np.testing.assert_allclose(sharded.scores, alone.scores, atol=SCORE_TOLERANCE)
        np.testing.assert_array_equal(sharded.labels, alone.labels)
        assert [(s.label, s.start, s.end) for s in sharded.segments] == [(s.label, s.start, s.end) for s in alone.segments]


def _run_in_process(bundle: Path, monkeypatch, *config_files: str, **overrides) -> None:
    from monai.bundle import run

    monkeypatch.setattr(sys, "path", sys.path.copy())  # the config puts the bundle on the path
    run(config_file=[str(bundle / "configs" / name) for name in config_files], logging_file=False,
        bundle_root=str(bundle), device="cpu", batch_size=8, **overrides)


def test_tools_config_embeds_the_tool_prompts_with_the_networks_text_encoder(bundle, videos, tmp_path, monkeypatch):
    _run_in_process(bundle, monkeypatch, "inference.json", "inference_tools.json",
                    videos=[str(videos / "case.mp4")], output_dir=str(tmp_path), allow_untrained=True, cache_dir=str(tmp_path / "c"))
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


@pytest.mark.parametrize(
    "overrides, expected",
    [
        ({"prompt_set": "no-such-set"}, "no-such-set"),
        ({"decoder": "beam"}, "unknown decoder"),
        ({"dataset_dir": "/nonexistent/videos"}, "does not exist"),
    ],
)
def test_bad_settings_are_one_line_before_any_video_is_read(bundle, videos, tmp_path, monkeypatch, capsys, overrides, expected):
    settings = {"dataset_dir": str(videos), "output_dir": str(tmp_path / "out"), "allow_untrained": True} | overrides
    with pytest.raises(SystemExit) as stopped:
        _run_in_process(bundle, monkeypatch, "inference.json", **settings)
    assert stopped.value.code == 2
    message = capsys.readouterr().err.strip().splitlines()
    assert len(message) == 1 and expected in message[0]
    assert not (tmp_path / "out").exists()


def test_a_broken_video_is_reported_and_the_others_still_run(bundle, videos, tmp_path, monkeypatch, capsys):
    broken = tmp_path / "broken.mp4"
    broken.write_bytes((videos / "case.mp4").read_bytes()[:2000])
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as stopped:
        _run_in_process(bundle, monkeypatch, "inference.json", videos=[str(broken), str(videos / "case.mp4")],
                        output_dir=str(out), allow_untrained=True, cache_dir=str(tmp_path / "cache"))
    assert stopped.value.code == 2 and "1 of 2 videos failed" in capsys.readouterr().err
    records = json.loads((out / INDEX_NAME).read_text())["videos"]
    assert records[0]["timeline"] is None and records[0]["error"]
    assert records[1]["timeline"] == "case.mp4.phases.json" and (out / "case.mp4.phases.json").is_file()


def test_a_bundle_without_weights_says_how_to_get_them(videos, tmp_path, monkeypatch, capsys):
    empty = _copy_bundle(tmp_path / "bundle", code=False)
    with pytest.raises(SystemExit):
        _run_in_process(empty, monkeypatch, "inference.json", dataset_dir=str(videos), output_dir=str(tmp_path / "out"))
    assert "surgvlp weights convert peskavlp" in capsys.readouterr().err
    with pytest.raises(SurgVLPError, match="no converted checkpoint"):
        open_bundle_network(empty / "models")


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


# -- metadata: MONAI's verify_metadata against the shipped zoo schema -------------------------------------------


def test_the_shipped_schema_is_the_one_the_metadata_names(tmp_path):
    from monai.bundle import verify_metadata

    metadata = json.loads((SOURCE_BUNDLE / "configs" / "metadata.json").read_text())
    schema = shipped_schema(SOURCE_BUNDLE, metadata)
    assert schema.name == metadata["schema"].rsplit("/", 1)[-1] == "meta_schema_20240725.json"
    assert sha256_file(schema) == SCHEMA_SHA256[schema.name]
    # offline: MONAI finds the file where it is told to look and does not download it (no network in tests)
    verify_metadata(meta_file=str(SOURCE_BUNDLE / "configs" / "metadata.json"), filepath=str(schema))


def _mutated_metadata(tmp_path: Path, change) -> Path:
    bundle = _copy_bundle(tmp_path / "bundle", code=False)
    path = bundle / "configs" / "metadata.json"
    metadata = json.loads(path.read_text())
    change(metadata)
    path.write_text(json.dumps(metadata))
    return bundle


@pytest.mark.parametrize(
    "change",
    [
        lambda m: m.update(authors=["A", "B"]),  # the zoo schema wants a string
        lambda m: m.pop("copyright"),
        lambda m: m.update(required_packages_version=["av"]),
        lambda m: m["network_data_format"]["outputs"]["pred"].update(num_channels="7"),
        lambda m: m["network_data_format"]["inputs"]["image"].pop("value_range"),
        lambda m: m.update(references="one paper"),
    ],
)
def test_bundle_verify_rejects_what_monai_rejects(tmp_path, change):
    from monai.bundle import verify_metadata

    bundle = _mutated_metadata(tmp_path, change)
    schema = bundle / "configs" / "schema" / "meta_schema_20240725.json"
    with pytest.raises(ValueError):
        verify_metadata(meta_file=str(bundle / "configs" / "metadata.json"), filepath=str(schema))
    with pytest.raises(SurgVLPError, match="does not meet the schema"):
        _cli(bundle_cli, ["bundle", "verify", "--bundle", str(bundle)])


def test_bundle_verify_accepts_what_monai_accepts(tmp_path, capsys):
    """Fields the zoo schema leaves optional (no intended_use, no is_patch_data) are not refused before the weights."""

    def change(metadata):
        metadata.pop("intended_use")
        metadata["network_data_format"]["outputs"]["pred"].pop("is_patch_data")

    bundle = _mutated_metadata(tmp_path, change)
    with pytest.raises(SurgVLPError, match="no converted checkpoint"):
        _cli(bundle_cli, ["bundle", "verify", "--bundle", str(bundle)])
    assert "ok      metadata" in capsys.readouterr().out


def test_bundle_verify_needs_the_schema_in_the_bundle(tmp_path):
    bundle = _copy_bundle(tmp_path / "bundle", code=False)
    (bundle / "configs" / "schema" / "meta_schema_20240725.json").unlink()
    with pytest.raises(SurgVLPError, match="is not shipped"):
        _cli(bundle_cli, ["bundle", "verify", "--bundle", str(bundle)])
    schema = SOURCE_BUNDLE / "configs" / "schema" / "meta_schema_20240725.json"
    (bundle / "configs" / "schema" / "meta_schema_20240725.json").write_text(schema.read_text().replace('"authors"', '"writers"'))
    with pytest.raises(SurgVLPError, match="does not meet the schema"):  # an edited copy fails MONAI's hash check
        _cli(bundle_cli, ["bundle", "verify", "--bundle", str(bundle)])


def test_bundle_verify_passes_with_the_tiny_weights(bundle, capsys):
    assert _cli(bundle_cli, ["bundle", "verify", "--bundle", str(bundle), "--allow-untrained"]) == 0
    assert capsys.readouterr().out.count("ok ") == 5


def test_metadata_versions_are_the_installed_ones():
    metadata = json.loads((SOURCE_BUNDLE / "configs" / "metadata.json").read_text())
    pinned = {"monai": metadata["monai_version"], "torch": metadata["pytorch_version"], "numpy": metadata["numpy_version"]}
    for package, expected in (pinned | metadata["required_packages_version"]).items():
        assert version(package) == expected, package


def test_converting_another_prompt_set_rewrites_the_output_channels(tmp_path, tiny_model, capsys):
    from monai.bundle import ckpt_export, verify_net_in_out

    bundle = _copy_bundle(tmp_path / "bundle", code=False)
    assert main(["weights", "convert", "untrained-tiny", "--bundle", str(bundle), "--prompt-set", "gastric-bypass"]) == 0
    names = load_prompt_set("gastric-bypass").class_names
    assert len(names) == 11
    pred = json.loads((bundle / "configs" / "metadata.json").read_text())["network_data_format"]["outputs"]["pred"]
    assert pred["num_channels"] == 11 and list(pred["channel_def"].values()) == names
    verify_net_in_out(net_id="network_def", device="cpu", **_paths(bundle))
    ckpt_export(net_id="network_def", filepath=str(tmp_path / "model.ts"), ckpt_file=str(bundle / "models" / "model.pt"), **_paths(bundle))
    capsys.readouterr()
    assert _cli(bundle_cli, ["bundle", "verify", "--bundle", str(bundle), "--allow-untrained"]) == 0
    # metadata put back to cholec80's 7 channels while model.pt holds 11 classes: refused
    shutil.copy(SOURCE_BUNDLE / "configs" / "metadata.json", bundle / "configs" / "metadata.json")
    with pytest.raises(SurgVLPError, match="model.pt holds the 11 classes of prompt set 'gastric-bypass'"):
        _cli(bundle_cli, ["bundle", "verify", "--bundle", str(bundle), "--allow-untrained"])
    with pytest.raises(RuntimeError, match="size mismatch for class_embeddings"):
        ckpt_export(net_id="network_def", filepath=str(tmp_path / "x.ts"), ckpt_file=str(bundle / "models" / "model.pt"), **_paths(bundle))


# -- export, convert ---------------------------------------------------------------------------------------------


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
    images = torch.randn(3, 3, 224, 224, generator=torch.Generator().manual_seed(1))  # another batch size
    session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    (logits,) = session.run(["pred"], {"image": images.numpy()})
    with torch.inference_mode():
        np.testing.assert_allclose(logits, _loaded_network(bundle)(images).numpy(), atol=LOGIT_TOLERANCE)


def test_export_refuses_untrained_weights(bundle, tmp_path):
    with pytest.raises(SurgVLPError, match="untrained"):
        _cli(export_cli, ["export", "onnx", "--out", str(tmp_path / "x.onnx"), "--bundle", str(bundle)])
    assert not (tmp_path / "x.onnx").exists()


def test_convert_from_the_official_zip(tmp_path, tiny_model, capsys):
    """An official-style zip converts like its .pth: the same model.pt, cholec80 by default."""
    archive = tmp_path / "PeskaVLP.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED) as bundle_zip:
        bundle_zip.write(tiny_model.checkpoint, "PeskaVLP.pth")
    target = _copy_bundle(tmp_path / "bundle", code=False)
    shutil.copytree(tiny_model.text_model_dir, tmp_path / "text_model")  # a text model beside the zip
    assert main(["weights", "convert", str(archive), "--bundle", str(target)]) == 0
    printed = capsys.readouterr().out
    assert "output channels: Preparation" in printed and "untrained weights" in printed  # the zipped file's mark is seen
    from_pth = _copy_bundle(tmp_path / "from_pth", code=False)
    convert_checkpoint("untrained-tiny", from_pth)
    assert sha256_file(target / "models" / "model.pt") == sha256_file(from_pth / "models" / "model.pt")  # same tensors, same bytes


def test_convert_checks_everything_before_writing(tmp_path, tiny_model):
    target = _copy_bundle(tmp_path / "bundle", code=False)
    metadata = (target / "configs" / "metadata.json").read_bytes()
    with pytest.raises(SurgVLPError, match="for tool recognition"):
        convert_checkpoint("untrained-tiny", target, prompt_set="cholec80-tools")
    with pytest.raises(SurgVLPError, match="is not a MONAI bundle folder"):
        convert_checkpoint("untrained-tiny", tmp_path / "not-a-bundle")
    assert not (target / "models").exists() and (target / "configs" / "metadata.json").read_bytes() == metadata


def test_large_files_are_where_monai_looks_and_point_at_the_official_locations(tmp_path):
    """MONAI's own download_large_files finds the list at the bundle root; with every file present it downloads nothing."""
    from monai.bundle import download_large_files

    listed = yaml.safe_load((SOURCE_BUNDLE / "large_files.yml").read_text())["large_files"]
    urls = {entry["path"]: entry["url"] for entry in listed}
    assert urls["models/peskavlp.zip"] == VARIANTS["peskavlp"].url
    assert urls["models/Bio_ClinicalBERT/vocab.txt"] == f"{TEXT_MODEL_URL}/vocab.txt"
    bundle = _copy_bundle(tmp_path / "bundle", code=False)
    for entry in listed:
        (bundle / entry["path"]).parent.mkdir(parents=True, exist_ok=True)
        (bundle / entry["path"]).write_bytes(b"present")
    download_large_files(bundle_path=str(bundle))
    assert not (SOURCE_BUNDLE / "configs" / "large_files.yml").exists()


def test_the_bundle_has_the_files_a_bundle_needs():
    for name in ("configs/metadata.json", "configs/inference.json", "configs/logging.conf", "LICENSE", "docs/README.md"):
        assert (SOURCE_BUNDLE / name).is_file(), name
    assert "CC BY-NC-SA 4.0" in (SOURCE_BUNDLE / "LICENSE").read_text()


# -- installable anywhere ------------------------------------------------------------------------------------------


def _requirement_names(requirements: list[str]) -> dict[str, str]:
    from packaging.requirements import Requirement

    return {Requirement(line).name.lower().replace("_", "-"): str(Requirement(line).specifier) for line in requirements}


def test_pyproject_states_ranges_and_constraints_pin_them_exactly():
    from packaging.specifiers import SpecifierSet

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    ranges = _requirement_names(project["dependencies"] + project["optional-dependencies"]["test"])
    pins = {}
    for line in (REPO / "constraints.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, pinned = line.split("==")
            pins[name.lower().replace("_", "-")] = pinned
    for name, specifier in ranges.items():
        assert "==" not in specifier and "<" in specifier and ">=" in specifier, f"{name}: {specifier} is not a range"
        assert pins[name] in SpecifierSet(specifier), f"{name} {pins[name]} outside {specifier}"
    assert pins["torch"] == "2.14.1" and pins["torchvision"] == "0.29.1"
    for name, pinned in pins.items():  # what is tested is what is pinned
        assert version(name) == pinned, name
    commands = (REPO / "README.md").read_text().split("```bash\n", 1)[1].splitlines()[:2]
    assert all("pip install -q -c constraints.txt -e" in command for command in commands)
    assert "pip install -q -c constraints.txt -e '.[test]' && .venv/bin/python -m pytest" in commands[1]


@pytest.fixture(scope="session")
def installed(tmp_path_factory) -> Path:
    """The project installed non-editable into a folder (pip, no network, no build isolation), as a wheel would be."""
    source = tmp_path_factory.mktemp("source")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    shutil.copytree(SOURCE_BUNDLE / "surgvlp", source / "bundles" / "surgvlp" / "surgvlp", ignore=shutil.ignore_patterns("__pycache__"))
    target = tmp_path_factory.mktemp("site")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index", "--no-build-isolation", "--target", str(target), str(source)],
        check=True, capture_output=True, timeout=300,
    )
    return target


def _run_installed(installed: Path, cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    environment = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"} | {"PYTHONPATH": str(installed)} | env
    return subprocess.run([sys.executable, *args], cwd=cwd, env=environment, capture_output=True, text=True, timeout=300, check=False)


def test_a_non_editable_install_works_from_another_folder(installed, videos, tmp_path):
    """Weights in $SURGVLP_WEIGHTS_DIR, the bundle in $SURGVLP_BUNDLE_DIR: nothing is looked up beside the code."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    bundle = _copy_bundle(tmp_path / "hospital" / "bundle", code=False)  # configs only: the installed code runs it
    env = {"SURGVLP_WEIGHTS_DIR": str(tmp_path / "weights"), "SURGVLP_BUNDLE_DIR": str(bundle), "XDG_DATA_HOME": str(tmp_path / "data")}
    where = _run_installed(installed, elsewhere, "-c", "import surgvlp; print(surgvlp.__file__)", **env)
    assert Path(where.stdout.strip()).is_relative_to(installed), where.stdout + where.stderr
    for command in (["weights", "init-untrained"], ["weights", "convert", "untrained-tiny"], ["bundle", "verify", "--allow-untrained"]):
        result = _run_installed(installed, elsewhere, "-m", "surgvlp.cli", *command, **env)
        assert result.returncode == 0, f"{command}: {result.stderr[-2000:]}"
    assert (bundle / "models" / "model.pt").is_file() and not (installed / "models").exists()
    out = tmp_path / "out"
    result = _run_installed(
        installed, elsewhere, "-c", REPORTING_MONAI_BUNDLE, "run", "--config_file", str(bundle / "configs" / "inference.json"),
        "--bundle_root", str(bundle), "--videos", f"['{videos / 'case.mp4'}']", "--output_dir", str(out),
        "--cache_dir", str(tmp_path / "cache"), *RUN_OPTIONS, **env,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    code_line = next(line for line in result.stdout.splitlines() if line.startswith("surgvlp code:"))
    assert Path(code_line.split(": ", 1)[1]).is_relative_to(installed)
    assert json.loads((out / INDEX_NAME).read_text())["videos"][0]["timeline"] == "case.mp4.phases.json"


def test_without_a_bundle_the_error_says_where_it_looked(tmp_path, monkeypatch):
    monkeypatch.setenv("SURGVLP_BUNDLE_DIR", str(tmp_path / "nowhere"))
    with pytest.raises(SurgVLPError, match="SURGVLP_BUNDLE_DIR"):
        _cli(bundle_cli, ["bundle", "verify"])
    monkeypatch.delenv("SURGVLP_BUNDLE_DIR")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    with pytest.raises(SurgVLPError, match=re.escape(str(tmp_path / "data" / "surgvlp" / "bundle"))):
        _cli(bundle_cli, ["bundle", "verify"])
