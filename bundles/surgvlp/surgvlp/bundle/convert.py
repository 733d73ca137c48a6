"""``surgvlp weights convert``: an official checkpoint into the MONAI bundle's ``models/`` layout.

A bundle keeps in ``models/model.pt`` the state_dict of its ``network_def``
(:class:`~surgvlp.network.phase_network.ZeroShotNetwork`): the official weights under their own key names,
checked to load strictly, plus the class embeddings of a phase prompt set, computed by the checkpoint's own
text encoder. The manifest records ``model.pt`` as ``model`` (untrained exactly when its source is, and then
``model.pt`` carries the untrained mark inside too, see ``surgvlp.network.checkpoint``) and the prompt-set
record keeps the SHA-256 of the official file it came from, which anyone can compare with their own download.

The bundle's ``configs/metadata.json`` describes the network's output channels, so it is rewritten with the
classes actually stored. ``model.pt``, the prompt-set record and the metadata are staged first and put in
place together, after every check has passed.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from surgvlp.atomic import atomic_path
from surgvlp.errors import SurgVLPError
from surgvlp.folders import BUNDLE_MARKER, bundle_dir
from surgvlp.network.checkpoint import file_is_marked_untrained, load_network, mark_untrained
from surgvlp.network.encoder import SurgVLPEncoder
from surgvlp.network.phase_network import (
    BUNDLE_CHECKPOINT,
    CHECKPOINT_FILE,
    HEAD_KEY,
    PROMPT_SET,
    PROMPT_SET_FILE,
    build_network,
    save_prompt_set,
)
from surgvlp.recognition.prompts import PromptSet, load_prompt_set
from surgvlp.weights import WeightEntry, WeightStore
from surgvlp.weights.archive import extract_checkpoint, is_checkpoint_archive
from surgvlp.weights.store import CHECKPOINT_TEXT_MODEL_DIRNAME

CONVERTED_PREFIX = "convert:"
DEFAULT_PROMPT_SET = "cholec80"
METADATA_INDENT = 4


@dataclass(frozen=True)
class ConvertedModel:
    checkpoint: WeightEntry
    text_model_dir: Path
    prompt_set: WeightEntry
    classes: list[str]


def describe_outputs(metadata: dict[str, Any], prompt_set: PromptSet) -> dict[str, Any]:
    """``metadata`` with the network's ``pred`` output describing the classes of ``prompt_set``."""
    names = prompt_set.class_names
    pred = metadata["network_data_format"]["outputs"]["pred"]
    pred.update(num_channels=len(names), spatial_shape=[1, len(names)], channel_def={str(i): name for i, name in enumerate(names)})
    metadata["pred_classes"] = (
        f"{len(names)} logits, 100 x cosine similarity to each {prompt_set.name} phase prompt; softmax over them "
        "gives the zero-shot phase probabilities"
    )
    return metadata


def _read_metadata(path: Path) -> dict[str, Any]:
    try:
        metadata = json.loads(path.read_text(encoding="utf-8"))
        metadata["network_data_format"]["outputs"]["pred"]
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise SurgVLPError(f"cannot read {path}: {error}") from None
    except (KeyError, TypeError):
        raise SurgVLPError(f"{path} has no network_data_format.outputs.pred to describe the stored classes") from None
    return metadata


def convert_checkpoint(
    source: str | Path,
    bundle: str | Path | None = None,
    prompt_set: str | Path | None = None,
    store: WeightStore | None = None,
) -> ConvertedModel:
    """Install ``source`` as ``<bundle>/models/model.pt`` with its text model and the head of a phase prompt set.

    ``source`` is a name recorded in ``store`` (default: the usual weights folder), a ``.pth`` file or an
    official ``.zip``; ``bundle`` defaults to :func:`surgvlp.folders.default_bundle_dir`; ``prompt_set`` to
    cholec80. Everything is checked before anything in the bundle is replaced.
    """
    store = store or WeightStore()
    root = bundle_dir(bundle)
    metadata_path = root / BUNDLE_MARKER
    metadata = _read_metadata(metadata_path)
    phases = load_prompt_set(prompt_set if prompt_set is not None else DEFAULT_PROMPT_SET)
    if phases.task != "phase":
        raise SurgVLPError(f"prompt set {phases.name!r} is for {phases.task} recognition; convert stores a phase prompt set")
    models = WeightStore(root / "models")
    entry = store.resolve(source)
    text_dir = store.text_model_dir_for(entry)
    with tempfile.TemporaryDirectory(prefix="surgvlp-convert-") as staging:
        checkpoint = entry.path
        if is_checkpoint_archive(checkpoint):
            checkpoint = Path(staging) / "checkpoint.pth"
            extract_checkpoint(entry.path, checkpoint)
        model, tokenizer = load_network(checkpoint, text_dir)
        untrained = entry.untrained or file_is_marked_untrained(checkpoint)  # also the mark inside an archive
        prompt_embeddings = SurgVLPEncoder(model, tokenizer, device="cpu").encode_prompts(phases.all_prompts())
        head = torch.from_numpy(phases.class_embeddings(prompt_embeddings)).float()
        network = build_network(text_dir, len(phases.classes))
        network.load_state_dict(model.state_dict() | {HEAD_KEY: head}, strict=True)
        text = json.dumps(describe_outputs(metadata, phases), indent=METADATA_INDENT, ensure_ascii=False) + "\n"
        with ExitStack() as together:
            staged_model, staged_prompts, staged_metadata = (
                together.enter_context(atomic_path(path))
                for path in (models.root / CHECKPOINT_FILE, models.root / PROMPT_SET_FILE, metadata_path)
            )
            state_dict = mark_untrained(network.state_dict()) if untrained else network.state_dict()
            with open(staged_model, "wb") as stream:  # a stream, so the archive's inner name is fixed: same tensors, same bytes
                torch.save(state_dict, stream)
            save_prompt_set(phases, entry.sha256, staged_prompts)
            staged_metadata.write_text(text, encoding="utf-8")
    converted = models.record(
        BUNDLE_CHECKPOINT, models.root / CHECKPOINT_FILE, source=CONVERTED_PREFIX + entry.source, untrained=untrained
    )
    prompts_entry = models.record(
        PROMPT_SET, models.root / PROMPT_SET_FILE, source=f"{CONVERTED_PREFIX}prompt set {phases.name}", untrained=untrained
    )
    installed_text_dir = _install_text_model(store, models, text_dir)
    models.record_own_text_model(converted)
    return ConvertedModel(converted, installed_text_dir, prompts_entry, phases.class_names)


def _install_text_model(store: WeightStore, models: WeightStore, text_dir: Path) -> Path:
    """Put the checkpoint's text model where ``models`` looks for it (see ``WeightStore.text_model_dir_in``).

    A test model carries its own small text model in a ``text_model/`` folder beside the checkpoint; it is
    copied beside ``model.pt``. Any other checkpoint uses Bio_ClinicalBERT, imported into the bundle's
    weights folder unless it is already there, and a ``text_model/`` folder left by an earlier conversion is
    removed, or it would shadow Bio_ClinicalBERT.
    """
    beside = models.root / CHECKPOINT_TEXT_MODEL_DIRNAME
    if text_dir.name == CHECKPOINT_TEXT_MODEL_DIRNAME:
        _replace_folder(text_dir, beside)
        return beside
    if store.root != models.root:
        models.import_text_model(text_dir)
    shutil.rmtree(beside, ignore_errors=True)
    return models.text_model_dir()


def _replace_folder(source: Path, dest: Path) -> None:
    """Copy ``source`` to ``dest`` so that ``dest`` is never a half-copied folder."""
    staged = dest.with_name(f".{dest.name}.partial")
    retired = dest.with_name(f".{dest.name}.old")
    try:
        for leftover in (staged, retired):
            shutil.rmtree(leftover, ignore_errors=True)
        shutil.copytree(source, staged)
        if dest.exists():
            dest.rename(retired)
        staged.rename(dest)
        shutil.rmtree(retired, ignore_errors=True)
    except OSError as error:
        shutil.rmtree(staged, ignore_errors=True)
        raise SurgVLPError(f"cannot write {dest}: {error.strerror or error}") from None
