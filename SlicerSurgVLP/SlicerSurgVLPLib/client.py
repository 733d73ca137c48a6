"""The HTTP client of the SlicerSurgVLP MONAI Label server: stock MONAI Label REST plus the app's jobs.

Standard library only (``urllib``), so it runs inside any Slicer. Every request has a timeout; TLS
certificates are verified (a hospital's own CA is passed as ``cafile``, never by turning checks off).
Only requests that can be repeated without effect are retried after a dropped connection or a 502/503/504:
reads, and the infer calls, which the server joins to the running job when they are identical. Saving a
label or starting training is sent once: a lost answer may mean the server did act, and a blind retry
would save a second version. A 4xx/5xx answer becomes a ``ClientError`` with the server's one-line
``detail``.

Long work runs as a job behind ``POST /infer/{model}``: :meth:`ServerClient.run_job` starts (or joins) it,
polls it (the server never holds a request, so the client spaces its polls), reports its progress and, when
the caller asks, cancels it.
"""

from __future__ import annotations

import json
import socket
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from http.client import HTTPException
from typing import Any, Callable

from . import multipart
from .errors import Cancelled, ClientError

_RETRIED_STATUSES = (502, 503, 504)
_RUNNING = ("queued", "running")
MIN_POLL_INTERVAL = 0.05  # seconds between polls at the least, so that a quick job does not flood the server


@dataclass(frozen=True)
class Progress:
    """A job's state as the server reports it: ``done`` of ``total`` steps (total None: unknown)."""

    state: str
    done: int = 0
    total: int | None = None
    message: str = ""


@dataclass
class Answer:
    """A JSON answer and, when the server sent a multipart answer, its files by field name."""

    json: dict[str, Any]
    files: dict[str, bytes] = field(default_factory=dict)


@dataclass(frozen=True)
class Case:
    """One video of the server's datastore and its saved labels: per tag, per label id, how many versions."""

    id: str
    name: str
    labels: dict[str, dict[str, int]]


ProgressCallback = Callable[[Progress], None]
CancelCheck = Callable[[], bool]


class ServerClient:
    def __init__(self, url: str, timeout: float = 30.0, retries: int = 2, backoff: float = 0.5,
                 cafile: str | None = None) -> None:
        parts = urllib.parse.urlsplit(url.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ClientError(f"{url!r} is not a server address (expected http://HOST:PORT or https://HOST:PORT)")
        try:
            parts.port
        except ValueError:
            raise ClientError(f"{url!r} has an invalid port") from None
        self.url = urllib.parse.urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/"), "", ""))
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self._context = ssl.create_default_context(cafile=cafile) if parts.scheme == "https" else None

    # -- the server's resources -----------------------------------------------------------------------
    def info(self) -> dict[str, Any]:
        return self._json("GET", "/info/", idempotent=True)

    def cases(self) -> list[Case]:
        listing = self._json("GET", "/datastore/", {"output": "all"}, idempotent=True)
        cases = []
        for image_id, entry in sorted(listing.get("objects", {}).items()):
            entry = entry if isinstance(entry, dict) else {}
            name = ((entry.get("image") or {}).get("info") or {}).get("name") or image_id
            labels = {tag: {label_id: len((record or {}).get("versions") or [])
                            for label_id, record in (((label or {}).get("info") or {}).get("labels") or {}).items()}
                      for tag, label in (entry.get("labels") or {}).items()}
            cases.append(Case(image_id, str(name), labels))
        return cases

    def infer(self, model: str, image: str, params: dict[str, Any], timeout: float | None = None) -> Answer:
        """One ``POST /infer/{model}`` (a job start, poll or cancel); the server joins identical requests."""
        content_type, body = multipart.encode({"params": json.dumps(params)})
        return self._answer("POST", f"/infer/{_segment(model)}", {"image": image}, body, content_type,
                            idempotent=True, timeout=timeout)

    def run_job(self, model: str, image: str, params: dict[str, Any], progress: ProgressCallback | None = None,
                cancelled: CancelCheck | None = None, poll_interval: float = 0.5) -> Answer:
        """Run a long job to its end: start or join it, poll it every ``poll_interval`` seconds reporting its
        progress, cancel it on the server and raise ``Cancelled`` as soon as ``cancelled()`` says so.
        """
        poll_interval = max(MIN_POLL_INTERVAL, poll_interval)
        answer = self.infer(model, image, params)
        while True:
            job = _job(answer, model)
            if progress is not None:
                progress(job)
            if job.state == "done":
                return answer
            if job.state == "cancelled":
                raise Cancelled(f"{model}: the job was cancelled on the server")
            if job.state not in _RUNNING:
                raise ClientError(f"{model}: {job.message or 'the job ' + job.state}")
            if cancelled is not None and cancelled():
                self.infer(model, image, {"job": answer.json["job"]["id"], "cancel": True})
                raise Cancelled(f"{model}: cancelled")
            time.sleep(poll_interval)
            answer = self.infer(model, image, {"job": answer.json["job"]["id"]})

    def save_label(self, image: str, filename: str, data: bytes, tag: str = "final",
                   params: dict[str, Any] | None = None) -> dict[str, Any]:
        """Upload a label (a timeline ``.json`` or a ``.seg.nrrd``) as a new version; sent once, never retried."""
        content_type, body = multipart.encode({"params": json.dumps(params or {})}, {"label": (filename, data)})
        return self._json("PUT", "/datastore/label", {"image": image, "tag": tag}, body, content_type)

    def label(self, label_id: str, tag: str = "final", version: int | None = None) -> bytes:
        """The latest label under ``tag``, or its ``version`` (1 is the first saved)."""
        label = label_id if version is None else f"{label_id}@{int(version)}"
        return self._request("GET", "/datastore/label", {"label": label, "tag": tag}, idempotent=True)[2]

    def label_info(self, label_id: str, tag: str = "final") -> dict[str, Any]:
        return self._json("GET", "/datastore/label/info", {"label": label_id, "tag": tag}, idempotent=True)

    def start_training(self, model: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        body = json.dumps(params or {}).encode("utf-8")
        return self._json("POST", f"/train/{_segment(model)}", None, body, "application/json")

    def training_status(self) -> dict[str, Any] | None:
        """The latest training task (stock fields: ``status``, ``details``, ...), None when none ever ran."""
        try:
            return self._json("GET", "/train/", idempotent=True)
        except ClientError as error:
            if error.status == 404:
                return None
            raise

    def stop_training(self) -> dict[str, Any]:
        return self._json("DELETE", "/train/")

    # -- transport ------------------------------------------------------------------------------------
    def _json(self, method: str, path: str, query: dict[str, str] | None = None, body: bytes | None = None,
              content_type: str | None = None, idempotent: bool = False) -> dict[str, Any]:
        return self._answer(method, path, query, body, content_type, idempotent).json

    def _answer(self, method: str, path: str, query: dict[str, str] | None, body: bytes | None,
                content_type: str | None, idempotent: bool, timeout: float | None = None) -> Answer:
        status, headers, data = self._request(method, path, query, body, content_type, idempotent, timeout)
        kind = headers.get("content-type", "")
        if kind.startswith("multipart/"):
            parts = multipart.parse(data, kind)
            if "params" not in parts:
                raise ClientError(f"{method} {path}: the server's multipart answer has no params part")
            return Answer(_parse_json(parts["params"].data, path),
                          {name: part.data for name, part in parts.items() if name != "params"})
        return Answer(_parse_json(data, path))

    def _request(self, method: str, path: str, query: dict[str, str] | None = None, body: bytes | None = None,
                 content_type: str | None = None, idempotent: bool = False,
                 timeout: float | None = None) -> tuple[int, dict[str, str], bytes]:
        url = self.url + path + ("?" + urllib.parse.urlencode(query) if query else "")
        headers = {"Accept": "application/json, multipart/form-data, */*"}
        if content_type:
            headers["Content-Type"] = content_type
        attempts = 1 + (self.retries if idempotent else 0)
        for attempt in range(attempts):
            request = urllib.request.Request(url, data=body, headers=headers, method=method)
            try:
                with urllib.request.urlopen(request, timeout=timeout or self.timeout, context=self._context) as reply:
                    answer = reply.read()
                    return reply.status, {name.lower(): value for name, value in reply.headers.items()}, answer
            except urllib.error.HTTPError as error:
                if error.code in _RETRIED_STATUSES and attempt + 1 < attempts:
                    error.close()
                    time.sleep(self.backoff * 2 ** attempt)
                    continue
                raise ClientError(f"{method} {path}: {_detail(error)}", error.code) from None
            except (OSError, HTTPException) as error:  # URLError, timeouts, resets; HTTPError is caught above
                reason = getattr(error, "reason", error)
                if isinstance(reason, ssl.SSLCertVerificationError):
                    raise ClientError(f"{self.url}: the server's TLS certificate is not trusted "
                                      f"({reason.verify_message}); give its CA file") from None
                if attempt + 1 < attempts:
                    time.sleep(self.backoff * 2 ** attempt)
                    continue
                raise ClientError(f"cannot reach the server at {self.url} ({_reason_text(reason)})") from None
        raise AssertionError("unreachable")  # the loop returns or raises


def _segment(name: str) -> str:
    return urllib.parse.quote(name, safe="")


def _parse_json(data: bytes, path: str) -> dict[str, Any]:
    try:
        value = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise ClientError(f"{path}: the server's answer is not JSON") from None
    if not isinstance(value, dict):
        raise ClientError(f"{path}: the server answered {type(value).__name__}, not a JSON object")
    return value


def _job(answer: Answer, model: str) -> Progress:
    job = answer.json.get("job")
    if not isinstance(job, dict) or "state" not in job or "id" not in job:
        raise ClientError(f"{model}: the server's answer has no job (is it the SlicerSurgVLP app?)")
    return Progress(str(job["state"]), int(job.get("done") or 0),
                    None if job.get("total") is None else int(job["total"]), str(job.get("message") or ""))


def _detail(error: urllib.error.HTTPError) -> str:
    """The server's ``detail`` (FastAPI's list of validation errors joined), else the HTTP reason."""
    try:
        detail = json.loads(error.read()).get("detail")
    except (ValueError, AttributeError, OSError):
        detail = None
    finally:
        error.close()
    if isinstance(detail, list):
        detail = "; ".join(f"{'.'.join(str(item) for item in entry.get('loc', []))}: {entry.get('msg', '')}"
                           if isinstance(entry, dict) else str(entry) for entry in detail)
    return f"{detail} (HTTP {error.code})" if detail else f"HTTP {error.code} {error.reason}"


def _reason_text(reason: Any) -> str:
    if isinstance(reason, (socket.timeout, TimeoutError)):
        return "no answer in time"
    return str(getattr(reason, "strerror", None) or reason)
