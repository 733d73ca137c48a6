"""Zero-shot phase and tool recognition over one frame source: embeddings (cached) -> scores -> timeline.

The CLI, the bundle configs and the MONAI Label app all call these two functions, so a timeline means the
same thing wherever it was produced.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from surgvlp.recognition.adapter import PhaseAdapter
from surgvlp.recognition.cache import CacheKey, EmbeddingCache, FramesKey, PromptsKey
from surgvlp.recognition.decoding import PHASE_LOGIT_SCALE, DecoderSettings, decode, phase_probabilities, presence_intervals, segments, tool_scores
from surgvlp.errors import SurgVLPError
from surgvlp.network.encoder import AUTOCAST_DTYPES, EncodedFrames
from surgvlp.network.loading import LoadedModel
from surgvlp.network.preprocess import CROP, RESIZE
from surgvlp.recognition.prompts import PromptSet
from surgvlp.sources import FrameSource
from surgvlp.recognition.timeline import Timeline

DEFAULT_TOOL_THRESHOLD = 0.5


@dataclass(frozen=True)
class FrameEmbeddings:
    """A source's frame embeddings with the class embeddings of a prompt set, ready to score."""

    frames: np.ndarray
    times: np.ndarray
    classes: np.ndarray
    fps: float
    from_cache: bool


PREPROCESSING = f"resize{RESIZE[0]}x{RESIZE[1]}-crop{CROP}-imagenet"


def frames_key(loaded: LoadedModel, source: FrameSource) -> FramesKey:
    """The cache key of ``source``'s frame embeddings by ``loaded``."""
    return FramesKey(
        source.content_id, loaded.sha256, source.fps, source.start, source.end, PREPROCESSING, _precision(loaded)
    )


def prompts_key(loaded: LoadedModel, prompts: Sequence[str]) -> PromptsKey:
    """The cache key of the embeddings of ``prompts`` by ``loaded``."""
    return PromptsKey(loaded.sha256, loaded.text_model_id, _precision(loaded), tuple(prompts))


def _precision(loaded: LoadedModel) -> str:
    """The arithmetic the encoder really runs in: fp32 on the CPU whatever was asked, its autocast type on CUDA."""
    return {dtype: name for name, dtype in AUTOCAST_DTYPES.items()}.get(loaded.encoder.autocast_dtype, "fp32")


def embed(
    loaded: LoadedModel,
    source: FrameSource,
    prompt_set: PromptSet,
    cache: EmbeddingCache | None,
    batch_size: int = 64,
    on_batch: Callable[[int], None] | None = None,
    decode_workers: int = 0,
) -> FrameEmbeddings:
    """Frame and class embeddings, through ``cache`` unless it is None (then nothing is read or kept)."""
    prompts = prompt_set.all_prompts()

    def encode_frames() -> EncodedFrames:
        return loaded.encoder.encode_source(source, batch_size=batch_size, on_batch=on_batch, decode_workers=decode_workers)

    def encode_prompts() -> np.ndarray:
        return loaded.encoder.encode_prompts(prompts)

    if cache is None:
        encoded, hit, prompt_embeddings = encode_frames(), False, encode_prompts()
    else:
        encoded, hit = _through(cache, frames_key(loaded, source), cache.load_frames, cache.save_frames, encode_frames)
        prompt_embeddings, _ = _through(
            cache, prompts_key(loaded, prompts), cache.load_prompts, cache.save_prompts, encode_prompts
        )
    fps = source.fps or source.native_fps
    return FrameEmbeddings(encoded.embeddings, encoded.times, prompt_set.class_embeddings(prompt_embeddings), fps, hit)


def _through(cache: EmbeddingCache, key: CacheKey, load: Callable, save: Callable, compute: Callable) -> tuple[Any, bool]:
    """The entry of ``key`` and whether it was stored, computed and stored when absent; under the entry's
    lock, so that a second process asking for it meanwhile waits and then reads it."""
    with cache.lock(key):
        stored = load(key)
        if stored is not None:
            return stored, True
        value = compute()
        save(key, value)
        return value, False


def _require_task(prompt_set: PromptSet, task: str) -> None:
    if prompt_set.task != task:
        raise SurgVLPError(f"prompt set {prompt_set.name!r} is for {prompt_set.task} recognition, not {task}")


def phase_timeline(
    loaded: LoadedModel,
    source: FrameSource,
    prompt_set: PromptSet,
    embeddings: FrameEmbeddings,
    settings: DecoderSettings,
    adapter: PhaseAdapter | None = None,
) -> Timeline:
    """Per-frame phase probabilities (zero-shot, or from a trained adapter) decoded into segments."""
    _require_task(prompt_set, "phase")
    if adapter is None:
        probabilities = phase_probabilities(embeddings.frames, embeddings.classes)
    else:
        adapter.check_classes(prompt_set)
        probabilities = adapter.probabilities(embeddings.frames)
    labels = decode(probabilities, embeddings.fps, settings, prompt_set)
    model = loaded.describe() | ({"adapter": adapter.describe()} if adapter is not None else {})
    return Timeline(
        source=source.description,
        model=model,
        prompt_set=prompt_set,
        decoder=settings.to_dict(),
        times=embeddings.times,
        scores=probabilities,
        segments=segments(labels, embeddings.times, probabilities, end=source.end),
        labels=labels,
    )


def tool_timeline(
    loaded: LoadedModel,
    source: FrameSource,
    prompt_set: PromptSet,
    embeddings: FrameEmbeddings,
    threshold: float = DEFAULT_TOOL_THRESHOLD,
    min_duration: float = 0.0,
) -> Timeline:
    """Independent per-tool presence scores and the intervals where each reaches ``threshold``."""
    _require_task(prompt_set, "tool")
    if not 0 < threshold < 1:
        raise SurgVLPError(f"tool threshold must lie between 0 and 1, got {threshold}")
    scores = tool_scores(embeddings.frames, embeddings.classes)
    return Timeline(
        source=source.description,
        model=loaded.describe(),
        prompt_set=prompt_set,
        # offset None: each frame is centred on its mean cosine over the tools (see decoding.tool_scores)
        decoder={"threshold": threshold, "min_duration": min_duration, "scale": PHASE_LOGIT_SCALE, "offset": None},
        times=embeddings.times,
        scores=scores,
        segments=presence_intervals(scores, embeddings.times, threshold, embeddings.fps, min_duration, end=source.end),
    )
