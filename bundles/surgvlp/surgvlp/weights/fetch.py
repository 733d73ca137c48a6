"""``surgvlp weights fetch``: download a checkpoint and the text-model files into a weights folder.

A file that is already recorded and intact is not downloaded again, so fetching is also the repair
command: run it again and only what is missing or damaged is replaced.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from surgvlp.weights.download import DEFAULT_TIMEOUT_S, DownloadError, download
from surgvlp.weights.store import WeightEntry, WeightStore, sam2_entry_name, text_model_entry_name
from surgvlp.weights.variants import (
    SAM2_FILES,
    TEXT_MODEL_FILES,
    TEXT_MODEL_URL_ENV,
    TOKENIZER_CONFIG,
    checkpoint_url,
    get_sam2_model,
    get_variant,
    sam2_url,
    text_model_url,
)

HTTP_NOT_FOUND = 404


def fetch(
    variant: str,
    url: str | None = None,
    text_model_base_url: str | None = None,
    *,
    store: WeightStore | None = None,
    force: bool = False,
    timeout: float = DEFAULT_TIMEOUT_S,
) -> WeightEntry:
    """Download ``variant``'s official zip, install its checkpoint, then fetch the text model.

    ``url`` and ``text_model_base_url`` point at a mirror; without them ``$SURGVLP_<VARIANT>_URL`` and
    ``$SURGVLP_TEXT_MODEL_URL`` are used, then the official locations. ``force`` downloads again even
    what is intact.
    """
    spec = get_variant(variant)
    store = store or WeightStore()
    entry = None if force else store.intact_entry(spec.name)
    if entry is None:
        source = checkpoint_url(spec, url)
        archive = store.root / f"{spec.name}.zip"
        download(
            source,
            archive,
            timeout=timeout,
            mirror_hint=f"to use a mirror pass --url or set {spec.url_env}, or download the zip yourself "
            f"and run {store.command('import FILE.zip')}",
        )
        try:
            entry = store.install_checkpoint(spec.name, archive, source=source)
        finally:
            archive.unlink(missing_ok=True)
    fetch_text_model(text_model_base_url, store=store, force=force, timeout=timeout)
    return entry


def fetch_text_model(
    base_url: str | None = None,
    *,
    store: WeightStore | None = None,
    force: bool = False,
    timeout: float = DEFAULT_TIMEOUT_S,
) -> list[WeightEntry]:
    """Download Bio_ClinicalBERT's configuration and vocabulary; the checkpoint supplies all its weights.

    The hub folder has no tokenizer configuration; when the server has none, the one that reproduces
    upstream tokenisation is written instead.
    """
    store = store or WeightStore()
    base = text_model_url(base_url)
    entries = []
    with tempfile.TemporaryDirectory(prefix="surgvlp-text-model-") as staging:
        for filename in TEXT_MODEL_FILES:
            entry = None if force else store.intact_entry(text_model_entry_name(filename))
            if entry is None:
                entry = _fetch_text_model_file(store, f"{base}/{filename}", filename, Path(staging), timeout)
            entries.append(entry)
    return entries


def _fetch_text_model_file(store: WeightStore, url: str, filename: str, staging: Path, timeout: float) -> WeightEntry:
    try:
        downloaded = download(
            url,
            staging / filename,
            timeout=timeout,
            mirror_hint=f"to use a mirror pass --text-model-url or set {TEXT_MODEL_URL_ENV}, or copy the folder "
            f"in with {store.command('import --text-model DIR')}",
        )
    except DownloadError as error:
        if filename == TOKENIZER_CONFIG and error.status == HTTP_NOT_FOUND:
            return store.add_default_tokenizer_config()
        raise
    return store.add_text_model_file(filename, downloaded, source=url)


def fetch_sam2(
    name: str,
    url: str | None = None,
    *,
    store: WeightStore | None = None,
    force: bool = False,
    timeout: float = DEFAULT_TIMEOUT_S,
) -> list[WeightEntry]:
    """Download a public SAM2.1 model's configuration and weights into ``<weights>/<name>/``, SHA-256 recorded.

    ``url`` is the base of a mirror's folder (each file is ``<url>/<file>``); without it ``$SURGVLP_SAM2_<SIZE>_URL``
    and then the Hugging Face hub are used. The weights arrive beside their target as a resumable ``.part`` file
    and are moved into place only once checked.
    """
    model = get_sam2_model(name)
    store = store or WeightStore()
    base = sam2_url(model, url)
    entries = []
    for filename in SAM2_FILES:
        entry = None if force else store.intact_entry(sam2_entry_name(model.name, filename))
        if entry is None:
            source = f"{base}/{filename}"
            arrived = download(
                source,
                store.root / model.name / f".{filename}.download",
                timeout=timeout,
                mirror_hint=f"to use a mirror pass --url or set {model.url_env}, or copy the folder in with "
                f"{store.command(f'import --sam2 DIR --name {model.name}')}",
            )
            try:
                entry = store.install_sam2_file(model.name, filename, arrived, source=source, move=True)
            finally:
                arrived.unlink(missing_ok=True)
        entries.append(entry)
    return entries
