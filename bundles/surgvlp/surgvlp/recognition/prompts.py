"""Prompt sets: the class texts that turn frame embeddings into phase or tool scores.

A prompt set is data, not code, so that a hospital can describe another procedure in a YAML or JSON file.
The built-in sets live as YAML files in ``prompt_sets/``. Their texts are verbatim from the published
protocols, typos and trailing spaces included: the text encoder sees every character, and published
numbers reproduce only with the very same strings.

File format (YAML or JSON, the same keys)::

    name: sleeve-gastrectomy          # optional; defaults to the file name without its suffix
    task: phase                       # phase (one label per frame) or tool (multi-label)
    ordered: true                     # optional; the classes usually follow each other in the listed order
    order: [Preparation, Stapling]    # optional expected order; implies ordered, defaults to the listed order
    classes:
      - name: Preparation
        prompts: ["I insert trocars", "In preparation phase I insert trocars to patient abdomen cavity"]
        typical_duration: 120         # optional, seconds; tunes how long the temporal decoder stays in a phase
      - name: Stapling
        prompts: ["I staple the stomach along the bougie"]

Several prompts for one class form an ensemble: each prompt embedding is L2-normalised, the class
embedding is their mean, normalised again to unit length (which does not change cosine scores).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from surgvlp.errors import SurgVLPError
from surgvlp.recognition.scoring import unit_rows

TASKS = ("phase", "tool")
_SET_KEYS = ("name", "task", "ordered", "order", "classes")
_CLASS_KEYS = ("name", "prompts", "typical_duration")
_FILE_SUFFIXES = (".yaml", ".yml", ".json")


@dataclass(frozen=True)
class PromptClass:
    """One phase or tool and the prompts whose averaged embedding represents it."""

    name: str
    prompts: tuple[str, ...]
    typical_duration: float | None = None


@dataclass(frozen=True)
class PromptSet:
    """The classes of one recognition task, in the column order of every score array built from it."""

    name: str
    task: str
    classes: list[PromptClass]
    ordered: bool = False
    order: tuple[str, ...] = ()

    @property
    def class_names(self) -> list[str]:
        return [entry.name for entry in self.classes]

    def all_prompts(self) -> list[str]:
        """Every prompt, class after class: the rows that ``class_embeddings`` expects, in this order."""
        return [prompt for entry in self.classes for prompt in entry.prompts]

    def typical_durations(self) -> list[float | None]:
        return [entry.typical_duration for entry in self.classes]

    def expected_order(self) -> list[int] | None:
        """Class indices in their expected order, or None when the set declares no order."""
        if not self.ordered:
            return None
        index = {name: position for position, name in enumerate(self.class_names)}
        return [index[name] for name in (self.order or self.class_names)]

    def class_embeddings(self, prompt_embeddings: np.ndarray) -> np.ndarray:
        """(P, D) embeddings of ``all_prompts()`` -> (C, D) unit-length class embeddings (ensemble mean)."""
        prompt_embeddings = np.asarray(prompt_embeddings, dtype=np.float64)
        expected = len(self.all_prompts())
        if prompt_embeddings.ndim != 2 or prompt_embeddings.shape[0] != expected:
            raise ValueError(f"expected ({expected}, D) prompt embeddings, got shape {prompt_embeddings.shape}")
        unit = unit_rows(prompt_embeddings)
        bounds = np.cumsum([0] + [len(entry.prompts) for entry in self.classes])
        means = np.stack([unit[start:stop].mean(axis=0) for start, stop in zip(bounds[:-1], bounds[1:])])
        return unit_rows(means)

    @property
    def digest(self) -> str:
        """SHA-256 of the set's content: what embeddings made from it are tied to, whatever it is called."""
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()

    def to_dict(self) -> dict[str, Any]:
        """The file format above; ``from_dict`` reads it back (timelines embed it)."""
        data: dict[str, Any] = {"name": self.name, "task": self.task, "ordered": self.ordered}
        if self.order:
            data["order"] = list(self.order)
        data["classes"] = [
            {"name": entry.name, "prompts": list(entry.prompts)}
            | ({} if entry.typical_duration is None else {"typical_duration": entry.typical_duration})
            for entry in self.classes
        ]
        return data

    @classmethod
    def from_dict(cls, data: Any, origin: str, default_name: str | None = None) -> PromptSet:
        """Validate parsed YAML/JSON; every problem is a one-line ``SurgVLPError`` naming ``origin``."""
        if data is None:
            raise SurgVLPError(f"{origin}: the prompt set is empty; list at least one entry under 'classes'")
        if not isinstance(data, dict):
            raise SurgVLPError(f"{origin}: expected a mapping with a 'classes' list, got {type(data).__name__}")
        _reject_unknown_keys(data, _SET_KEYS, origin)
        name = data.get("name", default_name)
        if not isinstance(name, str) or not name.strip():
            raise SurgVLPError(f"{origin}: 'name' must be a non-empty string")
        task = data.get("task", "phase")
        if task not in TASKS:
            raise SurgVLPError(f"{origin}: 'task' must be one of {', '.join(TASKS)}, got {task!r}")
        raw_classes = data.get("classes")
        if not isinstance(raw_classes, list) or not raw_classes:
            raise SurgVLPError(f"{origin}: the prompt set is empty; list at least one entry under 'classes'")
        classes = [_parse_class(entry, f"{origin}: class {position + 1}") for position, entry in enumerate(raw_classes)]
        seen: set[str] = set()
        for entry in classes:
            if entry.name in seen:
                raise SurgVLPError(f"{origin}: class {entry.name!r} is listed twice; class names must be unique")
            seen.add(entry.name)
        order = _parse_order(data, seen, origin)
        ordered = data.get("ordered", bool(order))
        if not isinstance(ordered, bool):
            raise SurgVLPError(f"{origin}: 'ordered' must be true or false, got {ordered!r}")
        if order and not ordered:
            raise SurgVLPError(f"{origin}: 'order' is given but 'ordered' is false; remove one of them")
        return cls(name=name, task=task, classes=classes, ordered=ordered, order=order)


def _reject_unknown_keys(data: dict, allowed: tuple[str, ...], origin: str) -> None:
    unknown = [str(key) for key in data if key not in allowed]
    if unknown:
        raise SurgVLPError(f"{origin}: unknown key {unknown[0]!r}; allowed keys are {', '.join(allowed)}")


def _parse_class(data: Any, origin: str) -> PromptClass:
    if not isinstance(data, dict):
        raise SurgVLPError(f"{origin}: expected a mapping with 'name' and 'prompts', got {type(data).__name__}")
    _reject_unknown_keys(data, _CLASS_KEYS, origin)
    name = data.get("name")
    if not isinstance(name, str) or not name.strip():
        raise SurgVLPError(f"{origin}: 'name' must be a non-empty string")
    origin = f"{origin} ({name!r})"
    prompts = data.get("prompts")
    if not isinstance(prompts, list) or not prompts:
        raise SurgVLPError(f"{origin}: 'prompts' must be a non-empty list of texts, e.g. prompts: [\"I use the hook\"]")
    for prompt in prompts:
        if not isinstance(prompt, str):
            raise SurgVLPError(f"{origin}: prompt {prompt!r} is not a text; put it in quotes")
        if not prompt.strip():
            raise SurgVLPError(
                f"{origin}: empty prompt {prompt!r}; write the text the frames should match, or remove it"
            )
    duration = data.get("typical_duration")
    if duration is not None:
        if isinstance(duration, bool) or not isinstance(duration, (int, float)) or not duration > 0:
            raise SurgVLPError(f"{origin}: 'typical_duration' must be a positive number of seconds, got {duration!r}")
        duration = float(duration)
    return PromptClass(name=name, prompts=tuple(prompts), typical_duration=duration)


def _parse_order(data: dict, names: set[str], origin: str) -> tuple[str, ...]:
    order = data.get("order", [])
    if not isinstance(order, list) or not all(isinstance(name, str) for name in order):
        raise SurgVLPError(f"{origin}: 'order' must be a list of class names")
    unknown = [name for name in order if name not in names]
    if unknown:
        raise SurgVLPError(f"{origin}: 'order' names {unknown[0]!r}, which is not a class of this set")
    if order and (len(set(order)) != len(order) or set(order) != names):
        missing = sorted(names - set(order))
        detail = f"missing {', '.join(missing)}" if missing else "a class is repeated"
        raise SurgVLPError(f"{origin}: 'order' must name every class exactly once ({detail})")
    return tuple(order)


def builtin_prompt_sets() -> list[str]:
    """Names accepted by ``load_prompt_set`` without a path."""
    folder = resources.files("surgvlp.recognition") / "prompt_sets"
    return sorted(entry.name.removesuffix(".yaml") for entry in folder.iterdir() if entry.name.endswith(".yaml"))


def load_prompt_set(name_or_path: str | Path) -> PromptSet:
    """A built-in set by name, or a user's YAML/JSON file. Built-in names win over same-named files."""
    text = str(name_or_path)
    builtin = builtin_prompt_sets()
    if text in builtin:
        resource = resources.files("surgvlp.recognition") / "prompt_sets" / f"{text}.yaml"
        data = yaml.safe_load(resource.read_text(encoding="utf-8"))
        return PromptSet.from_dict(data, f"built-in prompt set {text!r}")
    path = Path(text)
    if not path.is_file():
        raise SurgVLPError(
            f"prompt set {text!r} is neither a built-in set ({', '.join(builtin)}) nor an existing file"
        )
    if path.suffix.lower() not in _FILE_SUFFIXES:
        raise SurgVLPError(f"{path}: a prompt set file must end in {', '.join(_FILE_SUFFIXES)}")
    try:
        content = path.read_text(encoding="utf-8")
    except OSError as error:
        raise SurgVLPError(f"{path}: cannot read the prompt set ({error.strerror or error})") from None
    except UnicodeDecodeError:
        raise SurgVLPError(f"{path}: cannot read the prompt set (not UTF-8 text)") from None
    try:
        data = json.loads(content) if path.suffix.lower() == ".json" else yaml.safe_load(content)
    except (json.JSONDecodeError, yaml.YAMLError) as error:
        detail = " ".join(str(error).split())
        raise SurgVLPError(f"{path}: not valid {path.suffix.lstrip('.').upper()}: {detail}") from None
    return PromptSet.from_dict(data, str(path), default_name=path.stem)
