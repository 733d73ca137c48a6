"""HTTP downloads for hospital networks: resumable, bounded by timeouts, failing with one clear line.

The checkpoints are several hundred megabytes and proxies cut long transfers, so the bytes go to a
``<name>.part`` file that a later attempt continues with an HTTP Range request; only a complete transfer is
renamed to its final name. Only the standard library is used, so proxies configured through the usual
``https_proxy`` variables apply.
"""

from __future__ import annotations

import http.client
import os
import sys
from pathlib import Path
from urllib.error import HTTPError, URLError
from urllib.request import Request, urlopen

from tqdm import tqdm

from surgvlp import __version__
from surgvlp.errors import SurgVLPError

CHUNK_BYTES = 1 << 20
DEFAULT_TIMEOUT_S = 60.0
DEFAULT_ATTEMPTS = 3


class DownloadError(SurgVLPError):
    """A download that failed for good; ``status`` is the HTTP status when the server answered with one."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class _Interrupted(Exception):
    """The transfer stopped early; what arrived stays in the ``.part`` file for the next attempt."""


def partial_path(dest: Path) -> Path:
    return dest.with_name(dest.name + ".part")


def download(
    url: str,
    dest: Path,
    *,
    timeout: float = DEFAULT_TIMEOUT_S,
    attempts: int = DEFAULT_ATTEMPTS,
    mirror_hint: str = "",
) -> Path:
    """Download ``url`` to ``dest``, resuming from ``dest.part`` and retrying cut transfers ``attempts`` times.

    ``mirror_hint`` ends the error message of an unreachable or refusing server, telling the user how to
    point this download elsewhere. A transfer still incomplete after the last attempt keeps its ``.part``
    file, so running the same command again continues where it stopped.
    """
    dest = Path(dest)
    part = partial_path(dest)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise DownloadError(f"cannot write to {dest.parent}: {error.strerror}") from None
    hint = f"; {mirror_hint}" if mirror_hint else ""
    for _ in range(attempts):
        try:
            _transfer(url, part, timeout, hint)
        except _Interrupted as stop:
            reason = stop
            continue
        os.replace(part, dest)
        return dest
    received = part.stat().st_size if part.exists() else 0
    raise DownloadError(
        f"download of {url} was cut {attempts} times ({reason}); {received} bytes are kept in {part}: "
        "run the same command again to resume"
    )


def _open(url: str, offset: int, timeout: float, hint: str) -> http.client.HTTPResponse:
    headers = {"User-Agent": f"surgvlp/{__version__}"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    try:
        return urlopen(Request(url, headers=headers), timeout=timeout)
    except HTTPError as error:
        error.close()
        if error.code == 416 and offset:
            raise _Interrupted(f"the server cannot resume at byte {offset}") from None
        raise DownloadError(f"{url} answered HTTP {error.code} {error.reason}{hint}", status=error.code) from None
    except URLError as error:
        raise DownloadError(f"cannot reach {url}: {error.reason}{hint}") from None
    except ValueError:
        raise DownloadError(f"{url!r} is not a valid URL{hint}") from None
    except (http.client.HTTPException, OSError) as error:
        raise _Interrupted(str(error) or type(error).__name__) from None


def _content_range_start(header: str | None) -> int | None:
    """The first byte of a ``Content-Range: bytes START-END/TOTAL`` header, None if it is not one."""
    try:
        return int(header.split()[1].split("-")[0])
    except (AttributeError, IndexError, ValueError):
        return None


def _content_length(header: str | None) -> int | None:
    try:
        return int(header)
    except (TypeError, ValueError):
        return None


def _transfer(url: str, part: Path, timeout: float, hint: str) -> None:
    """One attempt: continue ``part`` if the server honours the range request, else start it over."""
    offset = part.stat().st_size if part.exists() else 0
    response = _open(url, offset, timeout, hint)
    with response:
        if offset and response.status == 206:
            start = _content_range_start(response.headers.get("Content-Range"))
            if start != offset:
                part.unlink()
                raise _Interrupted(f"the server resumed at byte {start} instead of {offset}")
        else:
            offset = 0  # a plain 200 answer to a range request: the server sends the whole file again
        length = _content_length(response.headers.get("Content-Length"))
        total = None if length is None else offset + length
        try:
            out = open(part, "ab" if offset else "wb")
        except OSError as error:
            raise DownloadError(f"cannot write {part}: {error.strerror}") from None
        with out, tqdm(
            total=total,
            initial=offset,
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            desc=part.name.removesuffix(".part"),
            file=sys.stderr,
            disable=None,
        ) as progress:
            while True:
                try:
                    chunk = response.read(CHUNK_BYTES)
                except (http.client.HTTPException, OSError) as error:
                    raise _Interrupted(str(error) or type(error).__name__) from None
                if not chunk:
                    break
                try:
                    out.write(chunk)
                except OSError as error:
                    raise DownloadError(f"cannot write {part}: {error.strerror}") from None
                progress.update(len(chunk))
    received = part.stat().st_size
    if total is not None and received < total:
        raise _Interrupted(f"the connection closed after {received} of {total} bytes")
