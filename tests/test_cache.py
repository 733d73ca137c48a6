"""The embedding cache: damaged entries are recomputed, keys name everything the arrays depend on, and
several processes share one cache folder (real processes racing on it) without duplicate work or errors."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
import threading
import time
import zipfile

import numpy as np
import pytest
import torch

from surgvlp.network.encoded import EncodedFrames
from surgvlp.network.encoder import SurgVLPEncoder
from surgvlp.network.loading import load_model
from surgvlp.recognition.cache import EmbeddingCache, FramesKey, PromptsKey
from surgvlp.recognition.pipeline import embed, frames_key, prompts_key
from surgvlp.recognition.prompts import load_prompt_set
from surgvlp.sources import open_source
from surgvlp.sources.identity import folder_id

KEY = FramesKey("content", "0" * 64, 1.0, 0.0, 21.0, "resize360x640-crop224-imagenet", "fp32")


def encoded(count: int = 5, seed: int = 0) -> EncodedFrames:
    times = np.arange(count, dtype=np.float64)
    return EncodedFrames(np.random.default_rng(seed).normal(size=(count, 8)).astype(np.float32), times, times.astype(np.int64))


def assert_same(first: EncodedFrames, second: EncodedFrames) -> None:
    for name in ("embeddings", "times", "indices"):
        np.testing.assert_array_equal(getattr(first, name), getattr(second, name))
        assert getattr(first, name).dtype == getattr(second, name).dtype


@pytest.fixture
def loaded(tiny_model):
    torch.set_num_threads(1)
    return load_model("untrained-tiny", allow_untrained=True, device="cpu")


def test_entries_round_trip_and_keys_name_every_dependency(tmp_path):
    cache = EmbeddingCache(tmp_path)
    assert cache.load_frames(KEY) is None
    assert cache.save_frames(KEY, encoded())
    assert_same(cache.load_frames(KEY), encoded())
    for change in ({"precision": "bf16"}, {"preprocessing": "resize360x640-crop224-imagenet-tensor"},
                   {"fps": 2.0}, {"start": 1.0}, {"content_id": "other"}, {"checkpoint_sha256": "1" * 64}):
        assert cache.path(dataclasses.replace(KEY, **change)) != cache.path(KEY), change
    prompts = PromptsKey("0" * 64, "text-a", "fp32", ("a", "b"))
    assert cache.save_prompts(prompts, np.ones((2, 8), np.float32))
    np.testing.assert_array_equal(cache.load_prompts(prompts), np.ones((2, 8), np.float32))
    for change in ({"text_model_id": "text-b"}, {"precision": "fp16"}, {"prompts": ("a", "c")}):
        assert cache.path(dataclasses.replace(prompts, **change)) != cache.path(prompts), change
    with pytest.raises(ValueError):
        cache.save_prompts(prompts, np.ones((3, 8), np.float32))  # embeddings for other prompts


def test_pipeline_keys_carry_the_precision_really_used_and_the_text_model(sample_case, loaded, tiny_model, tmp_path):
    source = open_source(sample_case.video, fps=1.0)
    assert frames_key(loaded, source).precision == "fp32"
    asked_bf16 = SurgVLPEncoder(loaded.encoder.model, loaded.encoder.tokenizer, device="cpu", precision="bf16")
    assert asked_bf16.autocast_dtype is None  # the CPU computes in float32 whatever was asked ...
    assert frames_key(dataclasses.replace(loaded, encoder=asked_bf16), source) == frames_key(loaded, source)
    assert frames_key(loaded, source).content_id == source.content_id and frames_key(loaded, source).fps == 1.0
    assert prompts_key(loaded, ["a"]).text_model_id == folder_id(tiny_model.text_model_dir)

    text = shutil.copytree(tiny_model.text_model_dir, tmp_path / "text")
    assert folder_id(text) == folder_id(tiny_model.text_model_dir)  # a copy is the same text model ...
    (text / "tokenizer_config.json").write_text(json.dumps({"do_lower_case": False}))
    assert folder_id(text) != folder_id(tiny_model.text_model_dir)  # ... another tokenizer setting is not
    relabelled = load_model("untrained-tiny", text_model=text, allow_untrained=True, device="cpu")
    assert prompts_key(relabelled, ["a"]) != prompts_key(loaded, ["a"])


def damage(path, how: str) -> None:
    whole = path.read_bytes()
    if how == "truncated":
        path.write_bytes(whole[: len(whole) // 2])
    elif how == "empty":
        path.write_bytes(b"")
    elif how == "not a zip":
        path.write_bytes(b"\x93NUMPY" + whole[6:])
    elif how == "bit flip":
        data = bytearray(whole)
        data[len(data) // 2] ^= 0xFF
        path.write_bytes(bytes(data))


@pytest.mark.parametrize("how", ["truncated", "empty", "not a zip", "bit flip"])
def test_a_damaged_entry_is_deleted_and_computed_again(tmp_path, how):
    cache = EmbeddingCache(tmp_path)
    cache.save_frames(KEY, encoded())
    damage(cache.path(KEY), how)
    assert cache.load_frames(KEY) is None
    assert not cache.path(KEY).exists()
    cache.save_frames(KEY, encoded())
    assert_same(cache.load_frames(KEY), encoded())


@pytest.mark.parametrize(
    "arrays",
    [
        {"embeddings": np.zeros((5, 8), np.float32), "times": np.zeros(4), "indices": np.zeros(5, np.int64)},
        {"embeddings": np.zeros((5, 8)), "times": np.zeros(5), "indices": np.zeros(5, np.int64)},
        {"embeddings": np.zeros((5, 8), np.float32), "times": np.zeros(5)},
        {"embeddings": np.zeros((0, 8), np.float32), "times": np.zeros(0), "indices": np.zeros(0, np.int64)},
        {"embeddings": np.zeros(5, np.float32), "times": np.zeros(5), "indices": np.zeros(5, np.int64)},
        {"embeddings": np.array([None] * 5), "times": np.zeros(5), "indices": np.zeros(5, np.int64)},
    ],
    ids=["short times", "float64 embeddings", "no indices", "no frames", "one-dimensional", "objects"],
)
def test_an_entry_with_inconsistent_arrays_is_deleted(tmp_path, arrays):
    cache = EmbeddingCache(tmp_path)
    cache.root.mkdir(exist_ok=True)
    np.savez(cache.path(KEY), **arrays)
    assert cache.load_frames(KEY) is None and not cache.path(KEY).exists()


def test_prompt_entry_for_another_prompt_count_is_deleted(tmp_path):
    cache = EmbeddingCache(tmp_path)
    key = PromptsKey("0" * 64, "text", "fp32", ("a", "b", "c"))
    cache.root.mkdir(exist_ok=True)
    np.savez(cache.path(key), embeddings=np.zeros((2, 8), np.float32))
    assert cache.load_prompts(key) is None and not cache.path(key).exists()


def test_a_truncated_entry_does_not_break_the_next_runs(sample_case, loaded, tmp_path):
    cache = EmbeddingCache(tmp_path / "cache")
    prompt_set = load_prompt_set("cholec80")
    first = embed(loaded, open_source(sample_case.video, fps=1.0), prompt_set, cache=cache, batch_size=8)
    (entry,) = cache.root.glob("frames-*.npz")
    entry.write_bytes(entry.read_bytes()[: entry.stat().st_size // 2])
    with pytest.raises(zipfile.BadZipFile):
        np.load(entry)["embeddings"]  # what every later run died of before
    again = embed(loaded, open_source(sample_case.video, fps=1.0), prompt_set, cache=cache, batch_size=8)
    assert not again.from_cache
    np.testing.assert_array_equal(again.frames, first.frames)
    assert embed(loaded, open_source(sample_case.video, fps=1.0), prompt_set, cache=cache, batch_size=8).from_cache


def test_eviction_never_removes_the_entry_just_written(tmp_path):
    probe = EmbeddingCache(tmp_path / "probe")
    probe.save_frames(KEY, encoded())
    cache = EmbeddingCache(tmp_path / "cache", limit_bytes=int(probe.size_bytes() * 1.5))  # room for one entry
    older, newer = KEY, dataclasses.replace(KEY, content_id="newer")
    cache.save_frames(older, encoded())
    cache.save_frames(newer, encoded(seed=1))
    assert cache.entries() == [cache.path(newer)]
    cache.save_frames(older, encoded())
    os.utime(cache.path(older), (0, 0))  # as if another process had read the other entry after this write
    cache.save_frames(newer, encoded(seed=1))
    os.utime(cache.path(newer), (0, 0))
    cache.evict(keep=cache.path(newer))
    assert cache.entries() == [cache.path(newer)]


def test_an_entry_larger_than_the_cache_is_not_written(tmp_path):
    cache = EmbeddingCache(tmp_path, limit_bytes=100)
    assert not cache.save_frames(KEY, encoded())
    assert cache.entries() == [] and cache.load_frames(KEY) is None


def test_unwritable_cache_folder_costs_the_entry_not_the_run(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("a file where the cache folder should be")
    cache = EmbeddingCache(blocker / "cache")
    with cache.lock(KEY):
        assert cache.load_frames(KEY) is None
        assert not cache.save_frames(KEY, encoded())


def test_lock_is_reentrant_and_serialises_threads(tmp_path):
    cache = EmbeddingCache(tmp_path)
    order = []

    def work() -> None:
        with cache.lock(KEY):
            order.append("worker")

    with cache.lock(KEY), cache.lock(KEY):  # nested in one thread: no deadlock
        worker = threading.Thread(target=work)
        worker.start()
        time.sleep(0.3)
        order.append("holder")
    worker.join(timeout=10)
    assert order == ["holder", "worker"]


# The children below are real processes importing this package; each prints one JSON line when done.
RACER = """
import hashlib, json, sys, torch
torch.set_num_threads(1)
from surgvlp.network.loading import load_model
from surgvlp.recognition.cache import EmbeddingCache
from surgvlp.recognition.pipeline import embed
from surgvlp.recognition.prompts import load_prompt_set
from surgvlp.sources import open_source
loaded = load_model("untrained-tiny", allow_untrained=True, device="cpu")
source = open_source(sys.argv[1], fps=1.0)
embedded = embed(loaded, source, load_prompt_set("cholec80"), cache=EmbeddingCache(sys.argv[2]), batch_size=8)
print(json.dumps({"from_cache": embedded.from_cache, "frames": hashlib.sha256(embedded.frames.tobytes()).hexdigest()}))
"""


def start(script: str, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", script, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def read_until(stream, text: str) -> None:
    for line in stream:
        if text in line:
            return
    raise AssertionError(f"the child ended without saying {text!r}")


def test_two_processes_embedding_one_video_encode_it_once(sample_case, loaded, tmp_path):
    cache = EmbeddingCache(tmp_path / "cache")
    key = frames_key(loaded, open_source(sample_case.video, fps=1.0))
    children = []
    watchdog = threading.Timer(600, lambda: [child.kill() for child in children])
    watchdog.start()
    try:
        with cache.lock(key):  # both children reach the entry while it is locked, so that they really race
            children += [start(RACER, str(sample_case.video), str(cache.root)) for _ in range(2)]
            for child in children:
                read_until(child.stderr, "another process is computing")
        results = []
        for child in children:
            out, err = child.communicate()
            assert child.returncode == 0, err
            results.append(json.loads(out.splitlines()[-1]))
    finally:
        watchdog.cancel()
    assert sorted(result["from_cache"] for result in results) == [False, True], "one encoded, the other read its entry"
    assert results[0]["frames"] == results[1]["frames"]
    assert cache.load_frames(key) is not None and list(cache.root.glob("*.lock")) == []


CHURNER = """
import sys
import numpy as np
from surgvlp.network.encoded import EncodedFrames
from surgvlp.recognition.cache import EmbeddingCache, FramesKey
cache = EmbeddingCache(sys.argv[1], limit_bytes=int(sys.argv[2]))
rng = np.random.default_rng(int(sys.argv[3]))
seen = 0
for step in range(150):
    key = FramesKey(f"video-{rng.integers(12)}", "0" * 64, 1.0, 0.0, 9.0, "p", "fp32")
    with cache.lock(key):
        stored = cache.load_frames(key)
        if stored is None:
            times = np.arange(9.0)
            embeddings = np.full((9, 64), float(key.content_id[6:]), np.float32)
            cache.save_frames(key, EncodedFrames(embeddings, times, times.astype(np.int64)))
        else:
            assert (stored.embeddings == float(key.content_id[6:])).all(), "an entry holds another entry's arrays"
            seen += 1
    cache.entries(), cache.size_bytes()
print(seen)
"""


def test_two_processes_churning_a_small_cache_never_fail(tmp_path):
    cache = EmbeddingCache(tmp_path / "cache")
    entry_bytes = 9 * 64 * 4 + 9 * 8 * 2
    limit = 3 * entry_bytes + 1000  # room for about three of twelve entries: constant eviction
    children = [start(CHURNER, str(cache.root), str(limit), str(seed)) for seed in (1, 2)]
    for child in children:
        out, err = child.communicate(timeout=600)
        assert child.returncode == 0, err
        assert int(out) > 0, "some lookups hit"
    assert cache.size_bytes() <= limit + entry_bytes + 1000
    for path in cache.entries():
        with np.load(path) as stored:
            assert stored["embeddings"].shape == (9, 64), "every entry left behind is whole"


HOLDER = """
import sys, time
from surgvlp.recognition.cache import EmbeddingCache, FramesKey
key = FramesKey("content", "0" * 64, 1.0, 0.0, 21.0, "resize360x640-crop224-imagenet", "fp32")
with EmbeddingCache(sys.argv[1]).lock(key):
    print("locked", flush=True)
    time.sleep(600)
"""


def test_a_lock_left_by_a_killed_process_blocks_no_one(tmp_path):
    cache = EmbeddingCache(tmp_path)
    holder = start(HOLDER, str(tmp_path))
    read_until(holder.stdout, "locked")
    holder.kill()
    holder.wait()
    assert list(tmp_path.glob("*.lock")), "the killed holder left its lock file behind"
    acquired = threading.Event()

    def take() -> None:
        with cache.lock(KEY):
            acquired.set()

    threading.Thread(target=take, daemon=True).start()
    assert acquired.wait(timeout=30)
    holder = start(HOLDER, str(tmp_path))
    read_until(holder.stdout, "locked")
    holder.kill()
    holder.wait()
    cache.clear()
    assert list(tmp_path.glob("*.lock")) == [], "cache clear removes lock files nobody holds"
