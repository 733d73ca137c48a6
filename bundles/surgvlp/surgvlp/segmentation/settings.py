"""The knobs of referring segmentation, checked before anything is loaded (no torch here)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Literal, get_args

from surgvlp.errors import SurgVLPError

PromptKind = Literal["box", "mask"]
PROMPT_KINDS: tuple[PromptKind, ...] = get_args(PromptKind)
"""How the detected region seeds SAM2: a box and a point on the best cell, or the region's mask."""


def check_prompt_kind(prompt: str) -> PromptKind:
    if prompt not in PROMPT_KINDS:
        raise SurgVLPError(f"unknown prompt {prompt!r}; choose one of {', '.join(PROMPT_KINDS)}")
    return prompt


@dataclass(frozen=True)
class DetectionSettings:
    """``threshold``: a cell (or pixel) belongs to the target at this probability; ``confidence``: a frame shows
    the target when its best cell reaches this; ``consecutive``: confident frames in a row that start tracking."""

    threshold: float = 0.5
    confidence: float = 0.8
    consecutive: int = 3

    def __post_init__(self) -> None:
        for name in ("threshold", "confidence"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and 0 <= value <= 1):
                raise SurgVLPError(f"{name} must lie between 0 and 1, got {value!r}")
        if not isinstance(self.consecutive, int) or self.consecutive < 1:
            raise SurgVLPError(f"consecutive must be a whole number of frames, at least 1, got {self.consecutive!r}")

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)
