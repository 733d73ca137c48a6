"""The parameters of an infer call, checked before any work starts.

A request's ``params`` arrive as free JSON merged with the stock request fields; each model reads only its own
keys, with the types and ranges below, and a wrong one is answered at once with a message naming it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from surgvlp.errors import SurgVLPError

MAX_FPS = 30.0


class BadParameter(SurgVLPError):
    """A request parameter with the wrong type or range."""


def number(params: dict[str, Any], key: str, default: float | None, low: float = 0.0, high: float = math.inf,
           inclusive_low: bool = True) -> float | None:
    value = params.get(key, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise BadParameter(f"parameter {key!r} must be a number, got {value!r}")
    if value < low or (value == low and not inclusive_low) or value > high:
        raise BadParameter(f"parameter {key!r} = {value} is out of range ({'[' if inclusive_low else '('}{low:g}, {high:g}])")
    return float(value)


def flag(params: dict[str, Any], key: str, default: bool) -> bool:
    value = params.get(key, default)
    if not isinstance(value, bool):
        raise BadParameter(f"parameter {key!r} must be true or false, got {value!r}")
    return value


def text(params: dict[str, Any], key: str, default: str | None, choices: tuple[str, ...] | None = None) -> str | None:
    value = params.get(key, default)
    if value is not None and not isinstance(value, str):
        raise BadParameter(f"parameter {key!r} must be a string, got {value!r}")
    if choices is not None and value not in choices:
        raise BadParameter(f"parameter {key!r} must be one of {', '.join(choices)}, got {value!r}")
    return value


@dataclass(frozen=True)
class Sampling:
    """Which frames of the video: ``fps`` frames per second between ``start`` and ``end`` seconds."""

    fps: float
    start: float | None
    end: float | None

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> Sampling:
        fps = number(params, "fps", 1.0, 0.0, MAX_FPS, inclusive_low=False)
        start = number(params, "start", None)
        end = number(params, "end", None, 0.0, inclusive_low=False)
        if start is not None and end is not None and end <= start:
            raise BadParameter(f"parameter 'end' ({end:g} s) must come after 'start' ({start:g} s)")
        return cls(fps, start, end)

    def as_dict(self) -> dict[str, float | None]:
        return {"fps": self.fps, "start": self.start, "end": self.end}


def prompt_set(params: dict[str, Any], default: str, task: str) -> Any:
    """A built-in prompt set by name, or one given inline (the prompt set file's structure, as JSON)."""
    from surgvlp import PromptSet, load_prompt_set
    from surgvlp.recognition.prompts import builtin_prompt_sets

    value = params.get("prompt_set", default)
    if isinstance(value, str):
        if value not in builtin_prompt_sets():
            raise BadParameter(f"parameter 'prompt_set': no built-in prompt set {value!r} "
                               f"(built in: {', '.join(builtin_prompt_sets())}); or give one inline as JSON")
        loaded = load_prompt_set(value)
    elif isinstance(value, dict):
        loaded = PromptSet.from_dict(value, "parameter 'prompt_set'", default_name="inline")
    else:
        raise BadParameter(f"parameter 'prompt_set' must be a built-in name or a prompt set object, got {value!r}")
    if loaded.task != task:
        raise BadParameter(f"parameter 'prompt_set': {loaded.name!r} is for {loaded.task} recognition, not {task}")
    return loaded
