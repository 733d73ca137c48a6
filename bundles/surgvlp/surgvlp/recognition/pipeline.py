"""Zero-shot phase and tool recognition over one frame source: embeddings (cached) -> scores -> timeline.

The CLI, the bundle configs and the MONAI Label app all call these two functions, so a timeline means the
same thing wherever it was produced.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from surgvlp.recognition.adapter import PhaseAdapter
from surgvlp.recognition.cache import EmbeddingCache
from surgvlp.recognition.decoding import PHASE_LOGIT_SCALE, DecoderSettings, decode, phase_probabilities, presence_intervals, segments, tool_scores
from surgvlp.errors import SurgVLPError
from surgvlp.network.loading import LoadedModel
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
    encoding = {"batch_size": batch_size, "on_batch": on_batch, "decode_workers": decode_workers}
    if cache is None:
        encoded, hit = loaded.encoder.encode_source(source, **encoding), False
        prompt_embeddings = loaded.encoder.encode_prompts(prompt_set.all_prompts())
    else:
        encoded, hit = cache.frames(loaded.encoder, source, loaded.sha256, **encoding)
        prompt_embeddings = cache.prompts(loaded.encoder, prompt_set.all_prompts(), loaded.sha256)
    fps = source.fps or source.native_fps
    return FrameEmbeddings(encoded.embeddings, encoded.times, prompt_set.class_embeddings(prompt_embeddings), fps, hit)


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
