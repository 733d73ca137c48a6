"""Problems with a request become HTTP 4xx answers with a one-line ``detail``, never a 500 with a traceback.

The stock endpoints call the app and its datastore directly and let any exception become "500 Internal Server
Error". Every public method of the app's datastore and tasks therefore answers a ``SurgVLPError`` (what the core
and this app raise for bad input) as an ``HTTPException`` with the status its kind calls for; anything else
is a bug and stays a 500 with its traceback in the server log.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from fastapi import HTTPException

from surgvlp.errors import SurgVLPError

T = TypeVar("T")

_STATUS_BY_NAME = {
    "ImageNotFound": 404,
    "LabelNotFound": 404,
    "JobNotFound": 404,
    "ModelNotFound": 404,
    "UploadRefused": 405,
    "UploadTooLarge": 413,
    "ModelUnavailable": 409,
    "PacsError": 502,  # the PACS behind --studies http://... is unreachable or answered something unusable
}


def http_status(error: SurgVLPError) -> int:
    for kind in type(error).__mro__:
        if kind.__name__ in _STATUS_BY_NAME:
            return _STATUS_BY_NAME[kind.__name__]
    return 422


def as_http_error(error: SurgVLPError) -> HTTPException:
    return HTTPException(status_code=http_status(error), detail=str(error).splitlines()[0] if str(error) else type(error).__name__)


def answers_http(function: Callable[..., T]) -> Callable[..., T]:
    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> T:
        try:
            return function(*args, **kwargs)
        except SurgVLPError as error:
            raise as_http_error(error) from None

    return wrapper


def answers_http_everywhere(cls: type[T]) -> type[T]:
    """:func:`answers_http` on every public method the class defines."""
    for name, member in list(vars(cls).items()):
        if callable(member) and not name.startswith("_"):
            setattr(cls, name, answers_http(member))
    return cls
