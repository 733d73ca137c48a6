"""On-disk cache of frame and prompt embeddings: it stores and looks up; the pipeline runs the encoder.

Frame embeddings are the expensive part (the image encoder over every sampled frame), so a new prompt set,
decoder or threshold is answered from the cache without touching the image encoder. Entries are plain
``.npz`` files named by a hash of everything their arrays depend on (:class:`FramesKey`,
:class:`PromptsKey`), evicted least recently used first once the cache exceeds its size limit.

Several processes may share one cache folder (a server beside a CLI run, the shards of a bundle run):

- entries appear by atomic rename, so a reader sees a whole entry or none;
- :meth:`EmbeddingCache.lock` serialises the computing of one entry: a second process asking for the
  same entry waits, then reads the first one's result instead of encoding the same video again. The lock
  is ``flock`` on a small lock file; the kernel releases it when its holder exits, however it exits, so a
  lock file left behind by a killed process blocks no one;
- eviction by one process may delete an entry another is about to read: that reader recomputes it;
- an entry that does not load or whose arrays disagree (cut short by a full disk, a copy, a crash on a file
  system without atomic rename) is deleted and recomputed, never an error.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from surgvlp.atomic import UnwritableOutput, atomic_write
from surgvlp.errors import SurgVLPError
from surgvlp.network.encoded import EncodedFrames

try:
    import fcntl
except ImportError:  # Windows: no flock; two processes may then compute the same entry, each writes it whole
    fcntl = None

CACHE_DIR_ENV = "SURGVLP_CACHE_DIR"
CACHE_LIMIT_ENV = "SURGVLP_CACHE_LIMIT_MB"
DEFAULT_LIMIT_MB = 2048
ENTRY_LAYOUT = 2
"""Part of every key: entries written with another layout of keys or arrays are never read."""
PARTIAL_MAX_AGE_S = 3600
"""A half-written entry this old belongs to a writer that died; eviction removes it."""

logger = logging.getLogger(__name__)
_held = threading.local()


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


@dataclass(frozen=True)
class FramesKey:
    """What a source's frame embeddings depend on.

    ``precision`` is the arithmetic the image encoder actually ran in (``fp32`` on the CPU, ``bf16`` or
    ``fp16`` autocast on CUDA), whose embeddings differ in the third decimal; ``preprocessing`` names the
    resize, crop and normalisation.
    """

    content_id: str
    checkpoint_sha256: str
    fps: float | None
    start: float
    end: float
    preprocessing: str
    precision: str


@dataclass(frozen=True)
class PromptsKey:
    """What prompt embeddings depend on; ``text_model_id`` hashes the text-model folder, whose vocabulary
    and tokenizer settings decide the tokens."""

    checkpoint_sha256: str
    text_model_id: str
    precision: str
    prompts: tuple[str, ...]


CacheKey = FramesKey | PromptsKey

_FRAME_ARRAYS = {"embeddings": np.float32, "times": np.float64, "indices": np.int64}


class EmbeddingCache:
    def __init__(self, root: Path | None = None, limit_bytes: int | None = None) -> None:
        self.root = Path(root) if root else default_cache_dir()
        self.limit_bytes = _limit_bytes() if limit_bytes is None else limit_bytes

    def path(self, key: CacheKey) -> Path:
        """The entry's file (which may not exist)."""
        kind = "frames" if isinstance(key, FramesKey) else "prompts"
        parts = json.dumps({"kind": kind, "layout": ENTRY_LAYOUT, **asdict(key)}, sort_keys=True)
        return self.root / f"{kind}-{hashlib.sha256(parts.encode()).hexdigest()[:32]}.npz"

    def load_frames(self, key: FramesKey) -> EncodedFrames | None:
        """The stored frame embeddings, or None when absent (or damaged, and then deleted)."""
        stored = self._read(self.path(key), _valid_frames)
        return None if stored is None else EncodedFrames(stored["embeddings"], stored["times"], stored["indices"])

    def save_frames(self, key: FramesKey, encoded: EncodedFrames) -> bool:
        """Store ``encoded``; False when it was not kept (larger than the cache, or the folder is unwritable)."""
        arrays = {name: np.asarray(getattr(encoded, name), dtype) for name, dtype in _FRAME_ARRAYS.items()}
        return self._write(self.path(key), arrays)

    def load_prompts(self, key: PromptsKey) -> np.ndarray | None:
        """The stored (P, D) prompt embeddings, or None when absent (or damaged, and then deleted)."""
        stored = self._read(self.path(key), lambda arrays: _valid_prompts(arrays, len(key.prompts)))
        return None if stored is None else stored["embeddings"]

    def save_prompts(self, key: PromptsKey, embeddings: np.ndarray) -> bool:
        """Store the (P, D) embeddings of ``key.prompts``; False when they were not kept."""
        embeddings = np.asarray(embeddings, np.float32)
        if not _valid_prompts({"embeddings": embeddings}, len(key.prompts)):
            raise ValueError(f"{embeddings.shape} embeddings for {len(key.prompts)} prompts")
        return self._write(self.path(key), {"embeddings": embeddings})

    @contextlib.contextmanager
    def lock(self, key: CacheKey) -> Iterator[None]:
        """Hold the entry's lock: look it up, and compute and save it when absent, inside the block.

        Another process (or thread) holding the same entry's lock makes this wait until it is done. Re-entrant
        within a thread. Where locking is impossible (no ``flock``, an unwritable cache folder) the block runs
        unlocked: the worst case is then computing an entry twice.
        """
        path = self.path(key).with_suffix(".lock")
        held: set[Path] = _held.__dict__.setdefault("paths", set())
        descriptor = None if path in held or fcntl is None else self._acquire(path)
        if descriptor is None:
            yield
            return
        held.add(path)
        try:
            yield
        finally:
            held.discard(path)
            path.unlink(missing_ok=True)  # while still held: a waiter on this file then sees it gone and retries
            os.close(descriptor)

    def _acquire(self, path: Path) -> int | None:
        """A descriptor holding ``flock`` on the file that is at ``path`` now (not one unlinked meanwhile)."""
        waited = False
        while True:
            try:
                self.root.mkdir(parents=True, exist_ok=True)
                descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
            except OSError as error:
                logger.warning("embedding cache %s: cannot lock %s: %s", self.root, path.name, error.strerror or error)
                return None
            try:
                try:
                    fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    if not waited:
                        logger.warning("embedding cache: another process is computing %s; waiting for it", path.stem)
                        waited = True
                    fcntl.flock(descriptor, fcntl.LOCK_EX)
                if _same_file(os.fstat(descriptor), os.stat(path)):
                    return descriptor
            except FileNotFoundError:
                pass  # its holder removed it on release: lock the next one
            except BaseException:
                os.close(descriptor)
                raise
            os.close(descriptor)

    def _read(self, path: Path, valid: Callable[[dict[str, np.ndarray]], bool]) -> dict[str, np.ndarray] | None:
        try:
            with open(path, "rb") as stream:
                try:
                    with np.load(stream, allow_pickle=False) as stored:
                        arrays = {name: stored[name] for name in stored.files}
                    damaged = not valid(arrays)
                except Exception:  # zipfile, zlib, numpy and OS errors all mean the same: a damaged entry
                    damaged = True
                if damaged:
                    self._drop_damaged(path, os.fstat(stream.fileno()))
                    return None
        except FileNotFoundError:  # absent, or evicted by another process a moment ago
            return None
        except OSError as error:
            logger.warning("embedding cache: cannot read %s: %s", path, error.strerror or error)
            return None
        with contextlib.suppress(OSError):
            os.utime(path)  # recency for eviction
        return arrays

    def _drop_damaged(self, path: Path, read: os.stat_result) -> None:
        """Delete the damaged entry just read, unless another process has replaced it with a whole one since."""
        logger.warning("embedding cache: %s is damaged; it is deleted and computed again", path.name)
        with contextlib.suppress(OSError):
            if _same_file(read, path.stat()):
                path.unlink()

    def _write(self, path: Path, arrays: dict[str, np.ndarray]) -> bool:
        if sum(array.nbytes for array in arrays.values()) > self.limit_bytes:
            return False  # larger than the whole cache: keeping it would evict everything else, and then itself
        try:
            with atomic_write(path) as stream:
                np.savez(stream, **arrays)
        except UnwritableOutput as error:
            logger.warning("embedding cache: %s; the embeddings are not kept", error)
            return False
        self.evict(keep=path)
        return True

    def _stats(self) -> list[tuple[Path, os.stat_result]]:
        """Entries, least recently used first; files another process deletes meanwhile are skipped."""
        stats = []
        for path in self.root.glob("*.npz") if self.root.is_dir() else ():
            with contextlib.suppress(FileNotFoundError):
                stats.append((path, path.stat()))
        return sorted(stats, key=lambda entry: entry[1].st_mtime)

    def entries(self) -> list[Path]:
        return [path for path, _ in self._stats()]

    def size_bytes(self) -> int:
        return sum(stat.st_size for _, stat in self._stats())

    def evict(self, keep: Path | None = None) -> None:
        """Delete least recently used entries until the cache fits its limit, never ``keep`` (the entry just
        written, which another process reading an older entry at the same moment could make look older), and
        the leftovers of writers that died mid-write."""
        stats = self._stats()
        total = sum(stat.st_size for _, stat in stats)
        for path, stat in stats:
            if total <= self.limit_bytes:
                break
            if path != keep:
                total -= stat.st_size
                path.unlink(missing_ok=True)
        for partial in self.root.glob(".*.npz.*.partial"):
            with contextlib.suppress(OSError):
                if time.time() - partial.stat().st_mtime > PARTIAL_MAX_AGE_S:
                    partial.unlink()

    def clear(self) -> int:
        """Delete every entry, and the lock files that killed processes left behind; returns the bytes freed."""
        stats = self._stats()
        for path, _ in stats:
            path.unlink(missing_ok=True)
        if fcntl is not None:
            for path in self.root.glob("*.lock"):
                self._remove_if_unheld(path)
        return sum(stat.st_size for _, stat in stats)

    def _remove_if_unheld(self, path: Path) -> None:
        """Remove a lock file nobody holds, following the protocol of :meth:`lock` (unlink while holding it)."""
        try:
            descriptor = os.open(path, os.O_RDWR)
        except OSError:
            return
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            if _same_file(os.fstat(descriptor), os.stat(path)):
                path.unlink()
        except OSError:  # held (BlockingIOError), or already gone
            pass
        finally:
            os.close(descriptor)


def _same_file(first: os.stat_result, second: os.stat_result) -> bool:
    return (first.st_dev, first.st_ino) == (second.st_dev, second.st_ino)


def _valid_frames(arrays: dict[str, np.ndarray]) -> bool:
    if arrays.keys() != _FRAME_ARRAYS.keys() or any(arrays[name].dtype != dtype for name, dtype in _FRAME_ARRAYS.items()):
        return False
    embeddings, times, indices = arrays["embeddings"], arrays["times"], arrays["indices"]
    return embeddings.ndim == 2 and min(embeddings.shape) > 0 and times.shape == indices.shape == embeddings.shape[:1]


def _valid_prompts(arrays: dict[str, np.ndarray], count: int) -> bool:
    if arrays.keys() != {"embeddings"}:
        return False
    embeddings = arrays["embeddings"]
    return embeddings.dtype == np.float32 and embeddings.ndim == 2 and embeddings.shape[0] == count > 0 and embeddings.shape[1] > 0
