"""``surgvlp embed``: its exact interface, its .npz contents, and one-line errors for bad input."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from surgvlp.cli import build_parser, main
from surgvlp.errors import SurgVLPError
from surgvlp.recognition.scoring import phase_probabilities
from surgvlp.network.encoder import SurgVLPEncoder

SURGVLP = str(Path(sys.executable).with_name("surgvlp"))  # the installed console script
PROMPTS = "In preparation phase I insert trocars to patient abdomen cavity\nI use hook to dissect it \nWashing\n"


@pytest.fixture(scope="module")
def frame_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Frames named so that natural order differs from lexical order (f_2 before f_10), each of its own colour:
    reddish, greenish, bluish, far enough apart that even the untrained model scores them differently."""
    folder = tmp_path_factory.mktemp("frames")
    for index, colour in {1: (200, 40, 40), 2: (40, 200, 40), 10: (40, 40, 200)}.items():
        Image.fromarray(np.broadcast_to(np.array(colour, dtype=np.uint8), (240, 320, 3)).copy()).save(folder / f"f_{index}.png")
    return folder


@pytest.fixture
def embed_args(tiny_model, frame_folder, tmp_path) -> list[str]:
    prompts = tmp_path / "prompts.txt"
    prompts.write_text(PROMPTS)
    return [
        "embed", "--checkpoint", str(tiny_model.checkpoint), "--text-model", str(tiny_model.text_model_dir),
        "--frames", str(frame_folder), "--prompts", str(prompts), "--out", str(tmp_path / "out.npz"),
        "--device", "cpu", "--batch-size", "2", "--allow-untrained",
    ]


def test_embed_writes_the_documented_arrays(tiny_model, frame_folder, embed_args, tmp_path):
    assert main(embed_args) == 0
    with np.load(tmp_path / "out.npz") as result:
        image, text, probabilities = result["image_embeddings"], result["text_embeddings"], result["probabilities"]
        assert bool(result["untrained"]) is True
        assert result["prompts"].tolist()[1] == "I use hook to dissect it "  # trailing space kept
    assert image.shape == (3, 768) and image.dtype == np.float32
    assert text.shape == (3, 768) and text.dtype == np.float32
    assert probabilities.shape == (3, 3)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)

    unit = image / np.linalg.norm(image, axis=1, keepdims=True)
    assert (unit @ unit.T)[~np.eye(3, dtype=bool)].max() < 0.9  # the frames' embeddings differ: order matters
    assert np.abs(np.diff(probabilities, axis=0)).max() > 0.1
    encoder = SurgVLPEncoder.from_files(tiny_model.checkpoint, tiny_model.text_model_dir, device="cpu")
    natural_order = [np.asarray(Image.open(frame_folder / f"f_{index}.png")) for index in (1, 2, 10)]
    np.testing.assert_allclose(image, encoder.encode_frames(natural_order), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(text, encoder.encode_prompts(PROMPTS.splitlines()), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(probabilities, phase_probabilities(image, text), rtol=1e-4, atol=1e-6)


def test_without_prompts_only_the_image_encoder_is_loaded(tiny_model, embed_args, tmp_path):
    """The cold start of ``embed`` on frames: neither transformers nor torchvision is imported, and the frame
    embeddings are those of the whole model, to the bit."""

    def run(arguments: list[str], out: Path) -> tuple[np.ndarray, set[str]]:
        """The image embeddings written, and the top-level packages imported on the way."""
        completed = subprocess.run(
            [sys.executable, "-X", "importtime", SURGVLP, *arguments, "--out", str(out)],
            capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"},
        )
        assert completed.returncode == 0, completed.stderr
        imported = {line.rsplit("|", 1)[1].strip().split(".")[0] for line in completed.stderr.splitlines() if line.startswith("import time:")}
        with np.load(out) as result:
            return result["image_embeddings"], imported

    with_prompts = embed_args[: embed_args.index("--out")] + embed_args[embed_args.index("--out") + 2 :]
    without = with_prompts[: with_prompts.index("--prompts")] + with_prompts[with_prompts.index("--prompts") + 2 :]
    reference, imported_with_prompts = run(with_prompts, tmp_path / "with.npz")
    images, imported = run(without, tmp_path / "without.npz")
    assert "transformers" in imported_with_prompts
    assert "transformers" not in imported and "torchvision" not in imported and "torch" in imported
    np.testing.assert_array_equal(images, reference)

    image_only = SurgVLPEncoder.from_files(tiny_model.checkpoint, tiny_model.text_model_dir, device="cpu", text_encoder=False)
    with pytest.raises(SurgVLPError, match="loaded without its text encoder"):
        image_only.encode_prompts(["Washing"])


def test_untrained_model_needs_explicit_consent(embed_args, tmp_path, capsys, monkeypatch):
    refused = [arg for arg in embed_args if arg != "--allow-untrained"]
    assert main(refused) == 2
    assert "--allow-untrained" in capsys.readouterr().err
    assert not (tmp_path / "out.npz").exists()
    monkeypatch.setenv("SURGVLP_ALLOW_UNTRAINED", "1")
    assert main(refused) == 0


@pytest.mark.parametrize(
    ("prompts", "message"),
    [("", "is empty"), ("first\n\nthird\n", "line 2 is an empty prompt")],
)
def test_bad_prompt_files_are_one_line_errors(embed_args, tmp_path, capsys, prompts, message):
    (tmp_path / "prompts.txt").write_text(prompts)
    assert main(embed_args) == 2
    error = capsys.readouterr().err
    assert message in error and error.count("\n") == 1
    assert not (tmp_path / "out.npz").exists()


def test_truncated_checkpoint_exits_non_zero_with_one_line(tiny_model, frame_folder, tmp_path):
    broken = tmp_path / "broken.pth"
    broken.write_bytes(tiny_model.checkpoint.read_bytes()[:4096])
    completed = subprocess.run(
        [SURGVLP, "embed", "--checkpoint", str(broken), "--text-model",
         str(tiny_model.text_model_dir), "--frames", str(frame_folder), "--out", str(tmp_path / "out.npz")],
        capture_output=True, text=True, timeout=120,
    )
    assert completed.returncode == 2
    assert completed.stderr.count("\n") == 1 and "truncated or corrupt" in completed.stderr
    assert "Traceback" not in completed.stderr
    assert not (tmp_path / "out.npz").exists()


def test_help_lists_every_subcommand_with_a_description():
    completed = subprocess.run([SURGVLP, "--help"], capture_output=True, text=True, timeout=60)
    assert completed.returncode == 0
    subcommands = next(action for action in build_parser()._actions if action.dest == "command")
    described = {choice.dest: choice.help for choice in subcommands._choices_actions}
    for command in ("sample-data", "embed", "phases", "tools", "evaluate", "adapt", "cache", "weights"):
        assert command in completed.stdout
        assert len(described[command]) > 20, f"{command} has no one-line description"
