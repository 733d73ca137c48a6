"""What the bundle configs run: MONAI's infer workflow over a folder (or list) of videos, one timeline JSON per video.

The configs are laid out as the MONAI model zoo lays out an inference config: ``dataset`` (the videos, this
rank's share), ``dataloader``, ``network_def`` and ``network`` (the bundle's
:class:`~surgvlp.network.phase_network.ZeroShotNetwork`), a ``CheckpointLoader`` handler that loads
``models/model.pt`` into it, ``inferer`` (one video -> its timeline, computed with that network) and a
``SupervisedEvaluator`` that runs one iteration per video, with a handler that writes the timelines and the
index. Recognition itself is the library's (:mod:`surgvlp.recognition.pipeline`), so a timeline written by the
bundle is the one ``surgvlp phases`` or ``surgvlp tools`` writes for the same video and settings.

Scaling out follows the zoo too: ``torchrun`` starts one process per GPU (or several on a CPU), each process
takes every ``world_size``-th video, writes those timelines itself, and rank 0 writes ``index.json`` once all
ranks have finished. Multi-node runs are the same command with torchrun's node options.

The pieces the configs instantiate report a bad input as one line on stderr and exit with status 2
(:func:`one_line_errors`), before the network is built or any video is read.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import torch
import torch.distributed as dist
from monai.engines.utils import PrepareBatch
from monai.inferers import Inferer
from torch.utils.data import Dataset

from surgvlp.atomic import atomic_write
from surgvlp.errors import SurgVLPError
from surgvlp.network.encoder import SurgVLPEncoder, pick_device
from surgvlp.network.loading import LoadedModel
from surgvlp.network.phase_network import ZeroShotNetwork, stored_prompt_set, text_model_dir, verified_checkpoint
from surgvlp.network.text import PromptTokenizer
from surgvlp.recognition.cache import EmbeddingCache
from surgvlp.recognition.decoding import DecoderSettings
from surgvlp.progress import progress_bar
from surgvlp.recognition.pipeline import Embeddings, embed, phase_timeline, tool_timeline
from surgvlp.recognition.prompts import load_prompt_set
from surgvlp.recognition.timeline import Timeline, write_csv, write_json
from surgvlp.sources import open_source
from surgvlp.sources.identity import folder_id
from surgvlp.sources.sniff import natural_key, sniff
from surgvlp.weights import WeightEntry

logger = logging.getLogger(__name__)

INDEX_NAME = "index.json"
INDEX_SCHEMA = "surgvlp.bundle-index/1"
TIMELINE_SUFFIXES = {"phase": "phases", "tool": "tools"}
VIDEO_KEY = "video"
VIDEO_KINDS = ("video", "dicom")
NOT_VIDEOS = frozenset({"DICOMDIR"})  # a DICOM media index, not an image
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off", ""})

Function = TypeVar("Function", bound=Callable[..., Any])


def one_line_errors(function: Function) -> Function:
    """For what a config instantiates: a ``SurgVLPError`` becomes one line on stderr and exit status 2.

    MONAI wraps any ``Exception`` raised while instantiating a config item into a ``RuntimeError`` with the
    whole item in its message; ``SystemExit`` passes through untouched.
    """

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except SurgVLPError as error:
            exit_with_one_line(error)

    return wrapper  # type: ignore[return-value]


def exit_with_one_line(error: SurgVLPError) -> None:
    print(f"surgvlp bundle: error: {error}", file=sys.stderr)
    raise SystemExit(2) from None


def as_flag(value: bool | int | str, name: str) -> bool:
    """A yes/no config value as a bool: ``--allow_untrained false`` reaches the config as the string ``'false'``,
    which Python would take for true."""
    if isinstance(value, (bool, int)):
        return bool(value)
    text = str(value).strip().lower()
    if text not in _TRUE | _FALSE:
        raise SurgVLPError(f"{name} must be true or false, got {value!r}")
    return text in _TRUE


@one_line_errors
def bundle_checkpoint(weights_dir: str | Path, allow_untrained: bool | str = False) -> WeightEntry:
    """The configs' ``checkpoint``: ``models/model.pt``, hash-checked, refused if untrained unless allowed."""
    return verified_checkpoint(weights_dir, as_flag(allow_untrained, "allow_untrained"))


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


class VideoDataset(Dataset):
    """The configs' ``dataset``: this rank's videos, one item ``{"video": path}`` each; ``videos`` lists all ranks'."""

    @one_line_errors
    def __init__(self, videos: str | Path | Sequence[str | Path], shard: Shard | None = None) -> None:
        self.shard = shard or Shard()
        self.videos = list_videos(videos)
        if len({video.name for video in self.videos}) < len(self.videos):
            raise SurgVLPError("two inputs share a file name, so their timelines would overwrite each other; rename one")
        if len(self.videos) < self.shard.world_size:
            raise SurgVLPError(f"{len(self.videos)} videos for {self.shard.world_size} processes: start at most one process per video")
        self.data = [{VIDEO_KEY: str(video)} for video in self.shard.select(self.videos)]

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: int) -> dict[str, str]:
        return self.data[index]


class PrepareVideo(PrepareBatch):
    """The evaluator's ``prepare_batch``: a batch is one video, whose path is the inferer's input (no label)."""

    def __call__(self, batchdata: dict[str, Any], device: Any = None, non_blocking: bool = False, **kwargs: Any) -> tuple[Path, None]:
        paths = batchdata[VIDEO_KEY]
        if len(paths) != 1:
            raise SurgVLPError(f"the dataloader's batch_size must be 1 (a batch is one video), got {len(paths)} videos")
        return Path(paths[0]), None


@dataclass
class TimelineInferer(Inferer):
    """The configs' ``inferer``: one video and the network -> a record holding its timeline (or why it failed).

    The network's image encoder embeds the frames; its text encoder embeds the prompt set named in the config,
    except when that is the set converted into the network, whose stored class embeddings (the network's own
    head) are used, so a timeline's scores are ``softmax(network(frames))``. A video that cannot be read is
    reported in its record and the others still run. Values arrive from the configs as the user typed them and
    are checked here, before any video is read.
    """

    checkpoint: WeightEntry
    weights_dir: str | Path
    prompt_set: str | Path = "cholec80"
    decoder: str = "argmax"
    min_segment: float = 0.0
    threshold: float = 0.5
    fps: float = 1.0
    device: str | torch.device | None = None
    precision: str = "auto"
    batch_size: int = 64
    decode_workers: int = 0
    cache_dir: str | Path | None = None
    _loaded: dict[int, LoadedModel] = field(default_factory=dict, init=False, repr=False)

    @one_line_errors
    def __post_init__(self) -> None:
        pick_device(None if self.device is None else str(self.device))
        self.recognition = load_prompt_set(self.prompt_set)
        self.head_matches = self.recognition == stored_prompt_set(self.weights_dir)
        self.text_model = text_model_dir(self.weights_dir)
        self.text_model_id = folder_id(self.text_model)
        self.tokenizer = PromptTokenizer(self.text_model)
        self.cache = EmbeddingCache(Path(self.cache_dir) if self.cache_dir else None)
        if self.recognition.task == "phase":
            settings = DecoderSettings(method=self.decoder, min_segment=float(self.min_segment))
            self.recognise: Callable[[Embeddings], Timeline] = partial(phase_timeline, settings=settings)
        else:
            self.recognise = partial(tool_timeline, threshold=float(self.threshold), min_segment=float(self.min_segment))

    def model(self, network: ZeroShotNetwork) -> LoadedModel:
        """``network`` as the recognition pipeline takes a model, with the provenance of ``model.pt``."""
        if id(network) not in self._loaded:
            device = next(network.parameters()).device
            encoder = SurgVLPEncoder(network, self.tokenizer, device=device, precision=self.precision)  # type: ignore[arg-type]
            entry = self.checkpoint
            self._loaded = {
                id(network): LoadedModel(encoder, entry.name, entry.path, entry.sha256, entry.untrained, self.text_model, self.text_model_id)
            }
        return self._loaded[id(network)]

    def describe(self) -> dict[str, Any]:
        """What the index records about the model: what each timeline of the run records (every rank runs at
        least one video, so the model exists by the time the index is written)."""
        return next(iter(self._loaded.values())).describe()

    def __call__(self, inputs: Path, network: Callable, *args: Any, **kwargs: Any) -> dict[str, Any]:
        if not isinstance(network, ZeroShotNetwork):
            raise TypeError(f"the inferer needs the bundle's ZeroShotNetwork, got {type(network).__name__}")
        loaded = self.model(network)
        try:
            source = open_source(inputs, fps=float(self.fps))
            bar, progress = progress_bar(len(source), inputs.name)
            with bar:
                embeddings = embed(
                    loaded, source, self.recognition, cache=self.cache,
                    batch_size=int(self.batch_size), decode_workers=int(self.decode_workers), progress=progress,
                )
            if self.head_matches:
                embeddings = replace(embeddings, classes=network.class_embeddings.detach().float().cpu().numpy())
            timeline = self.recognise(embeddings)
        except SurgVLPError as error:
            return {VIDEO_KEY: inputs, "timeline": None, "error": str(error)}
        return {VIDEO_KEY: inputs, "timeline": timeline, "error": None}


class TimelineWriter:
    """The configs' handler that writes each video's timeline as it completes and, at the end, the index.

    At the end every rank's records are gathered; rank 0 writes ``index.json``, and if any video failed the run
    ends with one line naming how many (after every other timeline was written).
    """

    def __init__(self, output_dir: str | Path, dataset: VideoDataset, inferer: TimelineInferer, csv: bool | str = False) -> None:
        self.output_dir = Path(output_dir)
        self.dataset = dataset
        self.inferer = inferer
        self.csv = one_line_errors(as_flag)(csv, "csv")
        self.records: list[dict[str, Any]] = []

    @property
    def index_path(self) -> Path:
        return self.output_dir / INDEX_NAME

    def attach(self, engine: Any) -> None:
        from ignite.engine import Events

        engine.add_event_handler(Events.ITERATION_COMPLETED, self.write_timeline)
        engine.add_event_handler(Events.COMPLETED, self.write_index)
        engine.add_event_handler(Events.EXCEPTION_RAISED, self.report)

    def write_timeline(self, engine: Any) -> None:
        result = engine.state.output["pred"]
        video, timeline = result[VIDEO_KEY], result["timeline"]
        rank = self.dataset.shard.rank
        record: dict[str, Any] = {"video": str(video), "rank": rank, "timeline": None, "frames": None, "segments": None, "error": result["error"]}
        if timeline is not None:
            record |= self._write(video, timeline)
        if record["error"]:
            logger.error("rank %d: %s: %s", rank, video, record["error"])
        else:
            logger.info("rank %d: %s -> %s (%d frames, %d segments)", rank, video, record["timeline"], record["frames"], record["segments"])
        self.records.append(record)

    def _write(self, video: Path, timeline: Timeline) -> dict[str, Any]:
        out = self.output_dir / timeline_name(video, self.inferer.recognition.task)
        try:
            write_json(timeline, out)
            if self.csv:
                write_csv(timeline, out.with_suffix(".csv"))
        except SurgVLPError as error:
            return {"error": str(error)}
        return {"timeline": out.name, "frames": len(timeline.times), "segments": len(timeline.segments)}

    def write_index(self, engine: Any) -> None:
        shard = self.dataset.shard
        records = shard.gather(self.records)
        order = {str(video): position for position, video in enumerate(self.dataset.videos)}
        records.sort(key=lambda record: order[record["video"]])
        if shard.rank == 0:
            model = self.inferer.describe()
            index = {
                "schema": INDEX_SCHEMA,
                "untrained": model["untrained"],
                "model": model,
                "prompt_set": self.inferer.recognition.name,
                "world_size": shard.world_size,
                "videos": records,
            }
            with atomic_write(self.index_path, "w", encoding="utf-8") as stream:
                json.dump(index, stream, indent=2)
                stream.write("\n")
            logger.info("wrote %s: %d videos", self.index_path, len(records))
        failed = [record for record in records if record["error"]]
        if failed:
            raise SurgVLPError(
                f"{len(failed)} of {len(records)} videos failed (first: {failed[0]['video']}: {failed[0]['error']}); "
                f"see {self.index_path}"
            )

    def report(self, engine: Any, error: BaseException) -> None:
        """Ignite hands every exception of a run here; ours end the run with one line, others propagate."""
        if isinstance(error, SurgVLPError):
            exit_with_one_line(error)
        raise error
