"""The public API at the package root: what the CLI, the bundle, the MONAI Label app and the benchmarks call."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

import surgvlp
from surgvlp.network.encoder import SurgVLPEncoder

BATCH = 4


@pytest.fixture(scope="module")
def model(tiny_model) -> surgvlp.LoadedModel:
    torch.set_num_threads(1)
    return surgvlp.load_model("untrained-tiny", allow_untrained=True, device="cpu")


def test_importing_the_package_does_not_import_torch() -> None:
    code = "import sys, surgvlp; surgvlp.__version__; assert 'torch' not in sys.modules, 'torch was imported'"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_every_exported_name_resolves() -> None:
    for name in surgvlp.__all__:
        assert getattr(surgvlp, name) is not None
    with pytest.raises(AttributeError):
        surgvlp.no_such_name  # noqa: B018


def test_model_records_its_provenance(model) -> None:
    described = model.describe()
    assert described["untrained"] is True and len(described["checkpoint_sha256"]) == 64
    assert described["precision"] == "fp32" and described["preprocessing"].startswith("resize360x640-pil")
    assert len(described["text_model_id"]) == 64


def test_a_folder_stands_for_the_checkpoint_it_holds(tiny_model) -> None:
    # the folder `weights init-untrained` writes: model.pth with text_model/ beside it
    loaded = surgvlp.load_model(tiny_model.checkpoint.parent, allow_untrained=True, device="cpu")
    assert loaded.checkpoint == tiny_model.checkpoint.resolve() and loaded.untrained


def test_recognise_phases_is_embed_then_decode(model, sample_case, tmp_path) -> None:
    cache = surgvlp.EmbeddingCache(tmp_path / "cache")
    source = surgvlp.open_source(sample_case.video, fps=1.0)
    timeline = surgvlp.recognise_phases(model, source, "cholec80", decoder="viterbi", cache=cache, batch_size=BATCH)
    embeddings = surgvlp.embed(model, source, "cholec80", cache=cache)
    assert embeddings.from_cache
    again = surgvlp.phase_timeline(embeddings, surgvlp.DecoderSettings(method="viterbi"))
    np.testing.assert_array_equal(timeline.labels, again.labels)
    np.testing.assert_allclose(timeline.scores, again.scores, atol=1e-6)
    assert timeline.untrained and timeline.decoder["method"] == "viterbi"


def test_embeddings_refuse_another_prompt_set(model, sample_case) -> None:
    embeddings = surgvlp.embed(model, surgvlp.open_source(sample_case.video), "cholec80", cache=False)
    assert embeddings.identity["prompt_set"] == surgvlp.load_prompt_set("cholec80").digest
    assert embeddings.identity["checkpoint_sha256"] == model.sha256 and embeddings.identity["precision"] == "fp32"
    with pytest.raises(surgvlp.SurgVLPError, match="made with prompt set 'cholec80', not 'autolaparo'"):
        surgvlp.phase_timeline(embeddings, prompt_set=surgvlp.load_prompt_set("autolaparo"))


def test_embeddings_refuse_an_adapter_of_another_checkpoint(model, sample_case) -> None:
    embeddings = surgvlp.embed(model, surgvlp.open_source(sample_case.video), "cholec80", cache=False)
    prompt_set = surgvlp.load_prompt_set("cholec80")
    foreign = surgvlp.PhaseAdapter.from_prompts(prompt_set, embeddings.classes, "f" * 64, untrained_encoder=True)
    with pytest.raises(surgvlp.SurgVLPError, match="another checkpoint"):
        surgvlp.phase_timeline(embeddings, adapter=foreign)


def test_progress_reaches_the_total(model, sample_case) -> None:
    source = surgvlp.open_source(sample_case.video)
    reports: list[tuple[int, int]] = []
    surgvlp.recognise_tools(model, source, cache=False, batch_size=BATCH, progress=lambda *report: reports.append(report))
    done = [report[0] for report in reports]
    assert done == sorted(done) and reports[-1] == (len(source), len(source))
    assert len(reports) == -(-len(source) // BATCH)


def test_cancel_stops_within_one_batch_and_leaves_no_cache_entry(model, sample_case, tmp_path, monkeypatch) -> None:
    cache = surgvlp.EmbeddingCache(tmp_path / "cache")
    token = surgvlp.CancelToken()
    encoded: list[int] = []
    real = SurgVLPEncoder.encode_images

    def counting(self, images):
        encoded.append(len(images))
        return real(self, images)

    monkeypatch.setattr(SurgVLPEncoder, "encode_images", counting)
    with pytest.raises(surgvlp.Cancelled):
        surgvlp.recognise_phases(
            model, surgvlp.open_source(sample_case.video), cache=cache, batch_size=BATCH,
            progress=lambda done, total: token.cancel(), cancel=token,
        )
    assert encoded == [BATCH]
    assert cache.entries() == []


def test_read_frames_gives_one_array_with_the_sampled_times(sample_case) -> None:
    source = surgvlp.open_source(sample_case.video, fps=2.0, start=3.0, end=9.0)
    frames = surgvlp.read_frames(source)
    expected = list(source)
    assert frames.images.shape == (len(expected), 96, 160, 3) and frames.images.dtype == np.uint8
    np.testing.assert_array_equal(frames.times, [frame.time for frame in expected])
    np.testing.assert_array_equal(frames.images[5], expected[5].image)
    assert frames.times[0] == pytest.approx(3.0, abs=0.05) and np.diff(frames.times) == pytest.approx(0.5, abs=0.05)
