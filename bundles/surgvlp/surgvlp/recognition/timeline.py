"""Timelines: what a phase or tool recognition run produced, and the JSON, CSV and PNG files it is kept in.

The JSON schema is documented in ``docs/timeline-schema.md``; its version lives in the ``schema`` field
and is checked on reading, so that the Slicer module, MONAI Label and ``surgvlp evaluate`` never misread a
file written by a different version.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from surgvlp import __version__
from surgvlp.atomic import atomic_write
from surgvlp.recognition.decoding import Segment, frame_interval
from surgvlp.errors import SurgVLPError
from surgvlp.recognition.prompts import PromptSet

SCHEMA = "surgvlp.timeline/2"
READABLE_SCHEMAS = (SCHEMA, "surgvlp.timeline/1")  # 1 called the decoder's min_segment min_duration
_SCHEMA_FAMILY = SCHEMA.split("/")[0]
_DECIMALS = 6  # stored precision of times and scores: finer than any plot or metric needs, and keeps files small
_REQUIRED_SOURCE_KEYS = ("duration", "sampled_fps")
_REQUIRED_MODEL_KEYS = ("variant", "checkpoint_sha256", "untrained")


@dataclass
class Timeline:
    """One recognition run over one video.

    ``scores`` holds per-frame class probabilities (task ``phase``, rows sum to 1) or independent
    per-tool scores (task ``tool``). ``labels`` is the decoded class index per frame (phases only).
    ``segments`` are the decoded phase segments, or the tool presence intervals with ``label`` = tool
    index and ``mean_confidence`` = mean score. ``source`` and ``model`` are the caller's descriptions
    (see the schema document for their keys); ``decoder`` holds the settings that produced the labels.
    """

    source: dict[str, Any]
    model: dict[str, Any]
    prompt_set: PromptSet
    decoder: dict[str, Any]
    times: np.ndarray
    scores: np.ndarray
    segments: list[Segment]
    labels: np.ndarray | None = None
    software: dict[str, str] = field(default_factory=lambda: {"surgvlp": __version__})

    def __post_init__(self) -> None:
        self.times = np.asarray(self.times, dtype=np.float64)
        self.scores = np.asarray(self.scores, dtype=np.float64)
        classes = len(self.prompt_set.classes)
        if self.times.ndim != 1 or self.scores.shape != (self.times.size, classes):
            raise ValueError(f"{self.times.size} frame times need ({self.times.size}, {classes}) scores, "
                             f"got {self.scores.shape}")
        _require_keys(self.source, _REQUIRED_SOURCE_KEYS, "source")
        _require_keys(self.model, _REQUIRED_MODEL_KEYS, "model")
        if not isinstance(self.model["untrained"], bool):
            raise ValueError(f"model 'untrained' must be true or false, got {self.model['untrained']!r}")
        if self.task == "phase":
            if self.labels is None:
                raise ValueError("a phase timeline needs the decoded label of every frame")
            self.labels = np.asarray(self.labels, dtype=np.int64)
            if self.labels.shape != self.times.shape or not np.all((self.labels >= 0) & (self.labels < classes)):
                raise ValueError(f"frame labels must be {self.times.size} class indices below {classes}")
        elif self.labels is not None:
            raise ValueError("a tool timeline has no single label per frame; pass labels=None")
        elif "threshold" not in self.decoder:
            raise ValueError("a tool timeline's decoder settings must hold the presence 'threshold'")
        if any(not 0 <= segment.label < classes for segment in self.segments):
            raise ValueError(f"segment labels must be class indices below {classes}")

    @property
    def task(self) -> str:
        return self.prompt_set.task

    @property
    def untrained(self) -> bool:
        return self.model["untrained"]

    @property
    def class_names(self) -> list[str]:
        return self.prompt_set.class_names

    def presence(self) -> np.ndarray:
        """(frames, classes) booleans: which segments cover each frame (for tools, which tools are present)."""
        covered = np.zeros(self.scores.shape, dtype=bool)
        for segment in self.segments:
            covered[(self.times >= segment.start) & (self.times < segment.end), segment.label] = True
        return covered

    def to_dict(self) -> dict[str, Any]:
        names = self.class_names
        frames: dict[str, Any] = {"time": _rounded(self.times)}
        if self.task == "phase":
            frames["label"] = self.labels.tolist()
            frames["probabilities"] = _rounded(self.scores)
            spans: dict[str, Any] = {
                "segments": [
                    {"label": names[segment.label]} | _span(segment, "mean_confidence") for segment in self.segments
                ]
            }
        else:
            frames["scores"] = _rounded(self.scores)
            presence: dict[str, list] = {name: [] for name in names}
            for segment in self.segments:
                presence[names[segment.label]].append(_span(segment, "mean_score"))
            spans = {"presence": presence}
        return {
            "schema": SCHEMA,
            "task": self.task,
            "untrained": self.untrained,
            "source": self.source,
            "model": self.model,
            "prompt_set": self.prompt_set.to_dict(),
            "decoder": self.decoder,
            "software": self.software,
            "frames": frames,
            **spans,
        }

    @classmethod
    def from_dict(cls, data: Any, origin: str) -> Timeline:
        """Rebuild a timeline from parsed JSON, checking the schema; problems name ``origin``."""
        if not isinstance(data, dict) or not str(data.get("schema", "")).startswith(_SCHEMA_FAMILY + "/"):
            raise SurgVLPError(f"{origin}: not a surgvlp timeline (no 'schema': {SCHEMA!r} field)")
        if data["schema"] not in READABLE_SCHEMAS:
            raise SurgVLPError(f"{origin}: timeline schema {data['schema']!r} is not supported (this version reads "
                               f"{SCHEMA!r}); rerun the recognition or update surgvlp")
        try:
            prompt_set = PromptSet.from_dict(data["prompt_set"], f"{origin}: prompt_set")
            index = {name: position for position, name in enumerate(prompt_set.class_names)}
            frames = data["frames"]
            if prompt_set.task == "phase":
                scores, labels = frames["probabilities"], frames["label"]
                segments = [_segment_from_dict(item, index[item["label"]], "mean_confidence")
                            for item in data["segments"]]
            else:
                scores, labels = frames["scores"], None
                segments = [_segment_from_dict(item, index[name], "mean_score")
                            for name, items in data["presence"].items() for item in items]
            return cls(
                source=data["source"],
                model=data["model"],
                prompt_set=prompt_set,
                decoder={("min_segment" if key == "min_duration" else key): value for key, value in data["decoder"].items()},
                times=np.asarray(frames["time"], dtype=np.float64),
                scores=np.asarray(scores, dtype=np.float64).reshape(len(frames["time"]), -1),
                segments=segments,
                labels=labels,
                software=data.get("software", {}),
            )
        except KeyError as error:
            raise SurgVLPError(f"{origin}: damaged timeline, {error} is missing or unknown") from None
        except (TypeError, ValueError) as error:
            raise SurgVLPError(f"{origin}: damaged timeline ({error})") from None


def _require_keys(mapping: Any, keys: tuple[str, ...], what: str) -> None:
    if not isinstance(mapping, dict):
        raise ValueError(f"{what} must be a mapping, got {type(mapping).__name__}")
    missing = [key for key in keys if key not in mapping]
    if missing:
        raise ValueError(f"{what} lacks {', '.join(missing)}")


def _rounded(values: np.ndarray) -> list:
    return np.round(values, _DECIMALS).tolist()


def _span(segment: Segment, confidence_key: str) -> dict[str, float]:
    return {
        "start": round(segment.start, _DECIMALS),
        "end": round(segment.end, _DECIMALS),
        confidence_key: round(segment.mean_confidence, _DECIMALS),
    }


def _segment_from_dict(item: dict[str, Any], label: int, confidence_key: str) -> Segment:
    return Segment(label, float(item["start"]), float(item["end"]), float(item[confidence_key]))


def source_name(source: dict[str, Any]) -> str:
    """A short human name for a video: its file name, else its DICOM SOP instance UID."""
    if source.get("path"):
        return Path(source["path"]).name
    return f"DICOM {source['sop_instance_uid']}" if source.get("sop_instance_uid") else "video"


def _numpy_to_json(value: Any) -> Any:
    """Let callers describe sources and models with numpy numbers or arrays."""
    if isinstance(value, (np.generic, np.ndarray)):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} cannot be stored in a timeline")


def write_json(timeline: Timeline, path: Path) -> None:
    with atomic_write(path, "w", encoding="utf-8") as stream:
        json.dump(timeline.to_dict(), stream, separators=(",", ":"), default=_numpy_to_json)
        stream.write("\n")


def read_timeline(path: Path) -> Timeline:
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise SurgVLPError(f"{path}: cannot read the timeline ({error.strerror or error})") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise SurgVLPError(f"{path}: not a JSON timeline ({error})") from None
    return Timeline.from_dict(data, str(path))


def write_csv(timeline: Timeline, path: Path) -> None:
    """One row per sampled frame: time, the decoded label (phases) or the present tools, whether the model
    was untrained, one column per class.

    The ``untrained`` column is in every row, beside the label, so that a spreadsheet of an untrained model's
    output says so wherever it is scrolled or filtered, and the columns are the same for every model.
    """
    names = timeline.class_names
    untrained = "true" if timeline.untrained else "false"
    with atomic_write(path, "w", encoding="utf-8", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(["time", "label" if timeline.task == "phase" else "present", "untrained", *names])
        present = timeline.presence()
        for frame, (time, row) in enumerate(zip(timeline.times, timeline.scores)):
            if timeline.task == "phase":
                label = names[timeline.labels[frame]]
            else:
                label = ";".join(name for name, flag in zip(names, present[frame]) if flag)
            writer.writerow([f"{time:.3f}", label, untrained, *(f"{value:.{_DECIMALS}f}" for value in row)])


def format_clock(seconds: float, _position: object = None) -> str:
    """``mm:ss`` (minutes keep counting past 60), the way surgical video players show time."""
    minutes, rest = divmod(int(round(seconds)), 60)
    return f"{minutes:02d}:{rest:02d}"


def _tick_step(duration: float) -> float:
    """A round tick spacing in seconds giving at most about ten ticks."""
    for step in (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600):
        if duration / step <= 10:
            return step
    return 3600 * math.ceil(duration / 36000)


def _class_colours(count: int) -> list:
    from matplotlib import colormaps

    palette = colormaps["tab10" if count <= 10 else "tab20"]
    return [palette(index % palette.N) for index in range(count)]


def _draw_band(axes, timeline: Timeline, colours: list) -> None:
    """Decoded phases as one coloured strip, or tool presences as one row per tool (first tool on top)."""
    rows = len(timeline.class_names)
    if timeline.task == "phase":
        for segment in timeline.segments:
            axes.broken_barh([(segment.start, segment.end - segment.start)], (0, 1), facecolors=colours[segment.label])
        axes.set_ylim(0, 1)
        axes.set_yticks([])
        axes.set_ylabel("phase")
        return
    for segment in timeline.segments:
        axes.broken_barh([(segment.start, segment.end - segment.start)], (rows - 1 - segment.label, 0.8),
                         facecolors=colours[segment.label])
    axes.set_ylim(-0.1, rows - 0.1)
    axes.set_yticks([rows - 1 - index + 0.4 for index in range(rows)], timeline.class_names, fontsize=8)
    axes.set_ylabel("present")


PLOT_FORMATS = ("png", "pdf", "svg")


def plot_format(path: Path) -> str:
    """The format a plot's file name asks for; anything else is refused before the work that the plot ends."""
    suffix = Path(path).suffix.lower().removeprefix(".")
    if suffix not in PLOT_FORMATS:
        endings = ", ".join(f".{name}" for name in PLOT_FORMATS)
        raise SurgVLPError(f"{path}: a plot file's name must end in one of {endings}, which sets its format")
    return suffix


def write_plot(timeline: Timeline, path: Path, format: str | None = None) -> None:
    """The decoded phases (or tool presences) as a coloured band above the per-class score curves.

    ``format`` (one of :data:`PLOT_FORMATS`) defaults to the one ``path``'s ending asks for; give it when
    ``path`` is a temporary file whose name does not say.
    """
    format = format or plot_format(path)
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch
    from matplotlib.ticker import FuncFormatter, MultipleLocator

    names, colours = timeline.class_names, _class_colours(len(timeline.class_names))
    tools = timeline.task == "tool"
    end = max([timeline.times[-1] + frame_interval(timeline.times)] + [segment.end for segment in timeline.segments])
    figure = Figure(figsize=(12, 4 + 0.25 * len(names) if tools else 5), dpi=100, layout="constrained")
    band, curves = figure.subplots(2, 1, sharex=True, height_ratios=[0.5 * len(names) if tools else 1, 4])
    _draw_band(band, timeline, colours)
    for index in range(len(names)):
        curves.plot(timeline.times, timeline.scores[:, index], color=colours[index], linewidth=1.2)
    if tools:
        curves.axhline(timeline.decoder["threshold"], color="black", linestyle="--", linewidth=1)
    curves.set_ylim(0, 1.02)
    curves.set_ylabel("score" if tools else "probability")
    curves.set_xlim(timeline.times[0], end)
    curves.set_xlabel("time (mm:ss)")
    curves.xaxis.set_major_locator(MultipleLocator(_tick_step(end)))
    curves.xaxis.set_major_formatter(FuncFormatter(format_clock))
    curves.grid(alpha=0.3)
    figure.legend(handles=[Patch(color=colour, label=name) for name, colour in zip(names, colours)],
                  loc="outside right upper", title=timeline.prompt_set.name)
    title = f"Tools: {source_name(timeline.source)}" if tools else (
        f"Phases: {source_name(timeline.source)}  (decoder: {timeline.decoder.get('method', '?')})")
    band.set_title(title, loc="left", fontsize=10)
    if timeline.untrained:
        band.set_title("UNTRAINED MODEL: not a real prediction", loc="right", fontsize=10, color="red")
    with atomic_write(path, "wb") as stream:
        figure.savefig(stream, format=format)
