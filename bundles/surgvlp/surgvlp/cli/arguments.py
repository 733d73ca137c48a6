"""Argument types that turn a bad number or name into a one-line usage error, before any work.

argparse calls these while parsing, so ``--fps inf`` or ``--batch-size 0`` ends as
``surgvlp phases: error: argument --fps: ...`` with exit status 2, instead of a traceback minutes later
(``--fps 1e9`` once asked numpy for 522 GiB of sampling targets). Bounds are generous: they reject what
cannot be meant, not what is merely unusual.
"""

from __future__ import annotations

import argparse
import math
import re
from collections.abc import Callable

MAX_FPS = 1000.0  # far above any surgical video; sources read faster requests at their native rate anyway
MAX_BATCH_SIZE = 4096
MAX_DECODE_WORKERS = 64
MAX_EPOCHS = 1_000_000
MAX_SEED = 2**32 - 1  # numpy's and torch's seeds are unsigned 32-bit
MAX_THREADS = 1024
DEVICE_PATTERN = re.compile(r"auto|cpu|cuda(:\d+)?")


def number(*, above: float | None = None, minimum: float | None = None, maximum: float | None = None) -> Callable[[str], float]:
    """A finite float, ``> above`` and ``>= minimum`` and ``<= maximum`` where given."""
    wanted = _bounds("a number", above, minimum, maximum)

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not (
            math.isfinite(value)
            and (above is None or value > above)
            and (minimum is None or value >= minimum)
            and (maximum is None or value <= maximum)
        ):
            raise argparse.ArgumentTypeError(f"expected {wanted}, got {text!r}")
        return value

    return parse


def count(*, minimum: int | None = None, maximum: int | None = None) -> Callable[[str], int]:
    """A whole number within ``[minimum, maximum]`` where given."""
    wanted = _bounds("a whole number", None, minimum, maximum)

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {wanted}, got {text!r}") from None
        if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
            raise argparse.ArgumentTypeError(f"expected {wanted}, got {text!r}")
        return value

    return parse


def _bounds(kind: str, above: float | None, minimum: float | None, maximum: float | None) -> str:
    limits = (("above", above), ("at least", minimum), ("at most", maximum))
    parts = [f"{word} {_plain(limit)}" for word, limit in limits if limit is not None]
    return " ".join([kind, " and ".join(parts)]) if parts else kind


def _plain(value: float) -> str:
    """1000000 rather than 1e+06, 0.5 as is."""
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def device(text: str) -> str:
    """What torch can be asked for here; checked before torch is imported, so a typo costs nothing."""
    if not DEVICE_PATTERN.fullmatch(text):
        raise argparse.ArgumentTypeError(f"expected cpu, cuda or cuda:N, got {text!r}")
    return text


def text(value: str) -> str:
    """A prompt with something in it: an empty one would match everything equally."""
    if not value.strip():
        raise argparse.ArgumentTypeError("expected some text, got an empty string")
    return value


def prompt_list(value: str) -> list[str]:
    """Comma-separated prompts, each with something in it: ``tissue,background``."""
    prompts = [prompt.strip() for prompt in value.split(",")]
    if not all(prompts):
        raise argparse.ArgumentTypeError(f"expected comma-separated prompts, none of them empty, got {value!r}")
    return prompts


fps = number(above=0, maximum=MAX_FPS)
seconds = number(minimum=0)
positive_seconds = number(above=0)
fraction = number(minimum=0, maximum=1)
batch_size = count(minimum=1, maximum=MAX_BATCH_SIZE)
decode_workers = count(minimum=0, maximum=MAX_DECODE_WORKERS)
seed = count(minimum=0, maximum=MAX_SEED)
threads = count(minimum=1, maximum=MAX_THREADS)
consecutive = count(minimum=1, maximum=1_000_000)
