"""Decoding in several processes yields exactly what one decoder yields, and its errors reach the caller."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from surgvlp.network.encoder import SurgVLPEncoder
from surgvlp.errors import SurgVLPError
from surgvlp.network.preprocess import crop_frame
from surgvlp.sources import open_source
from surgvlp.sources.parallel import iterate_parallel


@pytest.mark.parametrize("container", ["video", "dicom_video"])
def test_parallel_frames_equal_serial_frames(sample_case, container):
    source = open_source(getattr(sample_case, container), fps=2.0)
    serial = list(source)
    parallel = list(iterate_parallel(source, workers=2, run_length=5))
    assert [frame.time for frame in parallel] == [frame.time for frame in serial]
    assert [frame.index for frame in parallel] == [frame.index for frame in serial]
    for ours, theirs in zip(parallel, serial):
        np.testing.assert_array_equal(ours.image, theirs.image)


def test_workers_apply_the_transform(sample_case):
    source = open_source(sample_case.video, fps=1.0, end=6.0)
    cropped = list(iterate_parallel(source, workers=2, transform=crop_frame, run_length=2))
    assert [frame.image.shape for frame in cropped] == [(224, 224, 3)] * 6
    for ours, frame in zip(cropped, source):
        np.testing.assert_array_equal(ours.image, crop_frame(frame.image))


def test_parallel_encoding_gives_the_same_embeddings(sample_case, tiny_model):
    encoder = SurgVLPEncoder.from_files(tiny_model.checkpoint, tiny_model.text_model_dir, device="cpu")
    serial = encoder.encode_source(open_source(sample_case.video, fps=1.0), batch_size=8)
    parallel = encoder.encode_source(open_source(sample_case.video, fps=1.0), batch_size=8, decode_workers=2)
    np.testing.assert_array_equal(parallel.times, serial.times)
    np.testing.assert_allclose(parallel.embeddings, serial.embeddings, rtol=1e-5, atol=1e-5)


def test_a_worker_error_reaches_the_caller_as_one_line(sample_case, tmp_path):
    video = tmp_path / "case.mp4"
    shutil.copy(sample_case.video, video)
    source = open_source(video, fps=1.0)
    video.write_bytes(video.read_bytes()[: video.stat().st_size // 3])  # damaged after it was opened
    with pytest.raises(SurgVLPError, match="case.mp4"):
        list(iterate_parallel(source, workers=2))
