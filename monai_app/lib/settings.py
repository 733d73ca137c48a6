"""What a deployment chooses with ``monailabel start_server ... --conf KEY VALUE``.

Every value arrives as a string; a misspelt boolean or size must stop the server with a message naming it, not
quietly fall back to a default that serves something else (an untrained model, say).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from surgvlp.errors import SurgVLPError
from surgvlp.folders import user_data_dir

_TRUE, _FALSE = {"true", "1", "yes", "on"}, {"false", "0", "no", "off"}
KNOWN_KEYS = {
    "checkpoint": "variant, checkpoint file or weights folder to serve (default peskavlp)",
    "sam2": "SAM2 weights for referring segmentation, a fetched name or a folder (default sam2-tiny; without: coarse)",
    "allow_untrained": "serve a model that was never trained, every answer marked so (default false)",
    "weights_dir": "the weights folder (default: the surgvlp data folder)",
    "cache_dir": "the embedding cache folder (default: the surgvlp cache folder)",
    "state_dir": "labels, adapters and their history (default: STUDIES/.surgvlp, or the data folder for DICOMweb)",
    "device": "cpu, cuda or cuda:N (default: CUDA when present)",
    "max_upload_mb": "largest accepted upload in MiB (default 4096)",
    "jobs": "background jobs that may run at once (default 4)",
    "threads": "CPU threads for the model (default: all cores but one, left for answering requests)",
    "allow_remote": "let other machines connect (--host other than 127.0.0.1); put TLS and a firewall in front (default false)",
}


def _boolean(conf: dict[str, str], key: str, default: bool) -> bool:
    value = str(conf.get(key, default)).strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise SurgVLPError(f"--conf {key} {conf[key]!r}: expected true or false")


def _positive_int(conf: dict[str, str], key: str, default: int) -> int:
    value = conf.get(key, default)
    try:
        number = int(value)
    except (TypeError, ValueError):
        number = 0
    if number < 1:
        raise SurgVLPError(f"--conf {key} {value!r}: expected a whole number of at least 1")
    return number


def _folder(conf: dict[str, str], key: str) -> Path | None:
    return Path(conf[key]).expanduser() if conf.get(key) else None


@dataclass(frozen=True)
class AppSettings:
    checkpoint: str
    sam2: str
    allow_untrained: bool
    weights_dir: Path | None
    cache_dir: Path | None
    state_dir: Path
    device: str | None
    max_upload_bytes: int
    jobs: int
    threads: int
    allow_remote: bool

    @classmethod
    def from_conf(cls, conf: dict[str, str], studies: str) -> AppSettings:
        remote = studies.startswith(("http://", "https://"))
        default_state = user_data_dir() / "server" if remote else Path(studies) / ".surgvlp"
        return cls(
            checkpoint=conf.get("checkpoint", "peskavlp"),
            sam2=conf.get("sam2", "sam2-tiny"),
            allow_untrained=_boolean(conf, "allow_untrained", False),
            weights_dir=_folder(conf, "weights_dir"),
            cache_dir=_folder(conf, "cache_dir"),
            state_dir=_folder(conf, "state_dir") or default_state,
            device=conf.get("device") or None,
            max_upload_bytes=_positive_int(conf, "max_upload_mb", 4096) << 20,
            jobs=_positive_int(conf, "jobs", 4),
            threads=_positive_int(conf, "threads", max(1, (os.cpu_count() or 1) - 1)),
            allow_remote=_boolean(conf, "allow_remote", False),
        )


def served_host(argv: list[str]) -> str | None:
    """The ``--host`` of the ``monailabel start_server`` command running this process (MONAI Label's default is
    0.0.0.0, every interface), or None in processes that serve nothing (MONAI Label's training child)."""
    if "start_server" not in argv:
        return None
    for position, argument in enumerate(argv):
        if argument in ("--host", "-i") and position + 1 < len(argv):
            return argv[position + 1]
        if argument.startswith("--host="):
            return argument.split("=", 1)[1]
    return "0.0.0.0"


def require_local(host: str | None, allowed: bool) -> None:
    """Clinical videos stay on this machine unless the deployer opens the server on purpose."""
    if host is None or allowed or host in ("127.0.0.1", "localhost", "::1"):
        return
    raise SurgVLPError(f"refusing to serve on {host} (reachable from other machines): start with --host 127.0.0.1, "
                       "or add --conf allow_remote true behind TLS and a firewall")
