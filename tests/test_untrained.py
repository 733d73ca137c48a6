"""The random-weight test model: its untrained mark travels with the file, and its outputs follow its input.

The mark is checked where it used to be lost: a copy imported into a weights folder, and a copy passed by
path to a run whose weights folder has never seen it (a bundle converted from a copy: test_bundle.py).
"""

from __future__ import annotations

import csv
import json
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from surgvlp.cli import main
from surgvlp.errors import SurgVLPError
from surgvlp.network.loading import load_model
from surgvlp.network.untrained import ModelFiles, write_untrained_model
from surgvlp.recognition.scoring import unit_rows
from surgvlp.sources import open_source
from surgvlp.weights import WEIGHTS_DIR_ENV, WeightStore, sha256_file


@pytest.mark.parametrize("zipped", [False, True], ids=["pth", "zip"])
def test_an_imported_copy_is_untrained_and_refused_without_consent(
    tiny_model: ModelFiles, tmp_path: Path, capsys: pytest.CaptureFixture[str], zipped: bool
) -> None:
    source = Path(shutil.copy(tiny_model.checkpoint, tmp_path / "from-a-colleague.pth"))
    if zipped:
        with zipfile.ZipFile(tmp_path / "from-a-colleague.zip", "w", zipfile.ZIP_STORED) as archive:
            archive.write(source, "PeskaVLP.pth")
        source = tmp_path / "from-a-colleague.zip"
    folder = tmp_path / "weights"
    assert main(["weights", "import", str(source), "--name", "colleague", "--dir", str(folder)]) == 0
    assert "untrained (random) weights: run it with --checkpoint colleague --allow-untrained" in capsys.readouterr().out
    store = WeightStore(folder)
    assert store.resolve("colleague").untrained
    assert main(["weights", "list", "--dir", str(folder)]) == 0
    assert capsys.readouterr().out.splitlines()[2].split()[4] == "yes"
    with pytest.raises(SurgVLPError, match="untrained .* --allow-untrained"):
        load_model("colleague", text_model=tiny_model.text_model_dir, store=store)
    loaded = load_model("colleague", text_model=tiny_model.text_model_dir, store=store, allow_untrained=True, device="cpu")
    assert loaded.describe()["untrained"] is True


def test_a_copy_passed_by_path_to_another_weights_folder_is_refused_and_marks_every_output(
    tiny_model: ModelFiles, sample_case, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str], one_torch_thread: None,
) -> None:
    monkeypatch.setenv(WEIGHTS_DIR_ENV, str(tmp_path / "another-weights-folder"))
    copy = shutil.copy(tiny_model.checkpoint, tmp_path / "model.pth")
    out, table = tmp_path / "timeline.json", tmp_path / "timeline.csv"
    run = ["phases", str(sample_case.video), "--checkpoint", str(copy), "--text-model", str(tiny_model.text_model_dir),
           "--device", "cpu", "--out", str(out), "--csv", str(table)]
    assert main(run) == 2
    error = capsys.readouterr().err
    assert "untrained" in error and "--allow-untrained" in error and error.count("\n") == 1
    assert not out.exists() and not table.exists()

    assert main([*run, "--allow-untrained"]) == 0
    document = json.loads(out.read_text())
    assert document["untrained"] is True and document["model"]["untrained"] is True
    rows = list(csv.DictReader(table.read_text().splitlines()))
    assert len(rows) == 21 and {row["untrained"] for row in rows} == {"true"}


def test_the_same_seed_writes_the_same_file(tiny_model: ModelFiles, tmp_path: Path, one_torch_thread: None) -> None:
    """The fixture's model was written with the default thread count, this one with one thread."""
    again = write_untrained_model(tmp_path, size="tiny", seed=0)
    assert sha256_file(again.checkpoint) == sha256_file(tiny_model.checkpoint)


def test_calibration_makes_different_frames_point_different_ways(
    tiny_model: ModelFiles, sample_case, one_torch_thread: None
) -> None:
    """Uncalibrated, every pair of sample-case frames had a cosine above 0.997; calibrated, they spread out."""
    loaded = load_model("untrained-tiny", allow_untrained=True, device="cpu")
    frames = [frame.image for frame in open_source(sample_case.video, fps=1.0)]
    unit = unit_rows(loaded.encoder.encode_frames(frames, batch_size=8))
    cosines = (unit @ unit.T)[np.triu_indices(len(frames), 1)]
    assert cosines.min() < 0.0 and np.median(cosines) < 0.5
    state_dict = torch.load(tiny_model.checkpoint, map_location="cpu", weights_only=True)
    variances = [value for key, value in state_dict.items() if key.endswith("running_var")]
    assert all(not torch.equal(variance, torch.ones_like(variance)) for variance in variances)
