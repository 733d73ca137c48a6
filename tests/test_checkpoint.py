"""Official-layout checkpoints load strictly; every other kind of file is named for what it is."""

from __future__ import annotations

import shutil
import zipfile

import pytest
import torch
from torchvision.models import resnet50

from surgvlp.network.checkpoint import file_is_marked_untrained, is_marked_untrained, load_network, read_state_dict
from surgvlp.errors import SurgVLPError
from surgvlp.network.model import SurgVLP
from surgvlp.network.text import PromptTokenizer, load_text_config


@pytest.fixture(scope="module")
def official_state_dict(tiny_model) -> dict[str, torch.Tensor]:
    return torch.load(tiny_model.checkpoint, map_location="cpu", weights_only=True)


def save(path, value):
    torch.save(value, path)
    return path


def test_position_ids_from_older_transformers_are_dropped(tiny_model, official_state_dict, tmp_path):
    with_position_ids = dict(official_state_dict)
    with_position_ids["backbone_text.model.embeddings.position_ids"] = torch.arange(128)[None]
    model, _ = load_network(save(tmp_path / "old.pth", with_position_ids), tiny_model.text_model_dir)
    torch.testing.assert_close(model.backbone_img.global_embedder.weight, official_state_dict["backbone_img.global_embedder.weight"])


def test_foreign_key_is_named(tiny_model, official_state_dict, tmp_path):
    extra = dict(official_state_dict, **{"backbone_img.model.fc.weight": torch.zeros(2, 2)})
    with pytest.raises(SurgVLPError, match=r"unexpected keys backbone_img\.model\.fc\.weight"):
        load_network(save(tmp_path / "extra.pth", extra), tiny_model.text_model_dir)


def test_missing_key_is_named(tiny_model, official_state_dict, tmp_path):
    partial = {key: value for key, value in official_state_dict.items() if "global_embedder" not in key}
    with pytest.raises(SurgVLPError, match=r"missing keys backbone_img\.global_embedder\.bias"):
        load_network(save(tmp_path / "partial.pth", partial), tiny_model.text_model_dir)


def test_the_image_half_alone_has_the_same_weights_and_is_checked_as_strictly(tiny_model, official_state_dict, tmp_path):
    """What ``embed`` without prompts loads: the image encoder, from a file it maps instead of reading."""
    image_only, tokenizer = load_network(tiny_model.checkpoint, tiny_model.text_model_dir, text_encoder=False)
    assert tokenizer is None and image_only.backbone_text is None
    image_keys = {key: value for key, value in official_state_dict.items() if key.startswith("backbone_img.")}
    assert image_only.state_dict().keys() == image_keys.keys()
    assert all(torch.equal(image_only.state_dict()[key], value) for key, value in image_keys.items())
    assert all(parameter.requires_grad for parameter in image_only.parameters())  # parameters, as a copying load leaves them
    partial = {key: value for key, value in official_state_dict.items() if "global_embedder" not in key}
    with pytest.raises(SurgVLPError, match=r"missing keys backbone_img\.global_embedder\.bias"):
        load_network(save(tmp_path / "partial.pth", partial), tiny_model.text_model_dir, text_encoder=False)
    with pytest.raises(SurgVLPError, match="surgvlp weights fetch"):
        load_network(tiny_model.checkpoint, tmp_path / "nowhere", text_encoder=False)


def test_files_that_cannot_be_mapped_or_hold_other_dtypes_load_as_before(tiny_model, official_state_dict, tmp_path):
    """A file in torch's legacy format is read whole; float16 tensors become the network's float32, as a copy would."""
    legacy = tmp_path / "legacy.pth"
    torch.save(official_state_dict, legacy, _use_new_zipfile_serialization=False)
    model, _ = load_network(legacy, tiny_model.text_model_dir, text_encoder=False)
    key = "backbone_img.global_embedder.weight"
    assert torch.equal(model.state_dict()[key], official_state_dict[key])
    half = save(tmp_path / "half.pth", {key: value.half() if value.is_floating_point() else value
                                        for key, value in official_state_dict.items()})
    for text_encoder in (True, False):
        model, _ = load_network(half, tiny_model.text_model_dir, text_encoder=text_encoder)
        assert model.state_dict()[key].dtype == torch.float32
        assert torch.equal(model.state_dict()[key], official_state_dict[key].half().float())


def test_torchvision_imagenet_checkpoint_is_recognised(tmp_path):
    path = save(tmp_path / "resnet50.pth", resnet50(weights=None).state_dict())
    with pytest.raises(SurgVLPError, match="torchvision ResNet ImageNet checkpoint"):
        read_state_dict(path)


def test_dataparallel_prefix_is_recognised(official_state_dict, tmp_path):
    path = save(tmp_path / "ddp.pth", {f"module.{key}": value for key, value in official_state_dict.items()})
    with pytest.raises(SurgVLPError, match="'module.'"):
        read_state_dict(path)


def test_wrapped_state_dict_is_not_a_state_dict(official_state_dict, tmp_path):
    path = save(tmp_path / "wrapped.pth", {"epoch": 3, "state_dict": official_state_dict})
    with pytest.raises(SurgVLPError, match="not a bare state_dict.*'state_dict'"):
        read_state_dict(path)


def test_non_dict_is_rejected(tmp_path):
    with pytest.raises(SurgVLPError, match="holds a Tensor, not a state_dict"):
        read_state_dict(save(tmp_path / "tensor.pth", torch.zeros(3)))


def test_pickled_module_is_rejected(tmp_path):
    with pytest.raises(SurgVLPError, match="not a plain state_dict"):
        read_state_dict(save(tmp_path / "module.pth", torch.nn.Linear(2, 2)))


def test_truncated_file_is_recognised(tiny_model, tmp_path):
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(tiny_model.checkpoint.read_bytes()[:1_000_000])
    with pytest.raises(SurgVLPError, match="truncated or corrupt"):
        read_state_dict(truncated)


def test_unextracted_download_is_recognised(tiny_model, tmp_path):
    archive = tmp_path / "PeskaVLP.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.write(tiny_model.checkpoint, "PeskaVLP.pth")
    with pytest.raises(SurgVLPError, match="zip archive holding PeskaVLP.pth.*surgvlp weights import"):
        read_state_dict(archive)


def test_checkpoint_for_another_text_model_is_a_shape_error(official_state_dict, tmp_path):
    text_dir = tmp_path / "text"
    text_dir.mkdir()
    (text_dir / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a"]) + "\n")
    (text_dir / "config.json").write_text(
        '{"model_type": "bert", "hidden_size": 768, "num_hidden_layers": 4, "num_attention_heads": 4,'
        ' "intermediate_size": 256, "max_position_embeddings": 128, "vocab_size": 6}'
    )
    with pytest.raises(SurgVLPError, match="word_embeddings.weight has shape"):
        load_network(save(tmp_path / "model.pth", official_state_dict), text_dir)


def test_missing_text_model_folder_says_how_to_fix(tiny_model, tmp_path):
    with pytest.raises(SurgVLPError, match="surgvlp weights fetch"):
        load_network(tiny_model.checkpoint, tmp_path / "nowhere")


# -- the untrained mark travels inside the file -------------------------------------------------------


def fresh_network(text_model_dir) -> SurgVLP:
    return SurgVLP(load_text_config(text_model_dir), PromptTokenizer(text_model_dir).sep_token_id)


def test_the_untrained_file_is_a_bare_state_dict_that_plain_torch_loads_strictly(tiny_model):
    """What upstream does with a checkpoint (torch.load, then a strict load_state_dict) works unchanged."""
    state_dict = torch.load(tiny_model.checkpoint, map_location="cpu", weights_only=True)
    assert all(isinstance(value, torch.Tensor) for value in state_dict.values())
    network = fresh_network(tiny_model.text_model_dir)
    assert not network.load_state_dict(state_dict, strict=True).missing_keys
    assert is_marked_untrained(state_dict)


def test_the_mark_survives_copying_and_reading_and_only_the_generator_sets_it(tiny_model, official_state_dict, tmp_path):
    copy = shutil.copy(tiny_model.checkpoint, tmp_path / "renamed.pth")
    assert file_is_marked_untrained(copy) and is_marked_untrained(read_state_dict(copy))
    # The same weights saved from a network (as any training script does) are not marked: the mark is
    # not in the tensors, and no official file has it.
    network = fresh_network(tiny_model.text_model_dir)
    network.load_state_dict(official_state_dict)
    resaved = save(tmp_path / "resaved.pth", network.state_dict())
    assert not file_is_marked_untrained(resaved) and not is_marked_untrained(read_state_dict(resaved))
    assert not file_is_marked_untrained(save(tmp_path / "plain.pth", dict(official_state_dict)))
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    assert not file_is_marked_untrained(tmp_path / "junk.pth")
