"""The one model a server serves, loaded in the background so that the server answers from its first second.

Loading verifies every recorded hash and imports torch: seconds, during which ``/info`` already answers (the
models say ``"reason": "loading ..."``) and jobs wait for the model in their own threads. If the weights are missing
or untrained without permission, the models stay listed as unavailable with the reason and the command that
fixes it, and every infer call answers 4xx with it.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from lib.settings import AppSettings
from surgvlp.errors import SurgVLPError


class ModelUnavailable(SurgVLPError):
    """The server has no model to run (missing weights, an untrained model not allowed, a failed load)."""


class ModelService:
    def __init__(self, settings: AppSettings) -> None:
        self.settings = settings
        self._loaded = threading.Event()
        self._model: Any = None
        self._problem: str | None = None
        self._sam2: Any = None
        self._sam2_problem: str | None = None
        threading.Thread(target=self._load, name="surgvlp-model-load", daemon=True).start()

    def _load(self) -> None:
        import surgvlp
        from surgvlp.weights import WeightStore

        try:
            store = WeightStore(self.settings.weights_dir) if self.settings.weights_dir else None
            model = surgvlp.load_model(self.settings.checkpoint, device=self.settings.device,
                                       allow_untrained=self.settings.allow_untrained, store=store)
            import torch

            torch.set_num_threads(self.settings.threads)
            self._model = model
            self._load_sam2(store)
        except SurgVLPError as error:
            self._problem = f"{error} (then restart the server)"
        except Exception as error:  # a bug or a broken install: say so, keep serving the rest
            self._problem = f"the model failed to load ({type(error).__name__}: {error}); see the server log"
            raise
        finally:
            self._loaded.set()

    def _load_sam2(self, store: Any) -> None:
        """SAM2 for referring segmentation; without it masks come from the similarity maps alone (``coarse``)."""
        import surgvlp

        try:
            self._sam2 = surgvlp.load_sam2(self.settings.sam2, device=self.settings.device,
                                           allow_untrained=self.settings.allow_untrained, store=store)
        except SurgVLPError as error:
            self._sam2_problem = (f"{error}; until then masks come from the similarity maps alone (mode coarse): "
                                  f"`surgvlp weights fetch sam2-tiny`, then restart the server")

    def sam2(self) -> Any:
        """The SAM2 tracker, or None for coarse masks (after :meth:`model`, which loads both)."""
        return self._sam2

    def sam2_status(self) -> dict[str, Any]:
        if not self._loaded.is_set():
            return {"mode": None, "sam2_reason": "loading"}
        return {"mode": "coarse" if self._sam2 is None else "sam2", "sam2_reason": self._sam2_problem}

    def status(self) -> dict[str, Any]:
        """``available``, ``reason`` and ``untrained`` for ``/info``."""
        if not self._loaded.is_set():
            return {"available": True, "reason": f"loading {self.settings.checkpoint}", "untrained": None}
        if self._model is None:
            return {"available": False, "reason": self._problem, "untrained": None}
        return {"available": True, "reason": None, "untrained": self._model.untrained}

    def check_available(self) -> None:
        """Refuse at once when the model will not come (never waits: this runs inside the request)."""
        if self._loaded.is_set() and self._model is None:
            raise ModelUnavailable(f"no model to run: {self._problem}")

    def model(self) -> Any:
        """The loaded model, waiting for the load (call from a job's thread, never from a request)."""
        self._loaded.wait()
        self.check_available()
        return self._model

    def describe(self) -> dict[str, Any] | None:
        return self._model.describe() if self._model is not None else None

    def cache(self) -> Any:
        from surgvlp import EmbeddingCache

        return EmbeddingCache(self.settings.cache_dir) if self.settings.cache_dir else True

    @property
    def adapters_dir(self) -> Path:
        return self.settings.state_dir / "adapters"

    def adapter_path(self, prompt_set_name: str) -> Path:
        return self.adapters_dir / f"{prompt_set_name}.npz"
