"""Exact parity with the official SurgVLP code, checked against references that follow its recipe step by step.

The references never call our code: frames go through PIL and torchvision's v1 transforms on PIL images
(``Resize((360, 640))``, ``CenterCrop(224)``, ``ToTensor``, ``Normalize``), prompts through
``AutoTokenizer.from_pretrained(folder)`` with upstream's arguments, and the sentence embedding through
transformers' own ``BertModel`` and upstream's pooling written out loop by loop: pad to 77, sum the last four
BERT layers, merge word pieces into words up to [SEP], average over the 77 positions.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision.transforms as T
from PIL import Image
from transformers import AutoTokenizer, BertConfig, BertModel

from surgvlp.cli import build_parser
from surgvlp.cli.options import load_model_from_args
from surgvlp.errors import SurgVLPError
from surgvlp.network.checkpoint import load_network
from surgvlp.network.encoded import EncodedFrames
from surgvlp.network.encoder import SurgVLPEncoder
from surgvlp.network.preprocess import PREPROCESS_MODES, crop_frame, to_model_input
from surgvlp.network.text import PromptTokenizer
from surgvlp.network.loading import load_model
from surgvlp.recognition.cache import EmbeddingCache
from surgvlp.recognition.pipeline import frames_key
from surgvlp.sources import open_source
from surgvlp.weights import WeightStore

torch.set_num_threads(1)

# (width, height): endoscope SD and HD, the network's own size, odd, PAL, and smaller than the crop.
SIZES = [(854, 480), (1920, 1080), (640, 360), (333, 217), (720, 576), (160, 96)]

PROMPTS = [
    "In preparation phase I insert trocars to patient abdomen cavity",
    "In dissection phase I use the Hook to dissect the connective tissue between gallbladder and liver ",
    "Calot triangle: café, naïve, 胆囊 and CBD!",
    "Washing",
    " ".join(["I use the grasper to retract the gallbladder"] * 12),  # longer than 77 tokens: truncated
]
# Words that the cased test vocabulary holds in capitals, in place of the last words of the tiny one.
CAPITALISED = ["In", "I", "Hook", "Calot", "CBD", "Washing"]


def upstream_crop(image: np.ndarray) -> np.ndarray:
    """Upstream's geometry on a PIL image: torchvision Resize((360, 640)) then CenterCrop(224)."""
    return np.asarray(T.CenterCrop(224)(T.Resize((360, 640))(Image.fromarray(image))))


def upstream_tensor(image: Image.Image) -> torch.Tensor:
    """Upstream's whole image transform, on a PIL image."""
    transform = T.Compose([
        T.Resize((360, 640)),
        T.CenterCrop(224),
        T.ToTensor(),
        T.Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225]),
    ])
    return transform(image)


def upstream_image_embeddings(model, images: torch.Tensor) -> torch.Tensor:
    """ResNet-50 trunk, AdaptiveAvgPool2d to 1 x 1, then the projection, as upstream's image backbone."""
    trunk = model.backbone_img.model
    x = trunk.maxpool(trunk.relu(trunk.bn1(trunk.conv1(images))))
    x = trunk.layer4(trunk.layer3(trunk.layer2(trunk.layer1(x))))
    return model.backbone_img.global_embedder(torch.nn.AdaptiveAvgPool2d((1, 1))(x).flatten(1))


def upstream_tokens(folder: Path, prompt: str) -> dict[str, torch.Tensor]:
    """One prompt as upstream's ``tokenize`` makes it: AutoTokenizer on the folder, padded to 77."""
    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    return tokenizer(prompt, return_tensors="pt", truncation=True, padding="max_length", max_length=77)


def upstream_bert(checkpoint: Path, folder: Path) -> BertModel:
    """Upstream's text model: transformers' own BertModel, with the eager attention upstream's version ran, and the
    checkpoint's ``backbone_text.model.*`` weights."""
    config = BertConfig.from_pretrained(str(folder))
    config._attn_implementation = "eager"
    bert = BertModel(config, add_pooling_layer=True)
    prefix = "backbone_text.model."
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    bert.load_state_dict({key[len(prefix):]: value for key, value in state.items() if key.startswith(prefix)}, strict=True)
    return bert.eval()


def upstream_sentence_embedding(bert: BertModel, folder: Path, prompt: str) -> torch.Tensor:
    """Upstream's BertEncoder with last_n_layers=4, aggregate 'sum', agg_tokens on, no normalisation."""
    tokens = upstream_tokens(folder, prompt)
    id_to_word = {index: word for word, index in AutoTokenizer.from_pretrained(str(folder)).get_vocab().items()}
    hidden = bert(**tokens, output_hidden_states=True).hidden_states
    per_token = torch.stack(hidden[-4:])[:, 0].permute(1, 0, 2)  # (77 tokens, 4 layers, D)
    merged: list[torch.Tensor] = []  # one (4, D) sum per word, then [SEP] on its own
    pieces: list[torch.Tensor] = []
    for embedding, token_id in zip(per_token, tokens["input_ids"][0].tolist()):
        word = id_to_word[token_id]
        if word == "[SEP]":
            merged.append(torch.stack(pieces).sum(dim=0))
            merged.append(embedding)
            break
        if word.startswith("##"):
            pieces.append(embedding)
        else:
            if pieces:
                merged.append(torch.stack(pieces).sum(dim=0))
            pieces = [embedding]
    padded = torch.cat([torch.stack(merged), torch.zeros(77 - len(merged), *per_token.shape[1:])])
    return padded.mean(dim=0).sum(dim=0)  # average over the 77 positions, then sum the four layers


def textured_frame(width: int, height: int, seed: int) -> np.ndarray:
    """Smooth colour waves with sensor-like noise: the noise is what exposes rounding differences."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width] / height
    phase = rng.uniform(0, 6, size=3)
    image = np.stack([np.sin(4 * x + 3 * y * c + p) for c, p in zip((1, 2, 3), phase)], axis=-1)
    return ((image + 1) * 127.5 + rng.normal(0, 8, image.shape)).clip(0, 255).astype(np.uint8)


def write_png_folder(folder: Path, size: tuple[int, int], count: int) -> list[Path]:
    folder.mkdir()
    paths = [folder / f"frame_{index}.png" for index in range(count)]
    for index, path in enumerate(paths):
        Image.fromarray(textured_frame(*size, seed=index)).save(path)
    return paths


def pil_loader(path: Path) -> Image.Image:
    """How upstream's frame dataset opens a frame."""
    with open(path, "rb") as file, Image.open(file) as image:
        return image.convert("RGB")


# -- preprocessing ----------------------------------------------------------------------------------


@pytest.mark.parametrize("size", SIZES, ids=lambda size: f"{size[0]}x{size[1]}")
def test_crops_are_bit_identical_to_upstream(size):
    for seed in range(2):
        frame = textured_frame(*size, seed)
        # A decoder hands over frames as views into rows padded to an alignment, as this one is.
        padded = np.zeros((frame.shape[0], frame.shape[1] + 13, 3), dtype=np.uint8)
        padded[:, : frame.shape[1]] = frame
        for image in (frame, padded[:, : frame.shape[1]]):
            ours = crop_frame(image)
            assert ours.dtype == np.uint8 and ours.shape == (224, 224, 3)
            np.testing.assert_array_equal(ours, upstream_crop(frame))


def test_the_tensor_resize_is_an_explicit_approximation():
    """What the comparison above would catch: the tensor kernel is another filter, off by at most one level."""
    differing = 0
    for size in SIZES:
        frame = textured_frame(*size, seed=0)
        difference = np.abs(crop_frame(frame, "tensor").astype(int) - upstream_crop(frame).astype(int))
        assert difference.max() <= 1
        differing += int(np.count_nonzero(difference))
    assert differing > 0


def test_model_input_equals_upstream_tensors_for_frames_of_mixed_sizes():
    frames = [textured_frame(*size, seed=3) for size in SIZES]
    ours = to_model_input(frames)
    reference = torch.stack([upstream_tensor(Image.fromarray(frame)) for frame in frames])
    assert ours.dtype == reference.dtype == torch.float32
    assert torch.equal(ours, reference)


@pytest.fixture(scope="module")
def frame_folder(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return write_png_folder(tmp_path_factory.mktemp("parity") / "frames", (854, 480), count=4)


@pytest.fixture(scope="module")
def encoder(tiny_model) -> SurgVLPEncoder:
    return SurgVLPEncoder.from_files(tiny_model.checkpoint, tiny_model.text_model_dir, device="cpu")


def assert_same_as_upstream(encoder: SurgVLPEncoder, ours: np.ndarray, images: torch.Tensor) -> None:
    """Bit for bit: same pixels, same memory layout, so the CPU sums in the same order."""
    with torch.inference_mode():
        reference = upstream_image_embeddings(encoder.model, images).numpy()
    np.testing.assert_array_equal(ours, reference)


@pytest.mark.parametrize("decode_workers", [0, 2], ids=["one-decoder", "decode-workers"])
def test_frame_embeddings_equal_upstream_from_the_files(encoder, frame_folder, decode_workers):
    """A frame folder through the encoder, serially and through decoding workers that crop, against upstream."""
    images = torch.stack([upstream_tensor(pil_loader(path)) for path in frame_folder])
    source = open_source(frame_folder[0].parent, fps=None)
    ours = encoder.encode_source(source, batch_size=len(frame_folder), decode_workers=decode_workers).embeddings
    assert_same_as_upstream(encoder, ours, images)


def test_encoding_frames_of_mixed_sizes_equals_upstream(encoder):
    frames = [textured_frame(*size, seed=5) for size in SIZES]
    images = torch.stack([upstream_tensor(Image.fromarray(frame)) for frame in frames])
    assert_same_as_upstream(encoder, encoder.encode_frames(frames, batch_size=len(frames)), images)


def test_the_preprocessing_is_part_of_the_cache_key(tiny_model, frame_folder, tmp_path):
    source = open_source(frame_folder[0].parent, fps=None)
    pil, tensor = (
        load_model("untrained-tiny", allow_untrained=True, device="cpu", preprocess=mode) for mode in ("pil", "tensor")
    )
    cache = EmbeddingCache(tmp_path / "cache")
    times = np.arange(len(source), dtype=np.float64)
    encoded = EncodedFrames(np.ones((len(source), 768), np.float32), times, times.astype(np.int64))
    cache.save_frames(frames_key(pil, source), encoded)
    assert cache.load_frames(frames_key(tensor, source)) is None
    np.testing.assert_array_equal(cache.load_frames(frames_key(pil, source)).embeddings, encoded.embeddings)


def test_the_cli_preprocess_option_reaches_the_encoder(tiny_model, frame_folder, tmp_path):
    command = ["embed", "--frames", str(frame_folder[0].parent), "--out", str(tmp_path / "e.npz")]
    command += ["--checkpoint", "untrained-tiny", "--allow-untrained", "--device", "cpu"]
    parser = build_parser()
    assert parser.parse_args(command).preprocess == "pil"
    for mode in PREPROCESS_MODES:
        assert load_model_from_args(parser.parse_args([*command, "--preprocess", mode])).encoder.preprocess == mode
    with pytest.raises(SystemExit):
        parser.parse_args([*command, "--preprocess", "gpu"])


def test_an_unknown_preprocessing_is_a_one_line_error(encoder):
    with pytest.raises(SurgVLPError, match="unknown preprocessing 'gpu'; choose one of pil, tensor"):
        SurgVLPEncoder(encoder.model, encoder.tokenizer, device="cpu", preprocess="gpu")


# -- tokenizer and text pooling ---------------------------------------------------------------------


def copy_text_folder(source: Path, dest: Path, vocab: list[str], tokenizer_config: dict | None) -> Path:
    dest.mkdir()
    shutil.copy(source / "config.json", dest / "config.json")
    (dest / "vocab.txt").write_text("\n".join(vocab) + "\n")
    if tokenizer_config is not None:
        (dest / "tokenizer_config.json").write_text(json.dumps(tokenizer_config))
    return dest


@pytest.fixture(scope="module")
def text_folders(tiny_model, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Folders with a cased vocabulary of the tiny model's size, so the tiny checkpoint loads with any of them.

    ``hub``: config and vocabulary only, as Bio_ClinicalBERT on the hub; ``installed``: that folder as
    ``weights import --text-model`` installs it; ``cased`` and ``configured``: with a tokenizer configuration.
    """
    root = tmp_path_factory.mktemp("text_folders")
    vocab = (tiny_model.text_model_dir / "vocab.txt").read_text().splitlines()
    vocab = vocab[: -len(CAPITALISED)] + CAPITALISED
    hub = copy_text_folder(tiny_model.text_model_dir, root / "hub", vocab, None)
    store = WeightStore(root / "weights")
    store.import_text_model(hub)
    return {
        "hub": hub,
        "installed": store.text_model_dir(),
        "cased": copy_text_folder(tiny_model.text_model_dir, root / "cased", vocab, {"do_lower_case": False}),
        "configured": copy_text_folder(
            tiny_model.text_model_dir,
            root / "configured",
            vocab,
            {"tokenizer_class": "BertTokenizer", "do_lower_case": True, "strip_accents": False, "model_max_length": 32},
        ),
    }


FOLDERS = ["hub", "installed", "cased", "configured"]


@pytest.mark.parametrize("name", FOLDERS)
def test_token_ids_equal_autotokenizer(text_folders, name):
    folder = text_folders[name]
    ours = PromptTokenizer(folder)(PROMPTS)
    for row, prompt in enumerate(PROMPTS):
        reference = upstream_tokens(folder, prompt)
        length = int(reference["attention_mask"].sum())
        assert int(ours["attention_mask"][row].sum()) == length
        for key in ("input_ids", "token_type_ids"):
            assert ours[key][row, :length].tolist() == reference[key][0, :length].tolist(), (key, prompt)


def test_the_installed_folder_tokenises_like_the_hub_folder(text_folders):
    for prompt in PROMPTS:
        hub, installed = upstream_tokens(text_folders["hub"], prompt), upstream_tokens(text_folders["installed"], prompt)
        assert hub["input_ids"].tolist() == installed["input_ids"].tolist()


def test_the_folders_differ_where_their_configurations_do(text_folders):
    """The tests above would catch a tokenizer that ignores the configuration: the ids really differ."""

    def ids(name: str, prompt: str) -> list[int]:
        encoded = PromptTokenizer(text_folders[name])([prompt])
        return encoded["input_ids"][0].tolist()

    assert ids("hub", "Hook") == ids("hub", "hook") != ids("cased", "Hook")
    assert ids("hub", "café") == ids("hub", "cafe") != ids("configured", "café")


@pytest.mark.parametrize("name", ["hub", "cased"])
def test_text_embeddings_follow_upstream_pooling(tiny_model, text_folders, name):
    folder = text_folders[name]
    model, tokenizer = load_network(tiny_model.checkpoint, folder)
    ours = SurgVLPEncoder(model, tokenizer, device="cpu").encode_prompts(PROMPTS)
    bert = upstream_bert(tiny_model.checkpoint, folder)
    with torch.inference_mode():
        reference = torch.stack([upstream_sentence_embedding(bert, folder, prompt) for prompt in PROMPTS]).numpy()
    np.testing.assert_allclose(ours, reference, rtol=1e-5, atol=1e-6)


def test_a_folder_whose_tokenizer_cannot_be_loaded_is_refused(text_folders, tmp_path):
    folder = tmp_path / "unknown"
    shutil.copytree(text_folders["hub"], folder)
    (folder / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "NoSuchTokenizer"}))
    with pytest.raises(SurgVLPError, match="tokenizer in"):
        PromptTokenizer(folder)
