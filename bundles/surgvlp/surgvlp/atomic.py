"""Writing files so that a reader never sees half of one, even if the writer dies midway or a check fails."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from surgvlp.errors import SurgVLPError


class UnwritableOutput(SurgVLPError):
    """The file system refused an output (no permission, disk full, not a folder)."""


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` that replaces ``path`` only if the block completes.

    The temporary file lives in the same folder so that ``os.replace`` is an atomic rename, never a copy:
    ``path`` holds either its old content or the complete new one. If the block raises, the temporary file
    is removed.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".partial")
    except OSError as error:
        raise UnwritableOutput(f"cannot write {path}: {error.strerror or error}") from None
    os.close(handle)
    temporary = Path(name)
    try:
        yield temporary
        os.chmod(temporary, 0o666 & ~_umask())  # mkstemp's 0600 would hide outputs from other users
        os.replace(temporary, path)
    except OSError as error:  # disk full, permission denied: one line for the user, not a traceback
        raise UnwritableOutput(f"cannot write {path}: {error.strerror or error}") from None
    finally:
        temporary.unlink(missing_ok=True)


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


@contextmanager
def atomic_write(path: Path, mode: str = "wb", **open_kwargs) -> Iterator[IO]:
    """``open(path, mode)`` through :func:`atomic_path`: the stream is closed before the rename."""
    with atomic_path(path) as temporary, open(temporary, mode, **open_kwargs) as stream:
        yield stream
