"""HTTP to a PACS (its DICOMweb or Orthanc REST API) that reaches the configured server and nothing else.

Each request opens its own connection (callers may run in several threads) straight to the URL's host:
no proxy from the environment, no redirect followed. Failures become one-line errors the app maps to
HTTP answers: :class:`PacsError` (unreachable or unusable answer, 502) and :class:`UnknownVideo` (404).
"""

from __future__ import annotations

import http.client
import json
import re
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit

from surgvlp.errors import SurgVLPError


class PacsError(SurgVLPError):
    """The PACS cannot be reached or gave an unusable answer (the app answers 502)."""


class UnknownVideo(SurgVLPError):
    """No video instance has the given id on the PACS (the app answers 404)."""


_UID = re.compile(r"[0-9]+(\.[0-9]+)*")


def check_video_id(video_id: object) -> str:
    """``video_id`` if it can be a SOPInstanceUID (digits and dots, at most 64), before it goes into a URL."""
    if not isinstance(video_id, str) or len(video_id) > 64 or not _UID.fullmatch(video_id):
        raise UnknownVideo(f"{video_id!r}: not a video id (a DICOM SOPInstanceUID such as 1.2.840.99.1)")
    return video_id


class PacsEndpoint:
    """One base URL (``http(s)://host[:port][/path]``) of a PACS; ``timeout`` bounds each connect and each read."""

    def __init__(self, url: str, timeout: float, example: str) -> None:
        try:
            parts = urlsplit(url)
            port = parts.port
        except (TypeError, ValueError):
            parts = port = None
        if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
            raise SurgVLPError(f"{url}: not an http(s) URL of a PACS; give one like {example}")
        if parts.query or parts.fragment or parts.username:
            raise SurgVLPError(f"{url}: give the PACS URL without query, fragment or credentials, like {example}")
        if not timeout > 0:
            raise SurgVLPError(f"timeout {timeout!r}: must be a positive number of seconds")
        self.url = url.rstrip("/")
        self.timeout = timeout
        self._connection_class = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
        self._host, self._port = parts.hostname, port
        self._root = parts.path.rstrip("/")

    @contextmanager
    def request(
        self,
        method: str,
        path: str,
        doing: str,
        headers: dict[str, str],
        body: bytes | None = None,
        not_found: SurgVLPError | None = None,
    ) -> Iterator[http.client.HTTPResponse]:
        """The answer to one request below the base URL, its connection closed after use.

        Any status but 200/204 is a :class:`PacsError` naming what was being ``doing``; a 404 raises
        ``not_found`` instead where the caller knows what is missing.
        """
        connection = self._connection_class(self._host, self._port, timeout=self.timeout)
        try:
            try:
                connection.request(method, self._root + path, body=body, headers=headers)
                response = connection.getresponse()
            except (OSError, http.client.HTTPException) as error:
                reason = "timed out" if isinstance(error, socket.timeout) else getattr(error, "strerror", None) or error
                raise PacsError(f"{self.url}: cannot reach the server ({doing}): {reason}") from error
            if response.status == 404 and not_found is not None:
                raise not_found
            if response.status not in (200, 204):
                detail = _error_detail(response.read(4096))
                raise PacsError(
                    f"{self.url}: {doing} answered HTTP {response.status} {response.reason}"
                    + (f": {detail}" if detail else "")
                )
            yield response
        finally:
            connection.close()

    def read(self, response: http.client.HTTPResponse, doing: str) -> bytes:
        """The whole body of a small answer."""
        try:
            return response.read()
        except (OSError, http.client.HTTPException) as error:
            raise PacsError(f"{self.url}: {doing}: connection lost: {error}") from error

    def json(self, method: str, path: str, doing: str, body: bytes | None = None) -> object:
        """A request answered with JSON (None for an empty answer, as QIDO-RS's 204 No Content)."""
        with self.request(method, path, doing, {"Accept": "application/dicom+json, application/json"}, body) as answer:
            data = self.read(answer, doing)
        if not data.strip():
            return None
        try:
            return json.loads(data)
        except ValueError:
            raise PacsError(f"{self.url}: {doing} answered something that is not JSON") from None


def _error_detail(body: bytes) -> str:
    """One line from an error answer: Orthanc's JSON ``Details`` or ``Message``, else the first line of text."""
    try:
        answer = json.loads(body)
        text = str(answer.get("Details") or answer.get("Message") or "") if isinstance(answer, dict) else ""
    except ValueError:
        text = next((line for line in body.decode("utf-8", "replace").splitlines() if line.strip()), "")
    return " ".join(text.split())[:200]
