"""Where the package keeps its weights and finds its MONAI bundle, wherever the package itself is installed.

A package installed into site-packages, a wheel unpacked into some folder and the bundle folder copied to a
hospital server must all behave the same, so no location is derived from where the code lies. Each
location comes from, in order: what the caller passes (``--dir``, ``--bundle``), an environment variable,
and otherwise the user's data folder (``$XDG_DATA_HOME/surgvlp``, by default ``~/.local/share/surgvlp``; on
Windows ``%LOCALAPPDATA%\\surgvlp``).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from surgvlp.errors import SurgVLPError

WEIGHTS_DIR_ENV = "SURGVLP_WEIGHTS_DIR"
BUNDLE_DIR_ENV = "SURGVLP_BUNDLE_DIR"
APP_NAME = "surgvlp"
BUNDLE_MARKER = Path("configs") / "metadata.json"


def _from_env(name: str) -> Path | None:
    configured = os.environ.get(name, "").strip()
    return Path(configured).expanduser() if configured else None


def user_data_dir() -> Path:
    """The per-user folder for data that must survive reinstalling the package (weights, an installed bundle)."""
    if sys.platform == "win32":
        base = _from_env("LOCALAPPDATA") or Path.home() / "AppData" / "Local"
    else:
        base = _from_env("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return base / APP_NAME


def default_weights_dir() -> Path:
    """``$SURGVLP_WEIGHTS_DIR`` if set, else ``<user data folder>/weights``."""
    return _from_env(WEIGHTS_DIR_ENV) or user_data_dir() / "weights"


def default_bundle_dir() -> Path:
    """``$SURGVLP_BUNDLE_DIR`` if set, else ``<user data folder>/bundle``."""
    return _from_env(BUNDLE_DIR_ENV) or user_data_dir() / "bundle"


def bundle_dir(explicit: str | Path | None = None) -> Path:
    """The MONAI bundle folder to act on (``explicit``, else :func:`default_bundle_dir`), checked to be one."""
    folder = (Path(explicit).expanduser() if explicit is not None else default_bundle_dir()).resolve()
    if not (folder / BUNDLE_MARKER).is_file():
        how = "" if explicit is not None else f" (the default; pass --bundle DIR or set {BUNDLE_DIR_ENV})"
        raise SurgVLPError(
            f"{folder}{how} is not a MONAI bundle folder: it has no {BUNDLE_MARKER.as_posix()}; "
            "give the folder that holds configs/ and models/ (bundles/surgvlp in the source tree)"
        )
    return folder
