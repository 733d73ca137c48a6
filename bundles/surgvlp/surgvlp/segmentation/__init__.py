"""Referring segmentation: a text prompt becomes masks on every sampled frame of a clip, training-free.

The public entries are at the package root (``surgvlp.segment``, ``surgvlp.load_sam2``); this package's
``__init__`` imports nothing, so the CLI's checks read its torch-free modules without paying for torch.

Example::

    model = surgvlp.load_model("peskavlp")
    tracker = surgvlp.load_sam2("sam2-tiny")                    # once; or sam2=None for coarse masks
    result = surgvlp.segment(model, surgvlp.open_source("case.mp4", fps=1), "the clipper", sam2=tracker)
    result.labels                                                # (T, H, W) uint8, aligned with read_frames(source)
    result.write("masks.seg.nrrd", nifti="masks.nii.gz", json="masks.json")

Two stages. Detection (:mod:`.similarity`, :mod:`.detection`): the image encoder's projection applied to
every cell of the whole frame gives a map of how much each region looks like the text rather than like the
contrasting prompts; tracking starts at the first frame where the target is found confidently on several
frames in a row. Tracking (:mod:`.tracking`): SAM2, prompted there with the detected region, follows the
object forwards and backwards through the clip with a bounded memory, and is prompted again where it loses
the object on a frame the map is sure of. Without SAM2 weights, :mod:`.coarse` thresholds the maps alone.
:mod:`.outputs` writes the ``.seg.nrrd`` for Slicer, NIfTI and the JSON.
"""
