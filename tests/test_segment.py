"""Referring segmentation with a tiny random SurgVLP and a tiny random SAM2, both loaded through the real code.

The similarity maps of the sample case are computed once (the image encoder is a full ResNet-50 on whole
360 x 640 frames, the slow part); tracking, coarse masks, writers and evaluation then run on them. Where a test
needs the target absent from some frames, it zeroes those frames' maps: the detection and tracking code are
the real ones, only their input is chosen.
"""

from __future__ import annotations

import dataclasses
import gzip
import json
import shutil
from pathlib import Path

import nrrd
import numpy as np
import pytest
import SimpleITK as sitk
import slicerio
import torch
from PIL import Image
from safetensors.torch import load_file, save_file

import surgvlp
from surgvlp.errors import SurgVLPError
from surgvlp.network.loading import load_model
from surgvlp.network.preprocess import whole_frames_to_model_input
from surgvlp.progress import CancelToken, Cancelled
from surgvlp.sample_data import INSTRUMENTS
from surgvlp.segmentation.detection import Seed, frame_scores, seed, start_frame
from surgvlp.segmentation.evaluation import dice_per_frame
from surgvlp.segmentation.pipeline import segment_maps, torch_threads
from surgvlp.segmentation.settings import DetectionSettings
from surgvlp.segmentation.similarity import SimilarityMaps, similarity_maps, upsample
from surgvlp.segmentation.tracking import HEAVY_OUTPUTS, KEPT_REDETECTIONS, MEMORY_OUTPUTS, _Session, load_sam2
from surgvlp.segmentation.untrained_sam2 import write_untrained_sam2
from surgvlp.sources import open_source
from surgvlp.weights.sam2_files import UNTRAINED_METADATA_KEY

TEXT = "the grasper"
ABSENT = 2
"""The first frames of the sample case whose maps a test zeroes, so that tracking starts after them."""


@pytest.fixture(scope="session")
def model(tiny_model):
    return load_model(tiny_model.checkpoint, allow_untrained=True, device="cpu")


@pytest.fixture(scope="session")
def tiny_sam2(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_untrained_sam2(tmp_path_factory.mktemp("sam2") / "sam2-tiny")


@pytest.fixture(scope="session")
def tracker(tiny_sam2: Path):
    return load_sam2(tiny_sam2, device="cpu", allow_untrained=True)


@pytest.fixture(scope="session")
def losing_tracker(tiny_sam2: Path, tmp_path_factory: pytest.TempPathFactory):
    """The same random SAM2 with its object-score head biased far below zero: it loses the object on every
    frame it tracks, so every such frame goes through re-detection."""
    folder = tmp_path_factory.mktemp("sam2-losing") / "sam2-losing"
    shutil.copytree(tiny_sam2, folder)
    weights = load_file(folder / "model.safetensors")
    weights["mask_decoder.pred_obj_score_head.proj_out.bias"] = torch.full_like(weights["mask_decoder.pred_obj_score_head.proj_out.bias"], -50.0)
    save_file(weights, folder / "model.safetensors", metadata={"format": "pt", UNTRAINED_METADATA_KEY: "true"})
    return load_sam2(folder, device="cpu", allow_untrained=True)


def case_source(sample_case, fps: float = 0.25, end: float | None = None):
    """The sample case's frame folder at ``fps`` (6 frames by default): whole seconds, for which masks exist."""
    return open_source(sample_case.frames, fps=fps, end=end)


@pytest.fixture(scope="session")
def maps(model, sample_case) -> SimilarityMaps:
    with torch_threads(1):
        return similarity_maps(model, case_source(sample_case), TEXT)


@pytest.fixture(scope="session")
def late_maps(maps: SimilarityMaps) -> SimilarityMaps:
    """The maps with the target gone from the first ``ABSENT`` frames."""
    probabilities = maps.probabilities.copy()
    probabilities[:ABSENT] = 0.0
    return dataclasses.replace(maps, probabilities=probabilities)


# -- similarity and detection --------------------------------------------------------------------------


def test_the_dense_map_pools_to_the_image_embedding_of_the_whole_frame(model, sample_case) -> None:
    frame = next(iter(case_source(sample_case))).image
    images = whole_frames_to_model_input([frame])
    with torch_threads(1):
        dense = model.encoder.encode_dense(images)
        pooled = model.encoder.encode_images(images)
    assert dense.shape == (1, 768, 12, 20)  # 360 x 640 in 32-pixel cells, rows rounded up
    torch.testing.assert_close(dense.mean(dim=(2, 3)), pooled, rtol=1e-4, atol=1e-4)


def test_maps_are_aligned_with_read_frames(maps: SimilarityMaps, sample_case) -> None:
    frames = surgvlp.read_frames(case_source(sample_case))
    assert maps.probabilities.shape == (len(frames.times), 12, 20)
    np.testing.assert_array_equal(maps.times, frames.times)
    np.testing.assert_array_equal(maps.indices, frames.indices)
    assert maps.frame_size == frames.images.shape[1:3]
    assert 0.0 <= maps.probabilities.min() and maps.probabilities.max() <= 1.0
    assert maps.text == TEXT and maps.negatives == ("tissue", "background") and maps.model["untrained"] is True


@pytest.mark.parametrize(
    ("confident", "consecutive", "expected"),
    [
        ([0, 1, 1, 0, 1, 1, 1], 3, 4),
        ([0, 1, 1, 0, 1, 1, 1], 2, 1),
        ([1, 0, 1], 1, 0),
        ([0, 0, 0], 1, None),
        ([1, 1], 3, 0),  # a clip shorter than the run: all its frames must be confident
        ([1, 0], 3, None),
    ],
)
def test_start_frame_is_the_first_of_a_run_of_confident_frames(confident, consecutive, expected) -> None:
    assert start_frame(np.array(confident, dtype=bool), consecutive) == expected


def test_the_seed_is_the_region_around_the_best_cell_in_frame_pixels() -> None:
    cells = np.zeros((12, 20), dtype=np.float32)
    cells[2:4, 4:7] = 0.9  # another object, not connected to the best cell
    cells[8:10, 14:16] = 0.95
    region = seed(cells, (96, 160), threshold=0.5)  # 8 x 8 pixels per cell
    assert region.box == (112.0, 64.0, 128.0, 80.0)
    assert region.point == (116.0, 68.0)  # the centre of the first best cell, (8, 14)
    rows, columns = np.nonzero(region.mask)
    assert rows.min() >= 64 and rows.max() < 80 and columns.min() >= 112 and columns.max() < 128
    assert not region.mask[16:32, 32:56].any()


# -- tracking ------------------------------------------------------------------------------------------


def test_sam2_tracks_every_sampled_frame_both_ways_from_the_start_frame(late_maps, tracker, sample_case) -> None:
    steps: list[tuple[int, int]] = []
    result = segment_maps(late_maps, case_source(sample_case), tracker=tracker, progress=lambda done, total: steps.append((done, total)))
    frames = surgvlp.read_frames(case_source(sample_case))
    assert result.labels.shape == frames.images.shape[:3] and result.labels.dtype == np.uint8
    np.testing.assert_array_equal(result.times, frames.times)
    assert result.mode == "sam2" and result.untrained is True and result.sam2["untrained"] is True
    assert result.start_frame == ABSENT  # the first of three confident frames in a row
    assert result.states[ABSENT] == "seed"
    assert all(state in ("tracked", "redetected", "lost") for position, state in enumerate(result.states) if position != ABSENT)
    count = len(frames.times)
    assert steps[-1] == (2 * count, 2 * count) and [done for done, _ in steps] == sorted(done for done, _ in steps)
    assert len(steps) >= count  # one report per frame tracked, forwards and backwards (the maps were made before)
    np.testing.assert_array_equal(result.areas, result.labels.reshape(count, -1).sum(axis=1))
    assert np.isfinite(result.scores).all()


def test_a_lost_object_is_detected_again_where_the_map_is_confident(late_maps, losing_tracker, sample_case) -> None:
    result = segment_maps(late_maps, case_source(sample_case), tracker=losing_tracker)
    # The box finds nothing with this head, so the seed falls back to the region's mask, which SAM2 keeps.
    assert result.states[ABSENT] == "seed" and result.areas[ABSENT] > 0
    count = len(result.times)
    assert result.redetections == list(range(ABSENT + 1, count))  # lost on every frame, the map confident there
    assert all(result.areas[position] > 0 for position in result.redetections)
    assert result.states[:ABSENT] == ("lost",) * ABSENT  # lost, and nothing there to find again
    assert not result.labels[:ABSENT].any()


def test_tracking_keeps_a_bounded_window_of_memory(tracker) -> None:
    rng = np.random.default_rng(0)
    frame_size = (96, 160)
    session = _Session(tracker, frame_size, "mask", seed_position=0)
    region = Seed(np.zeros(frame_size, dtype=bool), (40.0, 20.0, 90.0, 60.0), (60.0, 40.0))
    region.mask[20:60, 40:90] = True
    pointer_frames, memory_frames = session.pointer_frames, session.memory_frames
    frames = pointer_frames + 8
    with torch_threads(1), torch.inference_mode():
        for position in range(frames):
            pixels = tracker.pixels(rng.integers(0, 255, (*frame_size, 3), dtype=np.uint8))
            if position % 5 == 0:  # the seed, then prompts again now and then, as re-detections are
                session.prompt(position, pixels, region)
            else:
                session.step(position, pixels, reverse=False)
            session.forget(position, reverse=False)
            outputs = session.session.output_dict_per_obj[0]
            assert list(session.session.processed_frames) == [position]
            tracked = outputs["non_cond_frame_outputs"]
            assert all(position - frame < pointer_frames for frame in tracked)
            assert all(position - frame < memory_frames for frame, stored in tracked.items() if MEMORY_OUTPUTS[0] in stored)
            assert len(outputs["cond_frame_outputs"]) <= 1 + KEPT_REDETECTIONS and 0 in outputs["cond_frame_outputs"]
            stored = [*outputs["cond_frame_outputs"].values(), *tracked.values()]
            assert not any(key in entry for entry in stored for key in HEAVY_OUTPUTS)
    assert any(MEMORY_OUTPUTS[0] not in entry for entry in tracked.values())  # pointers kept past the memories


def test_an_untrained_sam2_is_refused_wherever_it_was_copied(tiny_sam2: Path, tmp_path: Path) -> None:
    copy = shutil.copytree(tiny_sam2, tmp_path / "copied")
    with pytest.raises(SurgVLPError, match="untrained"):
        load_sam2(copy, device="cpu")


# -- coarse mode ---------------------------------------------------------------------------------------


def test_coarse_mode_thresholds_the_maps_of_confident_frames(late_maps, sample_case) -> None:
    result = segment_maps(late_maps, case_source(sample_case))
    assert result.mode == "coarse" and result.sam2 is None and result.untrained is True
    assert result.start_frame == ABSENT
    assert result.states == ("none",) * ABSENT + ("detected",) * (len(result.times) - ABSENT)
    np.testing.assert_array_equal(result.scores, frame_scores(late_maps))
    for position in range(ABSENT, len(result.times)):
        expected = upsample(late_maps.probabilities[position], late_maps.frame_size) >= 0.5
        np.testing.assert_array_equal(result.labels[position], expected)
    assert not result.labels[:ABSENT].any()


def test_a_target_never_found_gives_empty_masks_and_no_start(maps, tracker, sample_case) -> None:
    unsure = dataclasses.replace(maps, probabilities=maps.probabilities * 0.5)  # no cell reaches the confidence
    result = segment_maps(unsure, case_source(sample_case), tracker=tracker)
    assert result.start_frame is None and not result.labels.any() and set(result.states) == {"none"}


# -- outputs -------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def coarse(late_maps, sample_case):
    return segment_maps(late_maps, case_source(sample_case))


def test_seg_nrrd_reads_back_in_slicerio_and_pynrrd_with_the_segment_named_after_the_text(coarse, tmp_path: Path) -> None:
    coarse.write(tmp_path / "masks.seg.nrrd", nifti=tmp_path / "masks.nii.gz", json=tmp_path / "masks.json")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["masks.json", "masks.nii.gz", "masks.seg.nrrd"]
    voxels = coarse.labels.transpose(2, 1, 0)  # Slicer's (i, j, k) = (column, row, frame)

    segmentation = slicerio.read_segmentation(str(tmp_path / "masks.seg.nrrd"))
    (segment,) = segmentation["segments"]
    assert segment["name"] == TEXT and len(segment["color"]) == 3
    assert segment["tags"]["SurgVLP.Untrained"] == "true" and segment["tags"]["SurgVLP.Mode"] == "coarse"
    np.testing.assert_array_equal(slicerio.segment_mask(segmentation, segment), voxels != 0)
    np.testing.assert_array_equal(segmentation["ijkToLPS"], np.eye(4))

    data, header = nrrd.read(str(tmp_path / "masks.seg.nrrd"))
    assert header["Segment0_Name"] == TEXT and header["SurgVLP_Untrained"] == "true"
    assert data.shape == voxels.shape
    np.testing.assert_array_equal(data != 0, voxels != 0)


def test_nifti_holds_the_same_volume_compressed_or_not(coarse, tmp_path: Path) -> None:
    for name in ("masks.nii.gz", "masks.nii"):
        coarse.write(nifti=tmp_path / name)
        image = sitk.ReadImage(str(tmp_path / name))
        np.testing.assert_array_equal(sitk.GetArrayFromImage(image), coarse.labels)
        assert image.GetSpacing() == (1.0, 1.0, 1.0)
    assert (tmp_path / "masks.nii.gz").read_bytes()[:2] == b"\x1f\x8b"
    assert gzip.decompress((tmp_path / "masks.nii.gz").read_bytes())[344:348] == b"n+1\x00"  # the NIfTI-1 magic
    assert (tmp_path / "masks.nii").read_bytes()[344:348] == b"n+1\x00"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["masks.nii", "masks.nii.gz"]  # no temporary left


def test_json_records_prompt_mode_times_scores_areas_start_and_untrained(coarse, tmp_path: Path) -> None:
    coarse.write(json=tmp_path / "masks.json")
    data = json.loads((tmp_path / "masks.json").read_text())
    assert data["schema"] == "surgvlp.segmentation/1" and data["mode"] == "coarse" and data["untrained"] is True
    assert data["prompt"] == {"text": TEXT, "negatives": ["tissue", "background"]}
    assert data["start_frame"] == ABSENT and data["start_time"] == pytest.approx(coarse.times[ABSENT])
    assert data["frame_size"] == [coarse.labels.shape[2], coarse.labels.shape[1]]
    frames = data["frames"]
    np.testing.assert_allclose(frames["time"], coarse.times)
    np.testing.assert_allclose(frames["score"], coarse.scores, atol=1e-6)
    assert frames["area"] == coarse.areas.tolist() and frames["state"] == list(coarse.states)
    assert data["model"]["checkpoint_sha256"] == coarse.model["checkpoint_sha256"] and data["sam2"] is None


def test_a_wrongly_named_output_writes_nothing(coarse, tmp_path: Path) -> None:
    with pytest.raises(SurgVLPError, match="name it"):
        coarse.write(tmp_path / "masks.seg.nrrd", nifti=tmp_path / "masks.nrrd", json=tmp_path / "masks.json")
    assert list(tmp_path.iterdir()) == []


# -- evaluation ----------------------------------------------------------------------------------------


def test_dice_per_frame_against_the_sample_case_instrument_masks(coarse, sample_case) -> None:
    from monai.metrics import compute_dice

    grasper = INSTRUMENTS.index("Grasper") + 1
    truth = np.stack([np.asarray(Image.open(sample_case.masks / f"case_{round(time)}.png")) == grasper for time in coarse.times])
    ours = dice_per_frame(coarse.labels, truth)
    reference = compute_dice(
        torch.from_numpy(coarse.labels[:, None] != 0).float(), torch.from_numpy(truth[:, None]).float(),
        include_background=True, ignore_empty=False,
    )[:, 0].numpy()
    print("Dice per frame of the untrained model against the grasper masks:", np.round(ours, 3).tolist())
    assert ours.shape == (len(coarse.times),)
    np.testing.assert_allclose(ours, reference, rtol=1e-6)
    assert truth.any() and (~truth).any()
    empty = np.zeros((1, 4, 4), dtype=bool)
    assert dice_per_frame(empty, empty).tolist() == [1.0] and dice_per_frame(~empty, empty).tolist() == [0.0]


# -- the public entry ----------------------------------------------------------------------------------


def test_segment_reports_progress_and_honours_cancel(model, tracker, sample_case) -> None:
    source = case_source(sample_case, fps=1, end=3)
    steps: list[tuple[int, int]] = []
    result = surgvlp.segment(model, source, TEXT, sam2=tracker, batch_size=4, progress=lambda done, total: steps.append((done, total)))
    assert steps[-1] == (2 * len(source), 2 * len(source)) and result.mode == "sam2"
    assert result.labels.shape == (len(source), 96, 160) and torch.get_num_threads() >= 1

    token = CancelToken()
    with pytest.raises(Cancelled):
        surgvlp.segment(model, source, TEXT, batch_size=1, progress=lambda done, total: token.cancel(), cancel=token)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"text": "  "}, "text to segment is empty"),
        ({"negatives": []}, "at least one contrasting prompt"),
        ({"negatives": ["the grasper"]}, "both the text and a contrasting prompt"),
        ({"prompt": "lasso"}, "unknown prompt"),
        ({"threads": 0}, "threads must be"),
        ({"confidence": 2.0}, "confidence must lie between 0 and 1"),
        ({"consecutive": 0}, "consecutive must be"),
        ({"sam2": "/nonexistent/sam2"}, "SAM2 folder /nonexistent/sam2 does not exist"),
    ],
)
def test_bad_arguments_fail_before_any_frame_is_read(model, sample_case, arguments, message) -> None:
    arguments = {"text": TEXT, **arguments}
    with pytest.raises(SurgVLPError, match=message):
        surgvlp.segment(model, case_source(sample_case), progress=lambda done, total: pytest.fail("work started"), **arguments)
