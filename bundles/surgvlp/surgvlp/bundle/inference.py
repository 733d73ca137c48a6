"""What the bundle configs run: a folder (or list) of videos in, one timeline JSON per video out, over any number of ranks.

The configs in ``configs/`` only name these pieces and the user's choices. Recognition itself is the
library's (:mod:`surgvlp.recognition.pipeline`), so a timeline written by the bundle is the one ``surgvlp phases`` or
``surgvlp tools`` writes for the same video and settings.

Scaling out follows the MONAI model zoo: ``torchrun`` starts one process per GPU (or several on a CPU), each
process takes every ``world_size``-th video, writes those timelines itself, and rank 0 writes ``index.json``
once all ranks have finished. Multi-node runs are the same command with torchrun's node options.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from surgvlp.atomic import atomic_write
from surgvlp.recognition.cache import EmbeddingCache
from surgvlp.recognition.decoding import DecoderSettings
from surgvlp.errors import SurgVLPError
from surgvlp.network.loading import LoadedModel, load_model
from surgvlp.network.phase_network import BUNDLE_CHECKPOINT, PhaseNetwork, open_phase_network, require_converted
from surgvlp.progress import progress_bar
from surgvlp.recognition.prompts import PromptSet, load_prompt_set
from surgvlp.recognition.pipeline import embed, phase_timeline, tool_timeline
from surgvlp.sources import open_source
from surgvlp.sources.sniff import natural_key, sniff
from surgvlp.recognition.timeline import write_csv, write_json
from surgvlp.weights import WeightStore

logger = logging.getLogger(__name__)

INDEX_NAME = "index.json"
INDEX_SCHEMA = "surgvlp.bundle-index/1"
TIMELINE_SUFFIXES = {"phase": "phases", "tool": "tools"}
VIDEO_KINDS = ("video", "dicom")
NOT_VIDEOS = frozenset({"DICOMDIR"})  # a DICOM media index, not an image
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off", ""})


def as_flag(value: bool | int | str, name: str) -> bool:
    """A yes/no config value as a bool: ``--allow_untrained false`` reaches the config as the string ``'false'``,
    which Python would take for true."""
    if isinstance(value, (bool, int)):
        return bool(value)
    text = str(value).strip().lower()
    if text not in _TRUE | _FALSE:
        raise SurgVLPError(f"{name} must be true or false, got {value!r}")
    return text in _TRUE


def load_phase_network(
    weights_dir: str | Path | None = None,
    checkpoint: str = BUNDLE_CHECKPOINT,
    allow_untrained: bool | str = False,
) -> PhaseNetwork:
    """The configs' ``network_def``: the frame-to-phase network of :mod:`surgvlp.network.phase_network` from the bundle's weights."""
    return open_phase_network(weights_dir, checkpoint, as_flag(allow_untrained, "allow_untrained")).network


def list_videos(videos: str | Path | Sequence[str | Path]) -> list[Path]:
    """The inputs of a run: for a folder, every file in it that holds a video or a DICOM object (recognised
    by content, so annotations and notes beside the videos are skipped), in natural order; for a list, its
    paths as given (files, frame folders or DICOM series folders)."""
    if not isinstance(videos, (str, Path)):
        paths = [Path(video) for video in videos]
        if not paths:
            raise SurgVLPError("the list of videos is empty")
        return paths
    folder = Path(videos)
    if not folder.is_dir():
        raise SurgVLPError(f"dataset folder {folder} does not exist; pass --dataset_dir with the folder of videos")
    found = [
        path
        for path in sorted(folder.iterdir(), key=natural_key)
        if path.is_file() and not path.name.startswith(".") and path.name not in NOT_VIDEOS and sniff(path) in VIDEO_KINDS
    ]
    if not found:
        raise SurgVLPError(f"{folder} holds no video or DICOM file; pass --dataset_dir with the folder of videos")
    return found


def timeline_name(video: Path, task: str) -> str:
    """``case.mp4`` -> ``case.mp4.phases.json``: the whole input name, so ``case.mp4`` and ``case.dcm`` never collide."""
    return f"{video.name}.{TIMELINE_SUFFIXES[task]}.json"


@dataclass(frozen=True)
class Shard:
    """This process's share of the videos: every ``world_size``-th one, starting at ``rank``."""

    rank: int = 0
    world_size: int = 1

    def select(self, videos: Sequence[Path]) -> list[Path]:
        return list(videos)[self.rank :: self.world_size]

    def gather(self, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Every rank's records, on every rank (one collective call; all ranks must make it)."""
        if self.world_size == 1:
            return records
        gathered: list[list[dict[str, Any]] | None] = [None] * self.world_size
        dist.all_gather_object(gathered, records)
        return [record for part in gathered for record in part]


def local_device() -> str:
    """The GPU torchrun assigned to this process (``LOCAL_RANK``), or the CPU when there is none."""
    return f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}" if torch.cuda.is_available() else "cpu"


def join_process_group() -> Shard:
    """Join the torchrun job: NCCL between GPUs, gloo between CPU processes."""
    if not dist.is_initialized():
        if torch.cuda.is_available():
            torch.cuda.set_device(local_device())  # NCCL collectives run on the current device
        dist.init_process_group(backend="nccl" if torch.cuda.is_available() else "gloo")
    return Shard(dist.get_rank(), dist.get_world_size())


def leave_process_group() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


@dataclass
class TimelineInference:
    """Recognise phases (or tools: the prompt set's task decides) in each video and write its timeline.

    A video that cannot be read is reported in the index and the log, and the others still run; the run then
    ends with an error naming how many failed. ``weights_dir`` defaults to the usual weights folder and
    ``cache_dir`` to the usual embedding cache. Values arrive from the configs as the user typed them and are
    checked when the run starts, so that a mistake is reported as one line.
    """

    videos: str | Path | Sequence[str | Path]
    output_dir: str | Path
    prompt_set: str | Path = "cholec80"
    variant: str = "model"
    weights_dir: str | Path | None = None
    decoder: str = "argmax"
    min_segment: float = 0.0
    threshold: float = 0.5
    fps: float = 1.0
    device: str | None = None
    precision: str = "auto"
    batch_size: int = 64
    decode_workers: int = 0
    allow_untrained: bool | str = False
    cache_dir: str | Path | None = None
    csv: bool | str = False
    shard: Shard = field(default_factory=Shard)

    @property
    def index_path(self) -> Path:
        return Path(self.output_dir) / INDEX_NAME

    def run(self) -> list[dict[str, Any]]:
        """The configs' entry point: a problem with the inputs ends the process with one line, not a traceback."""
        try:
            return self.infer()
        except SurgVLPError as error:
            print(f"surgvlp bundle: error: {error}", file=sys.stderr)
            raise SystemExit(2) from None

    def infer(self) -> list[dict[str, Any]]:
        """Write this rank's timelines, then (rank 0) the index of all of them; returns every rank's records."""
        allow_untrained = as_flag(self.allow_untrained, "allow_untrained")
        csv = as_flag(self.csv, "csv")
        prompt_set = load_prompt_set(self.prompt_set)
        recognise = self._recogniser(prompt_set)
        videos = list_videos(self.videos)
        names = [timeline_name(video, prompt_set.task) for video in videos]
        if len(set(names)) < len(names):
            raise SurgVLPError("two inputs share a file name, so their timelines would overwrite each other; rename one")
        store = WeightStore(self.weights_dir)
        require_converted(store, self.variant)
        loaded = load_model(
            self.variant, allow_untrained=allow_untrained, device=self.device, precision=self.precision, store=store
        )
        cache = EmbeddingCache(self.cache_dir)
        records = [
            self._recognise_one(video, loaded, prompt_set, recognise, cache, csv) for video in self.shard.select(videos)
        ]
        records = self.shard.gather(records)
        order = {str(video): position for position, video in enumerate(videos)}
        records.sort(key=lambda record: order[record["video"]])
        if self.shard.rank == 0:
            self._write_index(records, loaded.describe(), prompt_set.name)
        failed = [record for record in records if record["error"]]
        if failed:
            raise SurgVLPError(
                f"{len(failed)} of {len(records)} videos failed (first: {failed[0]['video']}: {failed[0]['error']}); "
                f"see {self.index_path}"
            )
        return records

    def _recogniser(self, prompt_set: PromptSet) -> Callable:
        """The library's timeline function for the prompt set's task, with this run's settings bound."""
        if prompt_set.task == "phase":
            return partial(phase_timeline, settings=DecoderSettings(method=self.decoder, min_segment=self.min_segment))
        return partial(tool_timeline, threshold=self.threshold, min_segment=self.min_segment)

    def _recognise_one(
        self, video: Path, loaded: LoadedModel, prompt_set: PromptSet, recognise: Callable, cache: EmbeddingCache, csv: bool
    ) -> dict[str, Any]:
        record: dict[str, Any] = {
            "video": str(video), "rank": self.shard.rank, "timeline": None, "frames": None, "segments": None, "error": None
        }
        try:
            source = open_source(video, fps=self.fps)
            bar, progress = progress_bar(len(source), video.name)
            with bar:
                embeddings = embed(
                    loaded,
                    source,
                    prompt_set,
                    cache=cache,
                    batch_size=self.batch_size,
                    decode_workers=int(self.decode_workers),
                    progress=progress,
                )
            timeline = recognise(embeddings)
            out = Path(self.output_dir) / timeline_name(video, prompt_set.task)
            write_json(timeline, out)
            if csv:
                write_csv(timeline, out.with_suffix(".csv"))
        except SurgVLPError as error:
            logger.error("rank %d: %s: %s", self.shard.rank, video, error)
            return record | {"error": str(error)}
        logger.info(
            "rank %d: %s -> %s (%d frames, %d segments)", self.shard.rank, video, out, len(timeline.times), len(timeline.segments)
        )
        return record | {"timeline": out.name, "frames": len(timeline.times), "segments": len(timeline.segments)}

    def _write_index(self, records: list[dict[str, Any]], model: dict[str, Any], prompt_set: str) -> None:
        index = {
            "schema": INDEX_SCHEMA,
            "untrained": model["untrained"],
            "model": model,
            "prompt_set": prompt_set,
            "world_size": self.shard.world_size,
            "videos": records,
        }
        with atomic_write(self.index_path, "w", encoding="utf-8") as stream:
            json.dump(index, stream, indent=2)
            stream.write("\n")
        logger.info("wrote %s: %d videos", self.index_path, len(records))
