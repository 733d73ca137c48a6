"""SurgVLP-family surgical video-language models (SurgVLP, HecVL, PeskaVLP) for zero-shot video understanding.

This package is the code of the MONAI bundle ``bundles/surgvlp``. The CLI, the bundle configs, the MONAI Label
app and the benchmarks all use the small API below, so each piece of logic lives once::

    import surgvlp

    model = surgvlp.load_model("peskavlp", device="cuda")          # variant, checkpoint file or weights folder
    source = surgvlp.open_source("case.mp4", fps=1)                # a path, bytes or a binary file object
    timeline = surgvlp.recognise_phases(model, source, "cholec80", decoder="viterbi", progress=print)
    tools = surgvlp.recognise_tools(model, source)
    embeddings = surgvlp.embed(model, source, "cholec80")          # reused by phase_timeline(embeddings, ...)
    frames = surgvlp.read_frames(source)                           # (T, H, W, 3) uint8 and their times
    volume = surgvlp.write_frame_volume(source, "frames.nrrd")     # the same frames as an RGB volume for Slicer
    adapter = surgvlp.train_adapter(model, [(source, surgvlp.read_truth("case.txt", classes))])  # few-shot head
    masks = surgvlp.segment(model, source, "the clipper", sam2=surgvlp.load_sam2("sam2-tiny"))  # labels: (T, H, W)

Names are imported on first use, so ``import surgvlp`` (and ``surgvlp --help``) does not pay for torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "load_model": "surgvlp.network.loading",
    "LoadedModel": "surgvlp.network.loading",
    "open_source": "surgvlp.sources",
    "FrameSource": "surgvlp.sources",
    "read_frames": "surgvlp.sources.frame_array",
    "SampledFrames": "surgvlp.sources.frame_array",
    "write_frame_volume": "surgvlp.sources.frame_volume",
    "FrameVolume": "surgvlp.sources.frame_volume",
    "load_prompt_set": "surgvlp.recognition.prompts",
    "PromptSet": "surgvlp.recognition.prompts",
    "embed": "surgvlp.recognition.pipeline",
    "Embeddings": "surgvlp.recognition.pipeline",
    "recognise_phases": "surgvlp.recognition.pipeline",
    "recognise_tools": "surgvlp.recognition.pipeline",
    "phase_timeline": "surgvlp.recognition.pipeline",
    "tool_timeline": "surgvlp.recognition.pipeline",
    "train_adapter": "surgvlp.recognition.pipeline",
    "Annotation": "surgvlp.recognition.evaluation",
    "read_truth": "surgvlp.recognition.evaluation",
    "timeline_truth": "surgvlp.recognition.evaluation",
    "DecoderSettings": "surgvlp.recognition.decoding",
    "Timeline": "surgvlp.recognition.timeline",
    "read_timeline": "surgvlp.recognition.timeline",
    "EmbeddingCache": "surgvlp.recognition.cache",
    "PhaseAdapter": "surgvlp.recognition.adapter",
    "CancelToken": "surgvlp.progress",
    "Cancelled": "surgvlp.progress",
    "segment": "surgvlp.segmentation.pipeline",
    "Segmentation": "surgvlp.segmentation.result",
    "load_sam2": "surgvlp.segmentation.tracking",
    "Sam2Tracker": "surgvlp.segmentation.tracking",
    "SurgVLPError": "surgvlp.errors",
}

__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:
    from surgvlp.errors import SurgVLPError
    from surgvlp.network.loading import LoadedModel, load_model
    from surgvlp.progress import CancelToken, Cancelled
    from surgvlp.recognition.adapter import PhaseAdapter
    from surgvlp.recognition.cache import EmbeddingCache
    from surgvlp.recognition.decoding import DecoderSettings
    from surgvlp.recognition.evaluation import Annotation, read_truth, timeline_truth
    from surgvlp.recognition.pipeline import (
        Embeddings,
        embed,
        phase_timeline,
        recognise_phases,
        recognise_tools,
        tool_timeline,
        train_adapter,
    )
    from surgvlp.recognition.prompts import PromptSet, load_prompt_set
    from surgvlp.recognition.timeline import Timeline, read_timeline
    from surgvlp.segmentation.pipeline import segment
    from surgvlp.segmentation.result import Segmentation
    from surgvlp.segmentation.tracking import Sam2Tracker, load_sam2
    from surgvlp.sources import FrameSource, open_source
    from surgvlp.sources.frame_array import SampledFrames, read_frames
    from surgvlp.sources.frame_volume import FrameVolume, write_frame_volume


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'surgvlp' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
