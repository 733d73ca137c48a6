"""The text to segment and what it is contrasted with, checked before anything is loaded (no torch here)."""

from __future__ import annotations

from collections.abc import Sequence

from surgvlp.errors import SurgVLPError

DEFAULT_NEGATIVES = ("tissue", "background")
"""What every cell is contrasted with unless told otherwise: what an endoscopic frame mostly shows."""


def check_prompts(text: str, negatives: Sequence[str]) -> list[str]:
    """The target first, then the contrasting prompts; a one-line error for an empty or repeated one."""
    if not isinstance(text, str) or not text.strip():
        raise SurgVLPError("the text to segment is empty; say what to find, e.g. --text 'the clipper'")
    negatives = [negatives] if isinstance(negatives, str) else list(negatives)
    if not negatives:
        raise SurgVLPError("at least one contrasting prompt is needed (e.g. --negative 'tissue,background')")
    for negative in negatives:
        if not isinstance(negative, str) or not negative.strip():
            raise SurgVLPError("a contrasting prompt is empty; give words such as 'tissue' or 'background'")
        if negative.strip().lower() == text.strip().lower():
            raise SurgVLPError(f"{negative!r} is both the text and a contrasting prompt; contrast it with something else")
    return [text, *negatives]
