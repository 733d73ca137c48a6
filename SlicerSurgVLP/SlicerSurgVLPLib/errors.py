"""The one exception the module shows to the user, and the one a cancelled job raises.

Every failure the library can foresee (a server that does not answer, a 4xx answer, a damaged file, an
invalid edit) becomes a ``ClientError`` whose message is one line, fit for a message box; the module
never shows a traceback.
"""

from __future__ import annotations


class ClientError(Exception):
    """A failure explained in one line."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(" ".join(str(message).split()))
        self.status = status


class Cancelled(ClientError):
    """The user cancelled a long job; the server was told to stop it."""
