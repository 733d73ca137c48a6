"""Which native frames a sampling request picks.

The rule is the same for every container so that an mp4, its DICOM twin, a multi-frame DICOM holding
one frame per second and a 1 fps frame folder all yield the same frames at the same times:

    targets t = start, start + 1/fps, start + 2/fps, ...   (t < end)
    for each target, pick the first frame whose time is >= t - half a native frame interval

A frame picked for several targets (sampling faster than the native rate) is yielded once. A rate above the
native one is read as the native rate (:func:`sampling_rate`): for a constant-rate video that yields every
native frame in the range once, as ``fps=None`` does, from a target list as long as the frame list rather
than ``fps`` times the duration (``fps=1e9`` once asked for 522 GiB). With ``fps=None`` every native frame
in the range is yielded, which is the same rule with one target per frame.
"""

from __future__ import annotations

import numpy as np


def sampling_rate(fps: float | None, native_fps: float) -> float | None:
    """The rate a request for ``fps`` samples at, and records: never above the native rate."""
    return None if fps is None else min(float(fps), native_fps)


def select_frames(times: np.ndarray, native_fps: float, fps: float | None, start: float, end: float) -> np.ndarray:
    """Positions (into the time-sorted ``times``) of the frames that sampling at ``fps`` in ``[start, end)`` yields."""
    tolerance = 0.5 / native_fps
    if fps is None:
        targets = times[(times >= start - tolerance) & (times < end - tolerance)]
    else:
        count = int(np.ceil((end - start) * fps - 1e-9))
        targets = start + np.arange(max(count, 0)) / fps
    positions = np.searchsorted(times, targets - tolerance, side="left")
    return np.unique(positions[positions < len(times)])
