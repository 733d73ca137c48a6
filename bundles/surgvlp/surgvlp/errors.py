"""The one exception type that reaches users as a one-line message."""


class SurgVLPError(Exception):
    """A problem with the user's input or environment, phrased so that the message alone tells what to do.

    The CLI prints it as a single line and exits non-zero; the server answers it with HTTP 4xx. Anything
    else that escapes is a bug in this package and keeps its traceback.
    """
