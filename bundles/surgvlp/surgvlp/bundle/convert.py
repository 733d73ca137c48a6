"""``surgvlp weights convert``: an official checkpoint into the MONAI bundle's ``models/`` layout.

A bundle keeps its weights in ``models/model.pt``, a plain state_dict. The official SurgVLP, HecVL and
PeskaVLP files already are plain state_dicts with the key names our network uses, so converting means
checking (the file must load strictly into the network built from its text model) and copying the bytes
unchanged: ``model.pt`` keeps the SHA-256 of the file it came from, which anyone can compare with their
own download. The bundle's manifest records it as ``model``, untrained exactly when its source is.

Beside it go the text-model files the checkpoint needs, and optionally the class embeddings of a phase
prompt set (``phase_prompts.pt``), so that the frame-to-phase network runs without a tokenizer.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch

import surgvlp
from surgvlp.atomic import atomic_path
from surgvlp.network.checkpoint import load_network
from surgvlp.network.encoder import SurgVLPEncoder
from surgvlp.errors import SurgVLPError
from surgvlp.network.phase_network import BUNDLE_CHECKPOINT, PHASE_PROMPTS, PhasePrompts
from surgvlp.recognition.prompts import load_prompt_set
from surgvlp.weights import WeightEntry, WeightStore
from surgvlp.weights.archive import extract_checkpoint, is_checkpoint_archive
from surgvlp.weights.store import CHECKPOINT_TEXT_MODEL_DIRNAME

CHECKPOINT_FILE = "model.pt"
PHASE_PROMPTS_FILE = "phase_prompts.pt"
CONVERTED_PREFIX = "convert:"


def bundle_root() -> Path:
    """The bundle folder this package belongs to (the one holding ``configs/`` and ``models/``)."""
    return Path(surgvlp.__file__).resolve().parents[1]


@dataclass(frozen=True)
class ConvertedModel:
    checkpoint: WeightEntry
    text_model_dir: Path
    phase_prompts: WeightEntry | None


def convert_checkpoint(
    source: str | Path,
    bundle_dir: str | Path | None = None,
    prompt_set: str | Path | None = None,
    store: WeightStore | None = None,
) -> ConvertedModel:
    """Install ``source`` as ``<bundle_dir>/models/model.pt`` with its text model and, given a phase
    ``prompt_set``, its class embeddings.

    ``source`` is a name recorded in ``store`` (default: the usual weights folder), a ``.pth`` file or an
    official ``.zip``. Everything is checked before anything in the bundle is replaced.
    """
    store = store or WeightStore()
    models = WeightStore(Path(bundle_dir or bundle_root()) / "models")
    phases = load_prompt_set(prompt_set) if prompt_set is not None else None
    if phases is not None and phases.task != "phase":
        raise SurgVLPError(f"prompt set {phases.name!r} is for {phases.task} recognition; convert stores a phase prompt set")
    entry = store.resolve(source)
    text_dir = store.text_model_dir_for(entry)
    with tempfile.TemporaryDirectory(prefix="surgvlp-convert-") as staging:
        checkpoint = entry.path
        if is_checkpoint_archive(checkpoint):
            checkpoint = Path(staging) / "checkpoint.pth"
            extract_checkpoint(entry.path, checkpoint)
        model, tokenizer = load_network(checkpoint, text_dir)
        embeddings = None
        if phases is not None:
            prompt_embeddings = SurgVLPEncoder(model, tokenizer, device="cpu").encode_prompts(phases.all_prompts())
            embeddings = phases.class_embeddings(prompt_embeddings)

        with atomic_path(models.root / CHECKPOINT_FILE) as staged:
            shutil.copyfile(checkpoint, staged)
    converted = models.record(
        BUNDLE_CHECKPOINT, models.root / CHECKPOINT_FILE, source=CONVERTED_PREFIX + entry.source, untrained=entry.untrained
    )
    installed_text_dir = _install_text_model(store, models, text_dir)
    prompts_entry = None
    if phases is not None:
        PhasePrompts(phases, torch.from_numpy(embeddings).float(), converted.sha256).save(models.root / PHASE_PROMPTS_FILE)
        prompts_entry = models.record(
            PHASE_PROMPTS,
            models.root / PHASE_PROMPTS_FILE,
            source=f"{CONVERTED_PREFIX}prompt set {phases.name}",
            untrained=entry.untrained,
        )
    return ConvertedModel(converted, installed_text_dir, prompts_entry)


def _install_text_model(store: WeightStore, models: WeightStore, text_dir: Path) -> Path:
    """Put the checkpoint's text model where ``models`` looks for it (see ``WeightStore.text_model_dir_for``).

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
