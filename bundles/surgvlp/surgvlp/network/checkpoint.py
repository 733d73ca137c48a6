"""Reading official SurgVLP / HecVL / PeskaVLP checkpoints: bare ``state_dict`` files with upstream key names.

Loading is strict. The only tolerated difference is ``backbone_text.model.embeddings.position_ids``, a
buffer that older transformers saved and that the network does without (it counts the positions itself).
Anything else means the file is not what the user thinks it is, and the error says what it looks like instead.

A random-weight file written by :mod:`surgvlp.network.untrained` carries its mark inside the file, in the
state_dict's ``_metadata`` (the per-module versions that ``torch.save`` keeps, ``torch.load`` restores and
``load_state_dict`` reads only for the modules it names). The file stays a bare state_dict in the official
layout that loads strictly anywhere, and every copy, import or conversion of it is still known to be untrained.

The file's tensors become the network's parameters as they are (``assign``), without a copy. A network of
the image half alone maps the file into memory instead of reading it, so BERT's weights are never read.
"""

from __future__ import annotations

import pickle
import zipfile
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

import torch

from surgvlp.errors import SurgVLPError
from surgvlp.network.model import SurgVLP
from surgvlp.network.text import PromptTokenizer, load_text_config, require_text_model_files

IGNORED_KEYS = frozenset({"backbone_text.model.embeddings.position_ids"})
BUNDLE_HEAD_KEY = "class_embeddings"
"""The one key a bundle's ``model.pt`` adds to the official layout: the class head that its own text encoder
computed (see :mod:`surgvlp.network.phase_network`). Read as an encoder checkpoint, the file is the official
weights, and the head, derived data, is left out."""
OFFICIAL_PREFIXES = ("backbone_img.model.", "backbone_img.global_embedder.", "backbone_text.model.")
IMAGE_PREFIX = "backbone_img."
SHOWN_KEYS = 3
UNTRAINED_MARK = "surgvlp:untrained"
"""The ``_metadata`` entry of an untrained file; no module has this name, so loading ignores it."""


def _describe_foreign(keys: list[str]) -> str:
    """A guess at what a state_dict without the official prefixes is, for the error message."""
    key_set = set(keys)
    if all(key.startswith("module.") for key in keys):
        return "its keys start with 'module.' (saved from DataParallel/DDP); official files have no prefix"
    if {"conv1.weight", "fc.weight"} <= key_set:
        return "it looks like a torchvision ResNet ImageNet checkpoint, not a SurgVLP-family one"
    if any(key.startswith(("bert.", "embeddings.word_embeddings")) for key in keys):
        return "it looks like a plain BERT checkpoint (e.g. Bio_ClinicalBERT's weights), not a SurgVLP-family one"
    return "its keys do not start with " + ", ".join(OFFICIAL_PREFIXES)


def _first(keys: Iterable[str]) -> str:
    keys = sorted(keys)
    shown = ", ".join(keys[:SHOWN_KEYS])
    return shown + (f" (and {len(keys) - SHOWN_KEYS} more)" if len(keys) > SHOWN_KEYS else "")


def _describe_unloadable(path: Path, error: Exception) -> str:
    size = path.stat().st_size
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
        inner = [name for name in names if name.endswith((".pth", ".pt"))]
        if inner:
            return (
                f"{path} is a zip archive holding {', '.join(inner)}, not a checkpoint: extract it, "
                f"or run `surgvlp weights import {path}`"
            )
    if isinstance(error, pickle.UnpicklingError):
        return f"{path} is not a plain state_dict (it holds pickled objects that are not tensors): {error}".splitlines()[0]
    if "central directory" in str(error) or "EOF" in str(error) or "unexpected" in str(error).lower():
        return f"{path} is truncated or corrupt ({size} bytes): download or copy it again"
    return f"{path} is not a PyTorch checkpoint ({size} bytes): {str(error).splitlines()[0]}"


def _describe_wrapper(path: Path, wrapper: dict) -> str:
    inner = [key for key, value in wrapper.items() if isinstance(value, dict)]
    hint = f"; the weights may be under {inner[0]!r}" if inner else ""
    return f"{path} is a dict with keys {_first(map(str, wrapper))}, not a bare state_dict as the official files are{hint}"


def mark_untrained(state_dict: OrderedDict[str, torch.Tensor]) -> OrderedDict[str, torch.Tensor]:
    """Mark a state_dict (as ``Module.state_dict()`` returns it) as random weights, before it is saved."""
    metadata = getattr(state_dict, "_metadata", None)
    state_dict._metadata = OrderedDict(metadata or {}) | {UNTRAINED_MARK: {"untrained": True}}
    return state_dict


def is_marked_untrained(state_dict: Mapping[str, torch.Tensor]) -> bool:
    return UNTRAINED_MARK in (getattr(state_dict, "_metadata", None) or {})


def file_is_marked_untrained(path: Path) -> bool:
    """Whether the checkpoint file carries the untrained mark, without reading its tensors.

    The file is memory-mapped, so this costs milliseconds even for a full checkpoint. A file torch cannot read
    this way holds no mark (the mark is only ever written in torch's zip format); loading it says what it is.
    """
    try:
        return is_marked_untrained(torch.load(path, map_location="cpu", weights_only=True, mmap=True))
    except Exception:  # torch raises RuntimeError, UnpicklingError, EOFError, ... for files it cannot map
        return False


def read_state_dict(path: Path, *, mmap: bool = False) -> OrderedDict[str, torch.Tensor]:
    """Load a checkpoint file on the CPU and check that it is a bare state_dict with official key prefixes.

    The result keeps the file's ``_metadata``, so :func:`is_marked_untrained` answers for it. With ``mmap`` a
    file in torch's zip format is mapped into memory, its tensors read when used (an older file cannot be, and
    is read whole); the file then stays open as long as they live.
    """
    path = Path(path)
    if not path.is_file():
        raise SurgVLPError(f"checkpoint {path} does not exist")
    try:
        state_dict = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap and zipfile.is_zipfile(path))
    except Exception as error:  # torch raises RuntimeError, UnpicklingError, EOFError, ... for bad files
        raise SurgVLPError(_describe_unloadable(path, error)) from None
    if not isinstance(state_dict, dict):
        raise SurgVLPError(f"{path} holds a {type(state_dict).__name__}, not a state_dict")
    if not all(isinstance(value, torch.Tensor) for value in state_dict.values()):
        raise SurgVLPError(_describe_wrapper(path, state_dict))
    dropped = IGNORED_KEYS | {BUNDLE_HEAD_KEY}
    keys = [key for key in state_dict if key not in dropped]
    foreign = [key for key in keys if not key.startswith(OFFICIAL_PREFIXES)]
    if foreign:
        raise SurgVLPError(f"{path} is not a SurgVLP-family checkpoint: {_describe_foreign(keys)}; unexpected keys {_first(foreign)}")
    return _selected(state_dict, lambda key: key not in dropped)


def _selected(state_dict: OrderedDict[str, torch.Tensor], keep: Callable[[str], bool]) -> OrderedDict[str, torch.Tensor]:
    """The entries whose key ``keep`` accepts, with the file's ``_metadata`` (which BatchNorm reads its version from)."""
    kept = OrderedDict((key, value) for key, value in state_dict.items() if keep(key))
    if hasattr(state_dict, "_metadata"):
        kept._metadata = state_dict._metadata
    return kept


def load_network(
    checkpoint: Path, text_model_dir: Path, *, text_encoder: bool = True
) -> tuple[SurgVLP, PromptTokenizer | None]:
    """Build the network from the text-model folder and load the checkpoint strictly, on the CPU.

    Without ``text_encoder`` the network is the image half alone, with no tokenizer: only the checkpoint's
    ``backbone_img.*`` tensors are read and checked, and transformers is not imported. With it, transformers
    serves the tokenizer and the configuration; BERT itself is :mod:`surgvlp.network.bert`.
    """
    if text_encoder:
        tokenizer = PromptTokenizer(text_model_dir)
        text_config, sep_token_id = load_text_config(text_model_dir), tokenizer.sep_token_id
    else:
        require_text_model_files(Path(text_model_dir))
        tokenizer, text_config, sep_token_id = None, None, None
    # No memory and no initial values (a second of work for BERT-base and ResNet-50): the checkpoint's tensors
    # take their place. The network keeps no buffers of its own that the checkpoint would not replace.
    with torch.device("meta"):
        model = SurgVLP(text_config, sep_token_id)
    state_dict = read_state_dict(checkpoint, mmap=not text_encoder)
    if not text_encoder:
        state_dict = _selected(state_dict, lambda key: key.startswith(IMAGE_PREFIX))
    expected = model.state_dict()
    missing = expected.keys() - state_dict.keys()
    unexpected = state_dict.keys() - expected.keys()
    if missing or unexpected:
        parts = [f"missing keys {_first(missing)}"] if missing else []
        parts += [f"unexpected keys {_first(unexpected)}"] if unexpected else []
        raise SurgVLPError(f"{checkpoint} does not match the network built from {text_model_dir}: {'; '.join(parts)}")
    mismatched = [key for key, value in state_dict.items() if value.shape != expected[key].shape]
    if mismatched:
        key = mismatched[0]
        raise SurgVLPError(
            f"{checkpoint} does not match the network built from {text_model_dir}: {key} has shape "
            f"{tuple(state_dict[key].shape)}, expected {tuple(expected[key].shape)}"
            + (f" ({len(mismatched) - 1} more mismatched)" if len(mismatched) > 1 else "")
        )
    for key, value in state_dict.items():  # a copying load would convert to the network's dtypes; so does this
        state_dict[key] = value.to(expected[key].dtype)
    model.load_state_dict(state_dict, strict=True, assign=True)
    return model.eval(), tokenizer
