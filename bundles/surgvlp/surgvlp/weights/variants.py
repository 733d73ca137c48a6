"""Where each model's files come from: the three checkpoints and the Bio_ClinicalBERT text-model files.

No checksums are published upstream, so the registry holds only URLs; the SHA-256 of what arrives is
recorded on first fetch (see ``store``). Every URL can be redirected to a hospital mirror, by argument or by
environment variable, because clinical networks often cannot reach the public hosts.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from surgvlp.errors import SurgVLPError


@dataclass(frozen=True)
class Variant:
    """A model to download: a SurgVLP-family zip, or (for SAM2) the hub folder its files are fetched from."""

    name: str
    display_name: str
    url: str

    @property
    def url_env(self) -> str:
        """The environment variable that points this model at a mirror (``SURGVLP_SAM2_TINY_URL`` for ``sam2-tiny``)."""
        return f"SURGVLP_{self.name.upper().replace('-', '_')}_URL"


VARIANTS: dict[str, Variant] = {
    variant.name: variant
    for variant in (
        Variant("surgvlp", "SurgVLP", "https://seafile.unistra.fr/f/93757ace1bfc47248e1e/?dl=1"),
        Variant("hecvl", "HecVL", "https://seafile.unistra.fr/f/3b9b9207068a4b03bc2a/?dl=1"),
        Variant("peskavlp", "PeskaVLP", "https://seafile.unistra.fr/f/65a2b1bf113e428280d0/?dl=1"),
    )
}

TEXT_MODEL_REPO = "emilyalsentzer/Bio_ClinicalBERT"
TEXT_MODEL_DIRNAME = "Bio_ClinicalBERT"
TEXT_MODEL_URL = f"https://huggingface.co/{TEXT_MODEL_REPO}/resolve/main"
TEXT_MODEL_URL_ENV = "SURGVLP_TEXT_MODEL_URL"
# Only the architecture and the vocabulary: the SurgVLP-family checkpoint replaces all of BERT's weights,
# so pytorch_model.bin (400 MB) is never fetched.
REQUIRED_TEXT_MODEL_FILES = ("config.json", "vocab.txt")
TOKENIZER_CONFIG = "tokenizer_config.json"
TEXT_MODEL_FILES = (*REQUIRED_TEXT_MODEL_FILES, TOKENIZER_CONFIG)

# The hub folder has no tokenizer_config.json; in its absence upstream's AutoTokenizer builds BERT's
# tokenizer with its defaults, which lower-case although the vocabulary is cased. The published models were
# trained and evaluated through that default, so the file written in its place states it (and nothing else:
# tests/test_parity.py checks that both folders tokenise alike) rather than the model card's "cased", which
# would change the tokens and the published numbers.
DEFAULT_TOKENIZER_CONFIG = {"tokenizer_class": "BertTokenizer", "do_lower_case": True}


def _lookup(registry: dict[str, Variant], name: str, what: str) -> Variant:
    try:
        return registry[name.lower()]
    except KeyError:
        raise SurgVLPError(f"unknown {what} {name!r}; choose one of {', '.join(registry)}") from None


def get_variant(name: str) -> Variant:
    return _lookup(VARIANTS, name, "model variant")


def checkpoint_url(variant: Variant, url: str | None = None) -> str:
    """The zip to download: ``url`` if given, else ``$SURGVLP_<VARIANT>_URL``, else the official link."""
    return url or os.environ.get(variant.url_env) or variant.url


def text_model_url(url: str | None = None) -> str:
    """The folder URL the text-model files are fetched from (each file is ``<base>/<name>``)."""
    return (url or os.environ.get(TEXT_MODEL_URL_ENV) or TEXT_MODEL_URL).rstrip("/")


# The public SAM2.1 trackers in the transformers layout (Apache-2.0), fetched file by file from their hub folders.
SAM2_MODELS: dict[str, Variant] = {
    model.name: model
    for model in (
        Variant("sam2-tiny", "SAM2.1 Hiera-Tiny", "https://huggingface.co/facebook/sam2.1-hiera-tiny/resolve/main"),
        Variant("sam2-small", "SAM2.1 Hiera-Small", "https://huggingface.co/facebook/sam2.1-hiera-small/resolve/main"),
    )
}

# The architecture and the weights. The preprocessing (a square resize to the config's image_size and the
# ImageNet normalisation) follows from the config, so the hub's processor files are not needed.
SAM2_FILES = ("config.json", "model.safetensors")
SAM2_MODEL_TYPES = frozenset({"sam2_video", "sam2"})


def get_sam2_model(name: str) -> Variant:
    return _lookup(SAM2_MODELS, name, "SAM2 model")


def sam2_url(model: Variant, url: str | None = None) -> str:
    """The folder URL the model's files are fetched from (each file is ``<base>/<name>``)."""
    return checkpoint_url(model, url).rstrip("/")
