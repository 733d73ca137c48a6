"""Zero-shot phase and tool recognition over one frame source: embeddings (cached) -> scores -> timeline.

The CLI, the bundle configs, the MONAI Label app and the benchmarks all come through here, so a timeline
means the same thing wherever it was produced. The cache only stores and looks up; running the encoder on a
miss is this module's job.

Embeddings carry the identity of what made them (checkpoint, text model, precision, preprocessing, prompt
set, video content and sampling). Decoding checks it, so embeddings made with one prompt set can never be
labelled with another set's class names, nor scored by an adapter trained on another checkpoint.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from surgvlp.errors import SurgVLPError
from surgvlp.network.loading import LoadedModel
from surgvlp.progress import CancelToken, Progress
from surgvlp.recognition.adapter import PhaseAdapter
from surgvlp.recognition.cache import CacheKey, EmbeddingCache, FramesKey, PromptsKey
from surgvlp.recognition.decoding import DecoderSettings, decode, presence_intervals, segments
from surgvlp.recognition.evaluation import Annotation, align
from surgvlp.recognition.prompts import PromptSet, load_prompt_set
from surgvlp.recognition.scoring import PHASE_LOGIT_SCALE, phase_probabilities, tool_scores
from surgvlp.recognition.timeline import Timeline
from surgvlp.sources import FrameSource

DEFAULT_TOOL_THRESHOLD = 0.5


@dataclass(frozen=True)
class Embeddings:
    """A source's frame embeddings and a prompt set's class embeddings, with the identity of what made them."""

    frames: np.ndarray  # (T, 768) float32, not normalised
    times: np.ndarray  # (T,) seconds
    indices: np.ndarray  # (T,) frame index in the source
    classes: np.ndarray  # (C, 768) unit-length class embeddings
    prompt_set: PromptSet
    fps: float
    end: float | None
    source: dict[str, Any]
    model: dict[str, Any]
    identity: dict[str, Any]
    from_cache: bool

    def require_prompt_set(self, prompt_set: PromptSet | None) -> None:
        """Refuse a prompt set other than the one these embeddings were made with."""
        if prompt_set is not None and prompt_set.digest != self.identity["prompt_set"]:
            raise SurgVLPError(
                f"these embeddings were made with prompt set {self.prompt_set.name!r}, not {prompt_set.name!r}; "
                "embed again with the prompt set to decode"
            )

    def require_adapter(self, adapter: PhaseAdapter) -> None:
        """Refuse an adapter trained on another checkpoint's embeddings or for other classes."""
        if adapter.checkpoint_sha256 != self.identity["checkpoint_sha256"]:
            raise SurgVLPError(
                f"the adapter was trained on the embeddings of another checkpoint (SHA-256 {adapter.checkpoint_sha256[:12]}…), "
                f"not on these ({self.identity['checkpoint_sha256'][:12]}…)"
            )
        adapter.check_classes(self.prompt_set)


def _prompt_set(prompt_set: PromptSet | str | Path) -> PromptSet:
    return prompt_set if isinstance(prompt_set, PromptSet) else load_prompt_set(prompt_set)


def _cache(cache: EmbeddingCache | bool) -> EmbeddingCache | None:
    if cache is True:
        return EmbeddingCache()
    return cache or None


def frames_key(model: LoadedModel, source: FrameSource) -> FramesKey:
    """Everything the frame embeddings of ``source`` depend on: their cache key and identity."""
    encoder = model.encoder
    return FramesKey(
        source.content_id, model.sha256, source.fps, source.start, source.end, encoder.preprocessing, encoder.compute_precision
    )


def prompts_key(model: LoadedModel, prompts: list[str]) -> PromptsKey:
    """Everything the embeddings of ``prompts`` depend on."""
    return PromptsKey(model.sha256, model.text_model_id, model.encoder.compute_precision, tuple(prompts))


def _through(store: EmbeddingCache | None, key: CacheKey, compute: Callable[[], Any]) -> tuple[Any, bool]:
    """The entry of ``key`` and whether it came from the cache; computed and stored when absent, under the
    entry's lock, so that a second process asking for it meanwhile waits and then reads it."""
    if store is None:
        return compute(), False
    frames = isinstance(key, FramesKey)
    load, save = (store.load_frames, store.save_frames) if frames else (store.load_prompts, store.save_prompts)
    with store.lock(key):
        stored = load(key)
        if stored is not None:
            return stored, True
        value = compute()
        save(key, value)
        return value, False


def embed(
    model: LoadedModel,
    source: FrameSource,
    prompt_set: PromptSet | str | Path = "cholec80",
    *,
    cache: EmbeddingCache | bool = True,
    batch_size: int = 64,
    decode_workers: int = 0,
    progress: Progress | None = None,
    cancel: CancelToken | None = None,
) -> Embeddings:
    """Frame embeddings of ``source`` (through the cache) and class embeddings of ``prompt_set``.

    ``cache`` is an :class:`EmbeddingCache`, True for the default one, or False to neither read nor fill one.
    A cancelled run raises :class:`surgvlp.Cancelled` before anything is stored.
    """
    prompt_set = _prompt_set(prompt_set)
    store = _cache(cache)
    prompts = prompt_set.all_prompts()
    key = frames_key(model, source)
    encoded, from_cache = _through(
        store,
        key,
        lambda: model.encoder.encode_source(
            source, batch_size=batch_size, decode_workers=decode_workers, progress=progress, cancel=cancel
        ),
    )
    if from_cache:
        source.drop_prefetch()
        if progress is not None:
            progress(len(encoded.times), len(encoded.times))
    prompt_embeddings, _ = _through(store, prompts_key(model, prompts), lambda: model.encoder.encode_prompts(prompts))
    return Embeddings(
        frames=encoded.embeddings,
        times=encoded.times,
        indices=encoded.indices,
        classes=prompt_set.class_embeddings(prompt_embeddings),
        prompt_set=prompt_set,
        fps=source.fps or source.native_fps,
        end=source.end,
        source=source.description,
        model=model.describe(),
        identity=asdict(key) | {"text_model_id": model.text_model_id, "prompt_set": prompt_set.digest},
        from_cache=from_cache,
    )


def _require_task(prompt_set: PromptSet, task: str) -> None:
    if prompt_set.task != task:
        raise SurgVLPError(f"prompt set {prompt_set.name!r} is for {prompt_set.task} recognition, not {task}")


def _require_threshold(threshold: float) -> None:
    if not 0 < threshold < 1:
        raise SurgVLPError(f"tool threshold must lie between 0 and 1, got {threshold}")


def phase_timeline(
    embeddings: Embeddings,
    settings: DecoderSettings | None = None,
    adapter: PhaseAdapter | None = None,
    prompt_set: PromptSet | None = None,
) -> Timeline:
    """Per-frame phase probabilities (zero-shot, or from a trained adapter) decoded into segments.

    ``prompt_set``, when given, must be the one the embeddings were made with.
    """
    embeddings.require_prompt_set(prompt_set)
    prompt_set = embeddings.prompt_set
    _require_task(prompt_set, "phase")
    settings = settings or DecoderSettings()
    if adapter is None:
        probabilities = phase_probabilities(embeddings.frames, embeddings.classes)
    else:
        embeddings.require_adapter(adapter)
        probabilities = adapter.probabilities(embeddings.frames)
    labels = decode(probabilities, embeddings.fps, settings, prompt_set)
    model = embeddings.model | ({"adapter": adapter.describe()} if adapter is not None else {})
    return Timeline(
        source=embeddings.source,
        model=model,
        prompt_set=prompt_set,
        decoder=settings.to_dict(),
        times=embeddings.times,
        scores=probabilities,
        segments=segments(labels, embeddings.times, probabilities, end=embeddings.end),
        labels=labels,
    )


def tool_timeline(
    embeddings: Embeddings,
    threshold: float = DEFAULT_TOOL_THRESHOLD,
    min_segment: float = 0.0,
    prompt_set: PromptSet | None = None,
) -> Timeline:
    """Independent per-tool presence scores and the intervals where each reaches ``threshold``."""
    embeddings.require_prompt_set(prompt_set)
    prompt_set = embeddings.prompt_set
    _require_task(prompt_set, "tool")
    _require_threshold(threshold)
    scores = tool_scores(embeddings.frames, embeddings.classes)
    return Timeline(
        source=embeddings.source,
        model=embeddings.model,
        prompt_set=prompt_set,
        # offset None: each frame is centred on its mean cosine over the tools (see scoring.tool_scores)
        decoder={"threshold": threshold, "min_segment": min_segment, "scale": PHASE_LOGIT_SCALE, "offset": None},
        times=embeddings.times,
        scores=scores,
        segments=presence_intervals(scores, embeddings.times, threshold, embeddings.fps, min_segment, end=embeddings.end),
    )


def recognise_phases(
    model: LoadedModel,
    source: FrameSource,
    prompt_set: PromptSet | str | Path = "cholec80",
    *,
    decoder: str = "argmax",
    min_segment: float = 0.0,
    adapter: PhaseAdapter | None = None,
    **embedding: Any,
) -> Timeline:
    """The phase timeline of a frame source; ``embedding`` takes :func:`embed`'s keyword arguments."""
    settings = DecoderSettings(method=decoder, min_segment=min_segment)  # bad settings fail before the encoder runs
    prompt_set = _prompt_set(prompt_set)
    _require_task(prompt_set, "phase")
    if adapter is not None:
        adapter.check_classes(prompt_set)
    return phase_timeline(embed(model, source, prompt_set, **embedding), settings, adapter)


def recognise_tools(
    model: LoadedModel,
    source: FrameSource,
    prompt_set: PromptSet | str | Path = "cholec80-tools",
    *,
    threshold: float = DEFAULT_TOOL_THRESHOLD,
    min_segment: float = 0.0,
    **embedding: Any,
) -> Timeline:
    """Tool presence over a frame source; ``embedding`` takes :func:`embed`'s keyword arguments."""
    prompt_set = _prompt_set(prompt_set)
    _require_task(prompt_set, "tool")
    _require_threshold(threshold)
    return tool_timeline(embed(model, source, prompt_set, **embedding), threshold, min_segment)


def train_adapter(
    model: LoadedModel,
    cases: Sequence[tuple[FrameSource, Annotation]],
    prompt_set: PromptSet | str | Path = "cholec80",
    *,
    epochs: int = 300,
    progress: Progress | None = None,
    cancel: CancelToken | None = None,
    **embedding: Any,
) -> PhaseAdapter:
    """A few-shot phase head trained on labelled videos, started from ``prompt_set``'s zero-shot classifier.

    Each case is a frame source and its true phases (from an annotation file or a corrected timeline); only the
    frames the truth covers count. Embeddings come through the cache, so videos the server has already
    recognised cost no encoder time. The adapter's ``history`` records how many frames it learnt from and how
    many of them it labels right afterwards (``training_accuracy``). ``progress`` hears (frames done, frames in all) over all cases;
    ``embedding`` takes :func:`embed`'s other keyword arguments.
    """
    prompt_set = _prompt_set(prompt_set)
    _require_task(prompt_set, "phase")
    if not cases:
        raise SurgVLPError("no labelled videos to train the adapter on")
    total = sum(len(source) for source, _ in cases)
    features, labels, before = [], [], 0
    for source, truth in cases:
        report = None if progress is None else (lambda done, _all, before=before: progress(before + done, total))
        embedded = embed(model, source, prompt_set, progress=report, cancel=cancel, **embedding)
        covered, true_labels = align(embedded.times, truth)
        features.append(embedded.frames[covered])
        labels.append(true_labels)
        before += len(source)
    adapter = PhaseAdapter.from_prompts(prompt_set, embedded.classes, model.sha256, model.untrained)
    adapter.fit(features, labels, epochs=epochs)
    predicted = [adapter.probabilities(frames).argmax(axis=1) for frames in features]
    adapter.history["training_accuracy"] = float(np.mean(np.concatenate(predicted) == np.concatenate(labels)))
    return adapter
