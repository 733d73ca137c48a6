"""Batched inference: frames and prompts in, embeddings out, on whatever device is best.

Frames are decoded, and with the default preprocessing also resized and cropped, in the frame source's
thread; batching and normalising them runs in another background thread while the model works on the previous
batch, so the image encoder, not the preprocessing, sets the pace.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import nullcontext
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np
import torch

from surgvlp.background import iterate_in_background
from surgvlp.network.checkpoint import load_network
from surgvlp.network.encoded import EncodedFrames
from surgvlp.errors import SurgVLPError
from surgvlp.network.crop import pil_crop
from surgvlp.network.model import SurgVLP
from surgvlp.network.preprocess import (
    DEFAULT_PREPROCESS,
    PreprocessMode,
    check_preprocess,
    crop_frame,
    crops_to_model_input,
    preprocessing_id,
    to_model_input,
)
from surgvlp.network.text import PromptTokenizer
from surgvlp.progress import CancelToken, Progress

if TYPE_CHECKING:
    from surgvlp.sources import FrameSource

Precision = Literal["auto", "bf16", "fp16", "fp32"]
AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
PREFETCH_BATCHES = 2


def pick_device(device: str | torch.device | None = None) -> torch.device:
    """CUDA when present, else the CPU; an explicit request for a missing CUDA device is an error."""
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SurgVLPError("--device cuda was requested but no CUDA device is available; use --device cpu")
    return device


def _autocast_dtype(device: torch.device, precision: Precision) -> torch.dtype | None:
    """bf16 (or fp16) autocast on CUDA; the CPU always computes in float32, where autocast only costs accuracy."""
    if device.type != "cuda" or precision == "fp32":
        return None
    if precision == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return AUTOCAST_DTYPES[precision]


def _batched(
    frames: Iterable[np.ndarray], batch_size: int, prepare: Callable[[list[np.ndarray]], torch.Tensor]
) -> Iterator[torch.Tensor]:
    batch: list[np.ndarray] = []
    for frame in frames:
        batch.append(frame)
        if len(batch) == batch_size:
            yield prepare(batch)
            batch = []
    if batch:
        yield prepare(batch)


class SurgVLPEncoder:
    """A loaded SurgVLP-family model on a device, with its tokenizer and its way of preparing frames.

    ``preprocess`` is ``"pil"`` (upstream's pixels exactly) or ``"tensor"`` (faster, not identical); see
    :mod:`surgvlp.network.preprocess`. A model loaded without its text encoder (no tokenizer) embeds frames only.

    One encoder may serve several threads (the MONAI Label app runs each job in its own): their forward passes
    take turns, batch by batch, because two forwards at once on the same cores are many times slower than one
    after the other, and a caller whose frames are cached never waits for the lock at all.
    """

    def __init__(
        self,
        model: SurgVLP,
        tokenizer: PromptTokenizer | None,
        device: str | torch.device | None = None,
        precision: Precision = "auto",
        preprocess: PreprocessMode = DEFAULT_PREPROCESS,
    ) -> None:
        self.preprocess = check_preprocess(preprocess)
        self.device = pick_device(device)
        self.autocast_dtype = _autocast_dtype(self.device, precision)
        self.model = model.eval().to(self.device)
        if self.device.type == "cuda":
            self.model.backbone_img.to(memory_format=torch.channels_last)
        self.tokenizer = tokenizer
        self._forward_lock = threading.Lock()

    @property
    def compute_precision(self) -> str:
        """The precision the numbers are actually computed in (``auto`` resolved): part of every cache key."""
        names = {dtype: name for name, dtype in AUTOCAST_DTYPES.items()}
        return names.get(self.autocast_dtype, "fp32")

    @property
    def preprocessing(self) -> str:
        """How frames become model input: embeddings made another way are other numbers."""
        return preprocessing_id(self.preprocess)

    @classmethod
    def from_files(
        cls,
        checkpoint: Path,
        text_model_dir: Path,
        device: str | torch.device | None = None,
        precision: Precision = "auto",
        preprocess: PreprocessMode = DEFAULT_PREPROCESS,
        text_encoder: bool = True,
    ) -> SurgVLPEncoder:
        model, tokenizer = load_network(checkpoint, text_model_dir, text_encoder=text_encoder)
        return cls(model, tokenizer, device=device, precision=precision, preprocess=preprocess)

    def _autocast(self):
        if self.autocast_dtype is None:
            return nullcontext()
        return torch.autocast(self.device.type, dtype=self.autocast_dtype)

    def _forward(self, images: torch.Tensor, network: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
        images = images.to(self.device, non_blocking=True)
        if self.device.type == "cuda":
            images = images.contiguous(memory_format=torch.channels_last)
        with self._forward_lock, self._autocast():
            return network(images).float().cpu()

    @torch.inference_mode()
    def encode_images(self, images: torch.Tensor) -> torch.Tensor:
        """Preprocessed (N, 3, 224, 224) images -> (N, 768) float32 embeddings on the CPU."""
        return self._forward(images, self.model.encode_image)

    @torch.inference_mode()
    def encode_dense(self, images: torch.Tensor) -> torch.Tensor:
        """Preprocessed (N, 3, H, W) images -> (N, 768, H/32, W/32) float32 per-cell embeddings on the CPU."""
        return self._forward(images, self.model.backbone_img.dense_embeddings)

    @torch.inference_mode()
    def encode_prompts(self, prompts: Sequence[str]) -> np.ndarray:
        """(P, 768) float32 text embeddings, not normalised."""
        if self.tokenizer is None:
            raise SurgVLPError("this model was loaded without its text encoder, so it cannot embed prompts")
        tokens = {key: value.to(self.device) for key, value in self.tokenizer(list(prompts)).items()}
        with self._forward_lock, self._autocast():
            return self.model.encode_text(**tokens).float().cpu().numpy()

    def encode_frames(
        self,
        frames: Iterable[np.ndarray],
        batch_size: int = 64,
        prepare: Callable[[list[np.ndarray]], torch.Tensor] | None = None,
        progress: Progress | None = None,
        total: int = 0,
        cancel: CancelToken | None = None,
        encode: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ) -> np.ndarray:
        """(H, W, 3) uint8 RGB frames -> (N, 768) float32 embeddings, preprocessing overlapped with the model.

        ``prepare`` turns a list of frames into model input (by default they are resized, cropped and
        normalised the encoder's way, see ``preprocess``); ``encode`` turns that input into each batch's
        result (by default :meth:`encode_images`), so that a caller can reduce large per-batch outputs, such
        as dense maps, before the next batch arrives.
        ``progress`` hears (frames done, ``total``) after each batch; ``cancel`` is checked before each batch,
        so a cancel stops the work within one batch (the background preparation stops with it).
        """
        if batch_size < 1:
            raise SurgVLPError(f"batch size must be at least 1, got {batch_size}")
        batches = _batched(frames, batch_size, prepare or partial(to_model_input, mode=self.preprocess))
        if self.device.type == "cuda":
            batches = (batch.pin_memory() for batch in batches)
        embeddings = []
        done = 0
        for batch in iterate_in_background(batches, depth=PREFETCH_BATCHES, name="surgvlp-preprocess"):
            if cancel is not None:
                cancel.check()
            embeddings.append((encode or self.encode_images)(batch))
            done += len(batch)
            if progress is not None:
                progress(done, total)
        if not embeddings:
            raise SurgVLPError("no frames to encode")
        return torch.cat(embeddings).numpy()

    def encode_source(
        self,
        source: FrameSource,
        batch_size: int = 64,
        decode_workers: int = 0,
        progress: Progress | None = None,
        cancel: CancelToken | None = None,
    ) -> EncodedFrames:
        """Encode every frame a frame source yields, keeping the time and index of each.

        With ``decode_workers`` > 1 the source is decoded by that many processes, which also crop the
        frames, for long videos where one decoder cannot keep the model busy (see
        :mod:`surgvlp.sources.parallel`); the embeddings are the same.
        """
        if decode_workers > 1:
            from surgvlp.sources.parallel import iterate_parallel

            transform = partial(crop_frame, mode=self.preprocess)
            frames, prepare = iterate_parallel(source, decode_workers, transform=transform), crops_to_model_input
        elif self.preprocess == "pil":  # cropped in the decoding thread, which takes over a prefetch with this crop
            frames, prepare = source.iterate(pil_crop), crops_to_model_input
        else:  # the tensor resize is faster on whole batches
            frames, prepare = iter(source), None
        times: list[float] = []
        indices: list[int] = []

        def images() -> Iterator[np.ndarray]:
            for frame in frames:
                times.append(frame.time)
                indices.append(frame.index)
                yield frame.image

        embeddings = self.encode_frames(
            images(), batch_size=batch_size, prepare=prepare, progress=progress, total=len(source), cancel=cancel
        )
        return EncodedFrames(embeddings, np.asarray(times, dtype=np.float64), np.asarray(indices, dtype=np.int64))
