"""``multipart/form-data`` bodies: encoding the form fields and files a request sends, parsing the
answer MONAI Label sends when a result has a file (its ``params`` JSON part beside an ``image`` part).

The standard library's ``cgi`` module that MONAI Label's own client parses with is gone from Python 3.13,
so both directions are done here on bytes, which keeps a binary part exactly as it was sent.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass

from .errors import ClientError

_BOUNDARY = re.compile(r'boundary="?([^";]+)"?', re.IGNORECASE)
_DISPOSITION_PARAM = re.compile(r';\s*([\w*-]+)="((?:[^"\\]|\\.)*)"|;\s*([\w*-]+)=([^;\s]+)')


@dataclass(frozen=True)
class Part:
    name: str
    data: bytes
    filename: str | None = None
    content_type: str | None = None


def encode(fields: dict[str, str], files: dict[str, tuple[str, bytes]] | None = None) -> tuple[str, bytes]:
    """(Content-Type header, body) of a form with text ``fields`` and ``files`` (name: (file name, bytes))."""
    boundary = uuid.uuid4().hex
    chunks = []
    for name, value in fields.items():
        chunks.append(_part_header(boundary, f'form-data; name="{_quoted(name)}"', None) + value.encode("utf-8"))
    for name, (filename, data) in (files or {}).items():
        disposition = f'form-data; name="{_quoted(name)}"; filename="{_quoted(filename)}"'
        chunks.append(_part_header(boundary, disposition, "application/octet-stream") + data)
    body = b"\r\n".join(chunks) + f"\r\n--{boundary}--\r\n".encode("ascii")
    return f"multipart/form-data; boundary={boundary}", body


def _quoted(text: str) -> str:
    if any(character in text for character in '"\r\n'):
        raise ClientError(f"{text!r} cannot be sent as a form field or file name")
    return text


def _part_header(boundary: str, disposition: str, content_type: str | None) -> bytes:
    lines = [f"--{boundary}", f"Content-Disposition: {disposition}"]
    if content_type:
        lines.append(f"Content-Type: {content_type}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8")


def parse(body: bytes, content_type: str) -> dict[str, Part]:
    """The parts of a multipart body, by form field name."""
    match = _BOUNDARY.search(content_type or "")
    if not match:
        raise ClientError("the server sent a multipart answer without a boundary")
    delimiter = b"--" + match.group(1).encode("latin-1")
    pieces = body.split(b"\r\n" + delimiter)
    first = pieces[0]
    if not first.startswith(delimiter):
        raise ClientError("the server's multipart answer does not start with its boundary")
    pieces[0] = first[len(delimiter):]
    if len(pieces) < 2 or not pieces[-1].startswith(b"--"):
        raise ClientError("the server's multipart answer is truncated (no closing boundary)")
    parts: dict[str, Part] = {}
    for piece in pieces[:-1]:
        part = _parse_part(piece)
        parts[part.name] = part
    return parts


def _parse_part(piece: bytes) -> Part:
    if not piece.startswith(b"\r\n"):
        raise ClientError("the server's multipart answer has a damaged part")
    head, separator, data = piece[2:].partition(b"\r\n\r\n")
    if not separator:
        raise ClientError("the server's multipart answer has a part without headers")
    headers = {}
    for line in head.decode("utf-8", "replace").split("\r\n"):
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    params = {}
    for quoted_name, quoted_value, bare_name, bare_value in _DISPOSITION_PARAM.findall(
            headers.get("content-disposition", "")):
        params[(quoted_name or bare_name).lower()] = quoted_value.replace('\\"', '"') if quoted_name else bare_value
    if "name" not in params:
        raise ClientError("the server's multipart answer has a part without a name")
    return Part(params["name"], data, params.get("filename"), headers.get("content-type"))
