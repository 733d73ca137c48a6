"""The text-model folder (Bio_ClinicalBERT's ``config.json`` and ``vocab.txt``) and prompt tokenisation.

Only the configuration, the vocabulary and the tokenizer settings come from the folder; the weights come
from the SurgVLP-family checkpoint. Nothing here reaches the network: the folder is fetched once by ``surgvlp weights fetch``.
transformers is imported by the functions that build its objects, so that checking the folder stays cheap.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from surgvlp.errors import SurgVLPError
from surgvlp.network.bert import unsupported_settings
from surgvlp.network.model import CONTEXT_LENGTH

if TYPE_CHECKING:
    import torch
    from transformers import BertConfig

TEXT_MODEL_FILES = ("config.json", "vocab.txt")


def require_text_model_files(folder: Path) -> None:
    """The folder holds the files that the tokenizer and BERT's configuration are read from.

    Checked even where only images are embedded (transformers is then not imported): every model records
    the text model it belongs to.
    """
    if not folder.is_dir():
        raise SurgVLPError(
            f"text model folder {folder} does not exist; run `surgvlp weights fetch <variant>` "
            "or copy Bio_ClinicalBERT's config.json and vocab.txt there"
        )
    missing = [name for name in TEXT_MODEL_FILES if not (folder / name).is_file()]
    if missing:
        raise SurgVLPError(f"text model folder {folder} lacks {', '.join(missing)}; it needs {', '.join(TEXT_MODEL_FILES)}")


def _first_line(error: Exception) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


def load_text_config(folder: Path) -> BertConfig:
    """BERT's architecture as described by ``config.json``, refused where :mod:`surgvlp.network.bert` does not build it.

    transformers' ``BertConfig``, because the tokenizer reads it too (``AutoTokenizer`` imports its module anyway,
    so it costs nothing more); BERT itself is not transformers'.
    """
    from huggingface_hub.errors import StrictDataclassError
    from transformers import BertConfig

    folder = Path(folder)
    require_text_model_files(folder)
    try:
        values = json.loads((folder / "config.json").read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise SurgVLPError(f"{folder / 'config.json'} is not readable JSON: {error}") from None
    if not isinstance(values, dict) or values.get("model_type", "bert") != "bert":
        raise SurgVLPError(f"{folder / 'config.json'} does not describe a BERT model")
    try:
        config = BertConfig(**{key: value for key, value in values.items() if key != "architectures"})
    except (StrictDataclassError, TypeError, ValueError) as error:  # a field of the wrong type
        raise SurgVLPError(f"{folder / 'config.json'} is not a valid BERT configuration: {_first_line(error)}") from None
    problems = unsupported_settings(config)
    if problems:
        raise SurgVLPError(f"{folder / 'config.json'} describes a BERT that SurgVLP models do not use: {'; '.join(problems)}")
    return config


class PromptTokenizer:
    """Tokenises prompts as upstream: ``AutoTokenizer`` on the text-model folder, truncated to 77 tokens.

    The folder's ``tokenizer_config.json``, when there is one, decides the casing, the special tokens and the
    rest, as it does upstream. Bio_ClinicalBERT's vocabulary is cased, but its hub folder has no tokenizer
    configuration, so there BERT's default applies and prompts are lower-cased: the published models were
    trained that way. Only local files are read (never the hub); the folder's ``config.json`` names the
    tokenizer when nothing else does, even where it lacks ``model_type``.

    Upstream pads every prompt to 77 tokens; we pad only to the longest prompt of the call. Masked padding
    never influences the real tokens and the pooling divides by 77 regardless, so the embeddings are the
    same while a set of short prompts costs a fraction of the text-encoder time. The tokenizer is built
    once per folder and reused for every call.
    """

    def __init__(self, folder: Path) -> None:
        from transformers import AutoTokenizer

        folder = Path(folder)
        config = load_text_config(folder)
        try:
            tokenizer = AutoTokenizer.from_pretrained(str(folder), config=config, local_files_only=True)
        except (OSError, ValueError, TypeError) as error:
            raise SurgVLPError(f"the tokenizer in {folder} cannot be loaded: {_first_line(error)}") from None
        if None in (tokenizer.sep_token_id, tokenizer.pad_token_id) or "token_type_ids" not in tokenizer.model_input_names:
            raise SurgVLPError(
                f"the tokenizer in {folder} is {type(tokenizer).__name__}; SurgVLP models need BERT's, "
                "with [SEP] and [PAD] tokens and token type ids"
            )
        self.tokenizer = tokenizer

    @property
    def sep_token_id(self) -> int:
        return self.tokenizer.sep_token_id

    def __call__(self, prompts: list[str]) -> dict[str, torch.Tensor]:
        if not prompts:
            raise SurgVLPError("no prompts given")
        empty = [index for index, prompt in enumerate(prompts) if not prompt.strip()]
        if empty:
            raise SurgVLPError(f"prompt {empty[0] + 1} is empty")
        encoded = self.tokenizer(
            list(prompts),
            padding="longest",
            truncation=True,
            max_length=CONTEXT_LENGTH,
            return_tensors="pt",
        )
        return {key: encoded[key] for key in ("input_ids", "attention_mask", "token_type_ids")}
