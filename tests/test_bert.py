"""The plain BERT is transformers' BertModel: the same state_dict layout, the same random draws and, on the same
weights, the same hidden states (eager attention bit for bit, the default SDPA kernel within 1e-5).

transformers' ``BertModel`` itself is the reference here (the package no longer imports it to build the network).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest
import torch
from transformers import BertConfig, BertModel

from surgvlp.errors import SurgVLPError
from surgvlp.network.bert import Bert, initialise_like_transformers
from surgvlp.network.text import load_text_config

torch.set_num_threads(1)

# Head size 24: the attention scale 24**-0.5 is not a power of two, so the order of its rounding shows.
CONFIG = dict(
    vocab_size=300, hidden_size=96, num_hidden_layers=3, num_attention_heads=4, intermediate_size=200,
    max_position_embeddings=64, layer_norm_eps=1e-12,
)


def reference_bert(attention: str) -> BertModel:
    config = BertConfig(**CONFIG)
    config._attn_implementation = attention
    return BertModel(config, add_pooling_layer=True).eval()


@pytest.fixture(scope="module")
def weights() -> dict[str, torch.Tensor]:
    """transformers' random weights with every bias and LayerNorm moved off its initial value, so that each shows."""
    torch.manual_seed(0)
    state = reference_bert("eager").state_dict()
    generator = torch.Generator().manual_seed(1)
    for key, value in state.items():
        if key.endswith("bias"):
            value.uniform_(-0.1, 0.1, generator=generator)
        elif "LayerNorm" in key:
            value.uniform_(0.5, 1.5, generator=generator)
    return state


@pytest.fixture(scope="module")
def tokens() -> dict[str, torch.Tensor]:
    """Three prompts of 17, 9 and 4 tokens padded to 17, with two token types."""
    generator = torch.Generator().manual_seed(2)
    lengths = torch.tensor([17, 9, 4])
    real = torch.arange(17)[None, :] < lengths[:, None]
    input_ids = torch.randint(1, CONFIG["vocab_size"], (3, 17), generator=generator) * real
    token_type_ids = (torch.arange(17)[None, :] >= (lengths[:, None] // 2)).long() * real
    return {"input_ids": input_ids, "attention_mask": real.long(), "token_type_ids": token_type_ids}


def ours_with(weights: dict[str, torch.Tensor]) -> Bert:
    with torch.device("meta"):  # as load_network builds it
        bert = Bert(BertConfig(**CONFIG))
    bert.load_state_dict(weights, strict=True, assign=True)
    return bert.eval()


def test_the_state_dict_layout_is_transformers_own():
    ours = Bert(BertConfig(**CONFIG)).state_dict()
    theirs = reference_bert("sdpa").state_dict()
    assert list(ours) == list(theirs)
    assert all(ours[key].shape == theirs[key].shape and ours[key].dtype == theirs[key].dtype for key in ours)
    assert "pooler.dense.weight" in ours


def test_built_on_the_meta_device_nothing_is_left_there(weights):
    bert = ours_with(weights)
    assert not any(tensor.is_meta for tensor in [*bert.parameters(), *bert.buffers()])


@pytest.mark.parametrize("attention", ["eager", "sdpa"])
def test_on_the_same_weights_every_hidden_state_and_the_pooler_match(weights, tokens, attention):
    reference = reference_bert(attention)
    reference.load_state_dict(weights, strict=True)
    ours = ours_with(weights)
    with torch.inference_mode():
        expected = reference(**tokens, output_hidden_states=True)
        hidden = ours(**tokens)
        pooled = ours.pooler(hidden[-1])
    assert len(hidden) == len(expected.hidden_states) == CONFIG["num_hidden_layers"] + 1
    assert not torch.equal(hidden[-1], hidden[-2])
    if attention == "eager":  # upstream's attention: to the bit, padded positions included
        assert all(torch.equal(mine, theirs) for mine, theirs in zip(hidden, expected.hidden_states))
        assert torch.equal(pooled, expected.pooler_output)
    else:
        for mine, theirs in zip(hidden, expected.hidden_states):
            torch.testing.assert_close(mine, theirs, rtol=0, atol=1e-5)
        torch.testing.assert_close(pooled, expected.pooler_output, rtol=0, atol=1e-5)


def test_padding_changes_nothing_for_the_real_tokens(weights, tokens):
    """What lets the tokenizer pad to the longest prompt of a call instead of to 77."""
    ours = ours_with(weights)
    with torch.inference_mode():
        batch = ours(**tokens)[-1][2, :4]
        alone = ours(**{key: value[2:, :4] for key, value in tokens.items()})[-1][0]
    torch.testing.assert_close(batch, alone, rtol=0, atol=1e-6)


def test_training_mode_computes_the_same(weights, tokens):
    """No dropout modules: an adapter or a caller that forgets ``eval()`` gets the same numbers."""
    ours = ours_with(weights)
    with torch.inference_mode():
        evaluated = ours(**tokens)[-1]
        ours.train()
        assert torch.equal(ours(**tokens)[-1], evaluated)


def test_random_weights_are_drawn_as_transformers_draws_them():
    """Untrained models keep the values transformers gave them: with the same seed, the same tensors."""
    config = BertConfig(**CONFIG)
    torch.manual_seed(3)
    theirs = BertModel(config, add_pooling_layer=True).state_dict()
    torch.manual_seed(3)
    ours = Bert(config)
    initialise_like_transformers(ours, config.initializer_range)
    assert all(torch.equal(value, theirs[key]) for key, value in ours.state_dict().items())
    assert not torch.equal(ours.embeddings.word_embeddings.weight[0], ours.embeddings.word_embeddings.weight[1])


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ({"hidden_act": "relu"}, "hidden_act 'relu'"),
        ({"position_embedding_type": "relative_key"}, "position_embedding_type 'relative_key'"),
        ({"is_decoder": True}, "only an encoder"),
        ({"num_attention_heads": 5}, "not a multiple"),
    ],
)
def test_other_architectures_are_refused(setting, message):
    with pytest.raises(SurgVLPError, match=message):
        Bert(BertConfig(**{**CONFIG, **setting}))


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ({"hidden_act": "gelu_new"}, "do not use: hidden_act 'gelu_new'"),
        ({"num_attention_heads": 0}, "not a multiple"),
        ({"hidden_size": "wide"}, "not a valid BERT configuration"),
    ],
)
def test_a_text_model_folder_with_another_architecture_is_refused_when_read(tiny_model, tmp_path, setting, message):
    """Before any network is built, in one line naming the file."""
    folder = tmp_path / "text_model"
    shutil.copytree(tiny_model.text_model_dir, folder)
    values = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**values, **setting}))
    with pytest.raises(SurgVLPError, match=message) as refused:
        load_text_config(folder)
    assert str(folder / "config.json") in str(refused.value) and "\n" not in str(refused.value)


def test_loading_the_whole_model_does_not_import_transformers_modeling_code(tiny_model):
    """The seconds this module saves at every start: neither BertModel's module nor torch._dynamo is imported."""
    code = (
        "import sys\n"
        "from surgvlp.network.checkpoint import load_network\n"
        f"model, tokenizer = load_network({str(tiny_model.checkpoint)!r}, {str(tiny_model.text_model_dir)!r})\n"
        "assert model.backbone_text is not None and tokenizer is not None\n"
        "print(sorted(name for name in ('transformers.models.bert.modeling_bert', 'transformers.modeling_utils',"
        " 'torch._dynamo') if name in sys.modules))\n"
    )
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.strip() == "[]"
