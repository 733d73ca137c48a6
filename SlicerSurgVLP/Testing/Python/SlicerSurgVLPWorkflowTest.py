"""The clinician's workflow in a real Slicer against a running SlicerSurgVLP server.

connect -> list cases -> load a case as a frame sequence -> recognise phases -> edit the timeline -> save it as
``final`` -> read it back from the history -> referring segmentation -> correct and save it.

The server address is ``$SURGVLP_SERVER_URL`` (default http://127.0.0.1:8000), e.g. one started with::

    monailabel start_server --app monai_app --studies sample_case --conf checkpoint untrained-tiny \\
        --conf allow_untrained true

Run it with ``Slicer --testing --additional-module-paths SlicerSurgVLP --python-code "import slicer.testing;
slicer.testing.runUnitTest(['SlicerSurgVLP/Testing/Python'], 'SlicerSurgVLPWorkflowTest')"`` (ctest does this
when the extension is built with testing on).
"""

from __future__ import annotations

import os

import numpy as np
import slicer
from slicer.ScriptedLoadableModule import ScriptedLoadableModuleTest

from SlicerSurgVLP import SlicerSurgVLPLogic
from SlicerSurgVLPLib.session import REFERRING_MODEL

SERVER_URL = os.environ.get("SURGVLP_SERVER_URL", "http://127.0.0.1:8000")


class SlicerSurgVLPWorkflowTest(ScriptedLoadableModuleTest):
    def setUp(self):
        slicer.mrmlScene.Clear(0)

    def runTest(self):
        self.setUp()
        self.test_workflow()

    def test_workflow(self):
        logic = SlicerSurgVLPLogic()
        session = logic.connect(SERVER_URL)
        self.delayDisplay(f"Connected to {SERVER_URL}")
        cases = session.cases()
        self.assertTrue(cases, "the server lists no case")
        case = next((item.id for item in cases if item.id.endswith(".mp4")), cases[0].id)

        frames = session.load_frames(case, max_size=320)
        nodes = logic.show_frames(case, frames)
        self.assertEqual(nodes.sequence.GetNumberOfDataNodes(), frames.volume.count)
        self.assertEqual(slicer.util.arrayFromVolume(nodes.proxy).shape[1:], frames.volume.frames.shape[1:])
        self.delayDisplay(f"{case}: {frames.volume.count} frames in a sequence")

        timeline = session.recognise_phases(case, "cholec80", "viterbi")
        chart = logic.show_timeline(timeline).chart
        self.assertEqual(chart.GetNumberOfPlotSeriesNodes(), 2 * len(timeline.classes))
        self.assertEqual("UNTRAINED" in chart.GetTitle(), timeline.untrained)

        middle = float(timeline.times[len(timeline.times) // 2])
        label = next(name for name in timeline.classes if name != timeline.label_at(middle))
        edited = logic.edit("split", middle, label)
        self.assertEqual(edited.label_at(middle), label)
        before = len(session.history(case))
        session.save_timeline(case, edited)
        versions = session.history(case)
        self.assertEqual(len(versions), before + 1)
        self.assertEqual(session.saved_timeline(case, versions[-1].number).to_document(), edited.to_document())
        self.delayDisplay("Timeline edited, saved as final and read back")

        if session.model(REFERRING_MODEL) is None:
            self.delayDisplay(f"The server has no {REFERRING_MODEL} model yet: segmentation skipped")
            return
        segmentation, answer = session.segment(case, "the gallbladder")
        logic.show_segmentation(segmentation)
        saved = logic.current_segmentation()
        for segment, again in zip(segmentation.segments, saved.segments):
            np.testing.assert_array_equal(segmentation.mask(segment), saved.mask(again))
        session.save_segmentation(case, saved)
        self.delayDisplay("Segmentation shown over the frames and saved")
