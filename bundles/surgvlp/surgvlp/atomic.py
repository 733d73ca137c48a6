"""Writing files so that a reader never sees half of one, even if the writer dies midway or a check fails.

Two guarantees, for one output or several of one command:

- :func:`check_outputs`, called before any work, refuses an output that is an input (by path, symlink or hard
  link), that two outputs share, that sits inside an input folder, or whose folder cannot be written, so
  that a bad path costs nothing and destroys nothing;
- :func:`atomic_paths` hands out temporary files beside their targets and renames them all at the end,
  so the outputs appear together or not at all.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import IO, TypeVar

from surgvlp.errors import SurgVLPError

Key = TypeVar("Key")
PathOrPaths = Path | str | Iterable[Path | str] | None


class UnwritableOutput(SurgVLPError):
    """The file system refused an output (no permission, disk full, not a folder)."""


class OutputClash(SurgVLPError):
    """An output path would overwrite an input or another output of the same command."""


def check_outputs(outputs: Mapping[str, Path | str | None], inputs: Mapping[str, PathOrPaths] | None = None) -> dict[str, Path]:
    """Refuse, before any work, outputs that would destroy an input or each other, or that cannot be written.

    ``outputs`` and ``inputs`` map what the user calls each path (an option name such as ``--csv``) to the
    path, or for inputs to several paths; ``None`` entries are ignored. Paths are compared after resolving
    symlinks and relative parts, and existing files also by identity (``os.path.samefile``), so a hard link
    is caught too. Nothing is created, except a probe file that is removed at once. Returns the outputs given.
    """
    given = {name: Path(path) for name, path in outputs.items() if path is not None}
    taken = [(f"the input {name}", path) for name, paths in (inputs or {}).items() for path in path_list(paths)]
    for name, path in given.items():
        for owner, existing in taken:
            if _same_file(path, existing):
                raise OutputClash(f"{name} {path} is the same file as {owner} {existing}; give {name} another name")
            if existing.is_dir() and _inside(path, existing):
                raise OutputClash(f"{name} {path} is inside the folder of {owner} {existing}; write it elsewhere")
        _require_writable(name, path)
        taken.append((f"the output {name}", path))
    return given


def path_list(paths: PathOrPaths) -> list[Path]:
    """``None``, one path or several, as a list."""
    if paths is None:
        return []
    if isinstance(paths, (str, os.PathLike)):
        return [Path(paths)]
    return [Path(path) for path in paths]


def _same_file(first: Path, second: Path) -> bool:
    if os.path.realpath(first) == os.path.realpath(second):
        return True
    try:
        return os.path.samefile(first, second)
    except OSError:  # one of them does not exist yet: then only equal paths are the same file
        return False


def _inside(path: Path, folder: Path) -> bool:
    return os.path.realpath(path).startswith(os.path.join(os.path.realpath(folder), ""))


def _require_writable(name: str, path: Path) -> None:
    """Probe the folder ``path`` will be written in (or the nearest one that exists, as parents are created).

    A real probe file, not ``os.access``: that answers yes to root on a read-only mount.
    """
    if path.is_dir():
        raise UnwritableOutput(f"{name} {path} is a folder; give a file name")
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        if folder.is_symlink():  # a dangling link: the folder it names cannot be created
            break
        folder = folder.parent
    if not folder.is_dir():
        raise UnwritableOutput(f"{name} {path}: cannot write there, {folder} is not a folder")
    try:
        handle, probe = tempfile.mkstemp(dir=folder, prefix=".surgvlp-probe-")
    except OSError as error:
        raise UnwritableOutput(f"{name} {path}: cannot write in {folder} ({error.strerror or error})") from None
    os.close(handle)
    os.unlink(probe)


@contextmanager
def atomic_paths(targets: Mapping[Key, Path | str | None]) -> Iterator[dict[Key, Path]]:
    """Yield a temporary path beside each target; all replace their targets only once the block completes.

    The temporary files live in their targets' folders so that ``os.replace`` is an atomic rename, never a
    copy: each target holds either its old content or the complete new one, and the renames, the only step
    after every file is written, follow each other at once. If the block raises, every temporary file and
    every folder created for them are removed. ``None`` targets are left out of the yielded mapping.
    """
    paths = {key: Path(path) for key, path in targets.items() if path is not None}
    staged: dict[Key, Path] = {}
    created: list[Path] = []
    done = False
    current = ", ".join(map(str, paths.values()))
    try:
        for key, path in paths.items():
            current = str(path)
            created += _make_folder(path.parent)
            handle, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".partial")
            os.close(handle)
            staged[key] = Path(name)
        current = ", ".join(map(str, paths.values()))
        yield staged
        mode = 0o666 & ~_umask()  # mkstemp's 0600 would hide outputs from other users
        for key, temporary in staged.items():
            current = str(paths[key])
            os.chmod(temporary, mode)
            os.replace(temporary, paths[key])
        done = True
    except OSError as error:  # disk full, permission denied: one line for the user, not a traceback
        raise UnwritableOutput(f"cannot write {current}: {error.strerror or error}") from None
    finally:
        for temporary in staged.values():
            temporary.unlink(missing_ok=True)
        if not done:
            for folder in reversed(created):
                _remove_empty(folder)


def _make_folder(folder: Path) -> list[Path]:
    """Create ``folder`` and its missing parents; return those created, outermost first."""
    missing = []
    while not folder.exists() and folder != folder.parent:
        missing.append(folder)
        folder = folder.parent
    for path in reversed(missing):
        path.mkdir(exist_ok=True)
    return list(reversed(missing))


def _remove_empty(folder: Path) -> None:
    try:
        folder.rmdir()
    except OSError:  # not empty: something else was put there meanwhile
        pass


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """:func:`atomic_paths` for one file."""
    with atomic_paths({None: path}) as staged:
        yield staged[None]


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


@contextmanager
def atomic_write(path: Path, mode: str = "wb", **open_kwargs) -> Iterator[IO]:
    """``open(path, mode)`` through :func:`atomic_path`: the stream is closed before the rename."""
    with atomic_path(path) as temporary, open(temporary, mode, **open_kwargs) as stream:
        yield stream
