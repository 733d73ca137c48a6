"""On-disk cache of frame and prompt embeddings.

Frame embeddings are the expensive part (the image encoder over every sampled frame); they depend only on the
video's content, the checkpoint and the sampling, so a new prompt set, decoder or threshold is answered from
the cache without touching the image encoder. Entries are plain ``.npz`` files, evicted least recently used
first once the cache exceeds its size limit.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from surgvlp.atomic import atomic_write
from surgvlp.network.encoder import EncodedFrames, SurgVLPEncoder
from surgvlp.errors import SurgVLPError
from surgvlp.network.preprocess import CROP, RESIZE
from surgvlp.sources import FrameSource

CACHE_DIR_ENV = "SURGVLP_CACHE_DIR"
CACHE_LIMIT_ENV = "SURGVLP_CACHE_LIMIT_MB"
DEFAULT_LIMIT_MB = 2048
PREPROCESSING = f"resize{RESIZE[0]}x{RESIZE[1]}-crop{CROP}-imagenet"


def default_cache_dir() -> Path:
    return Path(os.environ.get(CACHE_DIR_ENV) or Path.home() / ".cache" / "surgvlp" / "embeddings")


def _limit_bytes() -> int:
    """The size limit from the environment: a finite number of megabytes, 0 or more (0 keeps nothing)."""
    value = os.environ.get(CACHE_LIMIT_ENV) or str(DEFAULT_LIMIT_MB)  # empty means unset, as for the folder
    try:
        megabytes = float(value)
    except ValueError:
        megabytes = math.nan
    if not (math.isfinite(megabytes) and megabytes >= 0):
        raise SurgVLPError(f"{CACHE_LIMIT_ENV}={value!r}: expected a number of megabytes, 0 or more")
    return int(megabytes * 1024 * 1024)


def _digest(parts: dict[str, object]) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:32]


class EmbeddingCache:
    def __init__(self, root: Path | None = None, limit_bytes: int | None = None) -> None:
        self.root = Path(root) if root else default_cache_dir()
        self.limit_bytes = _limit_bytes() if limit_bytes is None else limit_bytes

    def _entry(self, kind: str, parts: dict[str, object]) -> Path:
        return self.root / f"{kind}-{_digest(parts)}.npz"

    def _read(self, path: Path) -> dict[str, np.ndarray] | None:
        try:
            with np.load(path) as stored:
                arrays = {name: stored[name] for name in stored.files}
        except (OSError, ValueError, EOFError):  # absent, or damaged by something outside our atomic writes
            return None
        os.utime(path)  # recency for eviction
        return arrays

    def _write(self, path: Path, arrays: dict[str, np.ndarray]) -> None:
        with atomic_write(path) as stream:
            np.savez(stream, **arrays)
        self.evict()

    def _frames_entry(self, source: FrameSource, checkpoint_sha256: str) -> Path:
        return self._entry("frames", {
            "content": source.content_id,
            "checkpoint": checkpoint_sha256,
            "sampling": {"fps": source.fps, "start": source.start, "end": source.end},
            "preprocessing": PREPROCESSING,
        })

    def load_frames(self, source: FrameSource, checkpoint_sha256: str) -> EncodedFrames | None:
        stored = self._read(self._frames_entry(source, checkpoint_sha256))
        return None if stored is None else EncodedFrames(stored["embeddings"], stored["times"], stored["indices"])

    def save_frames(self, source: FrameSource, checkpoint_sha256: str, encoded: EncodedFrames) -> None:
        arrays = {"embeddings": encoded.embeddings, "times": encoded.times, "indices": encoded.indices}
        self._write(self._frames_entry(source, checkpoint_sha256), arrays)

    def frames(
        self,
        encoder: SurgVLPEncoder,
        source: FrameSource,
        checkpoint_sha256: str,
        batch_size: int = 64,
        on_batch: Callable[[int], None] | None = None,
        decode_workers: int = 0,
    ) -> tuple[EncodedFrames, bool]:
        """The source's frame embeddings and whether they came from the cache (then no frame is decoded)."""
        cached = self.load_frames(source, checkpoint_sha256)
        if cached is not None:
            return cached, True
        encoded = encoder.encode_source(source, batch_size=batch_size, on_batch=on_batch, decode_workers=decode_workers)
        self.save_frames(source, checkpoint_sha256, encoded)
        return encoded, False

    def prompts(self, encoder: SurgVLPEncoder, prompts: Sequence[str], checkpoint_sha256: str) -> np.ndarray:
        """Prompt embeddings, computed once per (checkpoint, prompt list)."""
        path = self._entry("prompts", {"checkpoint": checkpoint_sha256, "prompts": list(prompts)})
        stored = self._read(path)
        if stored is not None:
            return stored["embeddings"]
        embeddings = encoder.encode_prompts(prompts)
        self._write(path, {"embeddings": embeddings})
        return embeddings

    def _stats(self) -> list[tuple[Path, os.stat_result]]:
        """Entries, least recently used first; files another process deletes meanwhile are skipped."""
        stats = []
        for path in self.root.glob("*.npz") if self.root.is_dir() else ():
            try:
                stats.append((path, path.stat()))
            except FileNotFoundError:
                continue
        return sorted(stats, key=lambda entry: entry[1].st_mtime)

    def entries(self) -> list[Path]:
        return [path for path, _ in self._stats()]

    def size_bytes(self) -> int:
        return sum(stat.st_size for _, stat in self._stats())

    def evict(self) -> None:
        """Delete least recently used entries until the cache fits its limit."""
        stats = self._stats()
        total = sum(stat.st_size for _, stat in stats)
        for path, stat in stats:
            if total <= self.limit_bytes:
                break
            total -= stat.st_size
            path.unlink(missing_ok=True)

    def clear(self) -> int:
        """Delete every entry; returns the bytes freed."""
        stats = self._stats()
        for path, _ in stats:
            path.unlink(missing_ok=True)
        return sum(stat.st_size for _, stat in stats)
