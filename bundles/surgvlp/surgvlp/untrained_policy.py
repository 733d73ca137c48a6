"""When random weights may run: only on the user's explicit request, by flag or environment variable.

Kept apart from the code that writes such models, so that checking the rule costs no torch import.
"""

from __future__ import annotations

import os

from surgvlp.errors import SurgVLPError

ALLOW_UNTRAINED_ENV = "SURGVLP_ALLOW_UNTRAINED"


def untrained_allowed(flag: bool = False) -> bool:
    """True when the user asked for untrained models, by flag or by environment variable."""
    return flag or os.environ.get(ALLOW_UNTRAINED_ENV, "").strip().lower() in {"1", "true", "yes"}


def require_untrained_allowed(what: str, flag: bool) -> None:
    if not untrained_allowed(flag):
        raise SurgVLPError(
            f"{what} holds untrained (random) weights whose outputs mean nothing; to run it anyway pass "
            f"--allow-untrained (bundle configs: --allow_untrained true; MONAI Label app: --conf allow_untrained true) "
            f"or set {ALLOW_UNTRAINED_ENV}=1"
        )
