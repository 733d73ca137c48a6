"""ONNX export of the bundle's network (image -> phase logits), and the check that ONNX Runtime computes what PyTorch computes.

The network's forward uses the image encoder and the stored class embeddings only, so the file holds
those: a classifier for the prompt set converted into ``model.pt``, with no text encoder.

The export uses PyTorch's TorchScript-based exporter (``dynamo=False``): it needs only the ``onnx`` package,
where the newer exporter would also need ``onnxscript``, and a ResNet-50 with a matrix-product head has
nothing it cannot trace. The file records where it came from in its metadata (``surgvlp.*`` keys), including
``surgvlp.untrained``, so a file made from random weights is never mistaken for a real model.
"""

from __future__ import annotations

import importlib
import json
import warnings
from pathlib import Path
from types import ModuleType

import numpy as np
import torch

from surgvlp.atomic import atomic_path
from surgvlp.errors import SurgVLPError
from surgvlp.network.phase_network import LoadedBundleNetwork, ZeroShotNetwork
from surgvlp.network.preprocess import CROP

ONNX_OPSET = 17
LOGIT_TOLERANCE = 1e-3
"""Largest accepted difference between ONNX Runtime and PyTorch logits on the CPU. The logits are 100 x cosine,
so this is 1e-5 on the cosine: far below anything that changes a probability or a decision, far above float32
rounding in a different operator order."""

CHECK_BATCH = 2


def _require(module: str, purpose: str) -> ModuleType:
    try:
        return importlib.import_module(module)
    except ImportError:
        raise SurgVLPError(f"{purpose} needs the {module} package, which is not installed: pip install {module}") from None


def export_onnx(loaded: LoadedBundleNetwork, out: Path, opset: int = ONNX_OPSET) -> Path:
    """Write ``image`` (N, 3, 224, 224) -> ``pred`` (N, C) as ONNX, any batch size, and return ``out``."""
    onnx = _require("onnx", "ONNX export")
    network = loaded.network.cpu().eval()
    example = torch.zeros(1, 3, CROP, CROP)
    out = Path(out)
    with atomic_path(out) as staged, warnings.catch_warnings():
        # The TorchScript exporter announces its deprecation on every call; it is chosen on purpose (see above).
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            network,
            (example,),
            str(staged),
            dynamo=False,
            input_names=["image"],
            output_names=["pred"],
            dynamic_axes={"image": {0: "batch"}, "pred": {0: "batch"}},
            opset_version=opset,
        )
        model = onnx.load(str(staged))
        onnx.helper.set_model_props(model, _provenance(loaded))
        onnx.save(model, str(staged))
    return out


def _provenance(loaded: LoadedBundleNetwork) -> dict[str, str]:
    checkpoint = loaded.checkpoint
    return {
        "surgvlp.untrained": json.dumps(checkpoint.untrained),
        "surgvlp.checkpoint": checkpoint.name,
        "surgvlp.checkpoint_sha256": checkpoint.sha256,
        "surgvlp.prompt_set": loaded.prompt_set.name,
        "surgvlp.classes": json.dumps(loaded.prompt_set.class_names),
        "surgvlp.logit_scale": repr(loaded.network.logit_scale),
        "surgvlp.preprocessing": "RGB, resize to 360x640, centre crop 224, ImageNet mean/std",
    }


def onnx_difference(network: ZeroShotNetwork, onnx_file: Path, batch: int = CHECK_BATCH, seed: int = 0) -> float:
    """Largest absolute difference between ONNX Runtime (CPU) and PyTorch logits on the same random images."""
    onnxruntime = _require("onnxruntime", "checking the ONNX file")
    images = torch.randn(batch, 3, CROP, CROP, generator=torch.Generator().manual_seed(seed))
    session = onnxruntime.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"])
    (onnx_logits,) = session.run(["pred"], {"image": images.numpy()})
    with torch.inference_mode():
        torch_logits = network.cpu().eval()(images).numpy()
    return float(np.abs(onnx_logits - torch_logits).max())
