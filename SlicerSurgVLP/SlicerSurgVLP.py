"""SlicerSurgVLP: zero-shot phase timelines and referring segmentation of surgical videos, from a MONAI
Label server running the SlicerSurgVLP app.

The widget is thin: it reads the form, starts work off the GUI thread and shows what comes back. The
logic holds the case being worked on and delegates everything else to ``SlicerSurgVLPLib``: the client and
the workflow calls (``session``), timelines and their edits (``timeline``), volumes and segmentations,
and the MRML nodes (``scene``).
"""

from __future__ import annotations

import logging

import numpy as np
import qt
import slicer
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)
from slicer.util import VTKObservationMixin

from SlicerSurgVLPLib import scene
from SlicerSurgVLPLib.colours import UNTRAINED_WARNING_COLOUR
from SlicerSurgVLPLib.errors import ClientError
from SlicerSurgVLPLib.prompts import PromptRow, PromptTable, cell_to_prompts, prompts_to_cell
from SlicerSurgVLPLib.session import DECODERS, REFERRING_MODEL, LoadedFrames, Session
from SlicerSurgVLPLib.tasks import BackgroundTask
from SlicerSurgVLPLib.timeline import EditHistory, PhaseTimeline, ToolTimeline
from SlicerSurgVLPLib.volumes import FrameVolume

SETTINGS_URL = "SlicerSurgVLP/ServerURL"
DEFAULT_URL = "http://127.0.0.1:8000"
EDITED_PROMPT_SET = "(edited in the table)"
_LAYOUT_ID = 20251  # a custom layout: the video above the timeline chart
_LAYOUT = """
<layout type="vertical" split="true">
 <item splitSize="650">
  <view class="vtkMRMLSliceNode" singletontag="Red">
   <property name="orientation" action="default">Axial</property>
   <property name="viewlabel" action="default">R</property>
   <property name="viewcolor" action="default">#F34A33</property>
  </view>
 </item>
 <item splitSize="350">
  <view class="vtkMRMLPlotViewNode" singletontag="PlotView1">
   <property name="viewlabel" action="default">P</property>
  </view>
 </item>
</layout>
"""


class SlicerSurgVLP(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = "SlicerSurgVLP"
        self.parent.categories = ["Surgical Video"]
        self.parent.dependencies = ["Sequences", "Segmentations", "Plots", "Tables"]
        self.parent.contributors = ["SlicerSurgVLP contributors"]
        self.parent.helpText = (
            "Phase timelines, tool presence and text-referring segmentation of endoscopy videos from a MONAI "
            "Label server running the SlicerSurgVLP app; correct them and save them back. Research use only; "
            "not a medical device. An untrained model's results are marked in red: they mean nothing.")
        self.parent.acknowledgementText = (
            "Built on the SurgVLP family of surgical video-language models (CAMMA, University of Strasbourg), "
            "MONAI Label and 3D Slicer.")


class SlicerSurgVLPLogic(ScriptedLoadableModuleLogic):
    """The case being worked on and its nodes; the server work is in ``SlicerSurgVLPLib.session``.

    Methods named ``fetch_*`` only talk to the server and may run in a worker thread; ``show_*`` build
    or update nodes and run on the GUI thread.
    """

    def __init__(self, mrml_scene=None):
        ScriptedLoadableModuleLogic.__init__(self)
        self.scene = mrml_scene or slicer.mrmlScene
        self.session: Session | None = None
        self.case: str | None = None
        self.frames: LoadedFrames | None = None
        self.frame_nodes: scene.FrameNodes | None = None
        self.edits: EditHistory | None = None
        self.tools: ToolTimeline | None = None
        self.timeline_nodes: scene.TimelineNodes | None = None
        self.segmentation_sequence = None

    @property
    def timeline(self) -> PhaseTimeline | None:
        return self.edits.current if self.edits else None

    def connect(self, url: str) -> Session:
        self.session = Session.connect(url)
        return self.session

    def require_session(self) -> Session:
        if self.session is None:
            raise ClientError("connect to a server first")
        return self.session

    def require_case(self) -> str:
        if self.case is None or self.frames is None:
            raise ClientError("load a case first")
        return self.case

    # -- GUI thread: the scene ----------------------------------------------------------------------------
    def show_frames(self, case: str, frames: LoadedFrames) -> scene.FrameNodes:
        self.case, self.frames = case, frames
        self.edits, self.tools, self.timeline_nodes, self.segmentation_sequence = None, None, None, None
        self.frame_nodes = scene.add_frame_sequence(self.scene, frames.volume, frames.times, case,
                                                    sequences_logic=_sequences_logic())
        return self.frame_nodes

    def show_timeline(self, timeline: PhaseTimeline, keep_history: bool = False) -> scene.TimelineNodes:
        if keep_history and self.edits is not None:
            self.edits.apply(lambda _current: timeline)
        else:
            self.edits = EditHistory(timeline)
        return self.redraw_timeline()

    def show_tools(self, tools: ToolTimeline) -> None:
        self.tools = tools
        if self.timeline is not None:
            self.redraw_timeline()

    def redraw_timeline(self) -> scene.TimelineNodes:
        if self.timeline_nodes is None:
            self.timeline_nodes = scene.add_timeline_nodes(self.scene, self.timeline, self.case, self.tools)
        else:
            scene.update_timeline_nodes(self.scene, self.timeline_nodes, self.timeline, self.tools)
        return self.timeline_nodes

    def edit(self, operation: str, *args) -> PhaseTimeline:
        """Apply one edit (``move_boundary``, ``split``, ``merge`` or ``relabel``) and redraw."""
        if self.edits is None:
            raise ClientError("recognise the phases (or show a saved version) first")
        self.edits.apply(lambda timeline: getattr(timeline, operation)(*args))
        self.redraw_timeline()
        return self.timeline

    def undo(self) -> PhaseTimeline:
        self.edits.undo()
        self.redraw_timeline()
        return self.timeline

    def show_segmentation(self, segmentation) -> object:
        self.require_case()
        self.segmentation_sequence = scene.add_segmentation_sequence(
            self.scene, segmentation, self.frame_nodes, self.case, sequences_logic=_sequences_logic())
        return self.segmentation_sequence

    def current_segmentation(self):
        """The segmentation sequence, with the proxy's latest edits, as one segmentation to save."""
        if self.segmentation_sequence is None:
            raise ClientError("segment something first")
        logic = _sequences_logic()
        if logic is not None:
            proxy = self.frame_nodes.browser.GetProxyNode(self.segmentation_sequence)
            logic.UpdateSequencesFromProxyNodes(self.frame_nodes.browser, proxy)
        volume: FrameVolume = self.frames.volume
        return scene.segmentation_from_sequence(self.segmentation_sequence, volume.frames.shape[:3], volume.geometry)

    def current_time(self) -> float:
        return scene.selected_time(self.frame_nodes) if self.frame_nodes else 0.0


def _sequences_logic():
    """Slicer's Sequences module logic, which creates proxy nodes and writes edits back; None outside Slicer."""
    modules = getattr(slicer, "modules", None)
    return modules.sequences.logic() if modules is not None and hasattr(modules, "sequences") else None


class SlicerSurgVLPWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    def __init__(self, parent=None):
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self._running = []
        self._prompt_tables = {}
        self._edited_from = None
        self._chart_connected = False

    def setup(self):
        ScriptedLoadableModuleWidget.setup(self)
        ui_widget = slicer.util.loadUI(self.resourcePath("UI/SlicerSurgVLP.ui"))
        self.layout.addWidget(ui_widget)
        self.ui = slicer.util.childWidgetVariables(ui_widget)
        ui_widget.setMRMLScene(slicer.mrmlScene)
        self.logic = SlicerSurgVLPLogic()

        self.ui.serverUrlEdit.text = qt.QSettings().value(SETTINGS_URL, DEFAULT_URL)
        self.ui.fpsSpinBox.setRange(0.1, 30.0)
        self.ui.fpsSpinBox.value = 1.0
        self.ui.maxSizeSpinBox.setRange(64, 1920)
        self.ui.maxSizeSpinBox.value = 640
        self.ui.minSegmentSpinBox.setRange(0.0, 600.0)
        self.ui.minSegmentSpinBox.value = 0.0
        self.ui.decoderComboBox.addItems(list(DECODERS))
        self.ui.decoderComboBox.currentText = "viterbi"
        self.ui.promptTable.setColumnCount(2)
        self.ui.promptTable.setHorizontalHeaderLabels(["Class", "Prompts (one per line)"])
        self.ui.promptTable.horizontalHeader().setStretchLastSection(True)
        self.ui.segmentsTable.setColumnCount(4)
        self.ui.segmentsTable.setHorizontalHeaderLabels(["Phase", "Start (s)", "End (s)", "Confidence"])
        self.ui.segmentsTable.setSelectionBehavior(qt.QAbstractItemView.SelectRows)
        self.ui.segmentsTable.setEditTriggers(qt.QAbstractItemView.NoEditTriggers)
        self.ui.untrainedLabel.setStyleSheet(f"color: {UNTRAINED_WARNING_COLOUR}; font-weight: bold")
        self.ui.untrainedLabel.visible = False

        self.ui.connectButton.connect("clicked()", self.onConnect)
        self.ui.refreshCasesButton.connect("clicked()", self.onRefreshCases)
        self.ui.loadCaseButton.connect("clicked()", self.onLoadCase)
        self.ui.promptSetComboBox.connect("currentIndexChanged(int)", self.onPromptSetChosen)
        self.ui.promptTable.connect("cellChanged(int,int)", self.onPromptEdited)
        self.ui.addClassButton.connect("clicked()", self.onAddClass)
        self.ui.removeClassButton.connect("clicked()", self.onRemoveClass)
        self.ui.recogniseButton.connect("clicked()", self.onRecognise)
        self.ui.toolsButton.connect("clicked()", self.onTools)
        self.ui.segmentsTable.connect("cellClicked(int,int)", self.onSegmentClicked)
        self.ui.moveBoundaryButton.connect("clicked()", lambda: self._edit("move_boundary", self._selected_segment(),
                                                                           self.logic.current_time()))
        self.ui.splitButton.connect("clicked()", lambda: self._edit("split", self.logic.current_time(),
                                                                    self.ui.phaseComboBox.currentText))
        self.ui.mergeButton.connect("clicked()", lambda: self._edit("merge", self._selected_segment()))
        self.ui.relabelButton.connect("clicked()", lambda: self._edit("relabel", self._selected_segment(),
                                                                      self.ui.phaseComboBox.currentText))
        self.ui.undoButton.connect("clicked()", self.onUndo)
        self.ui.saveTimelineButton.connect("clicked()", self.onSaveTimeline)
        self.ui.loadVersionButton.connect("clicked()", self.onLoadVersion)
        self.ui.segmentButton.connect("clicked()", self.onSegment)
        self.ui.editSegmentationButton.connect("clicked()", self.onEditSegmentation)
        self.ui.saveSegmentationButton.connect("clicked()", self.onSaveSegmentation)
        self.ui.trainButton.connect("clicked()", self.onTrain)
        self._update_buttons()

    def cleanup(self):
        self.removeObservers()
        for task, timer, dialog in self._running:
            task.cancel()
            timer.stop()
            dialog.close()

    # -- running work off the GUI thread ----------------------------------------------------------------
    def _run(self, title, work, done):
        """Run ``work(progress, cancelled)`` in a thread under a progress dialog, then ``done(result)`` here."""
        task = BackgroundTask(work, title).start()
        dialog = slicer.util.createProgressDialog(labelText=title, windowTitle="SlicerSurgVLP", maximum=0)
        timer = qt.QTimer()
        timer.setInterval(150)
        running = (task, timer, dialog)  # kept here so that Python does not collect the timer or the dialog
        self._running.append(running)

        def poll():
            progress = task.progress
            if progress.total:
                dialog.maximum = progress.total
                dialog.value = min(progress.done, progress.total)
            dialog.labelText = f"{title}: {progress.message or progress.state}"
            if dialog.wasCanceled:
                task.cancel()
            if not task.finished:
                return
            timer.stop()
            dialog.close()
            self._running.remove(running)
            try:
                done(task.result())
            except ClientError as error:
                self._fail(error)
            except Exception as error:  # the user sees one line, the log keeps the traceback
                logging.exception("SlicerSurgVLP: %s failed", title)
                self._fail(f"{title} failed unexpectedly: {type(error).__name__}: {error}")
            self._update_buttons()

        timer.connect("timeout()", poll)
        timer.start()

    def _set_status(self, text):
        self.ui.statusLabel.text = text

    def _fail(self, message):
        self.ui.statusLabel.text = str(message)
        slicer.util.errorDisplay(str(message), windowTitle="SlicerSurgVLP")

    def _guarded(self, action):
        """Run a quick GUI-thread action, showing a ``ClientError`` as one line."""
        try:
            action()
        except ClientError as error:
            self._fail(error)
        self._update_buttons()

    def _update_buttons(self):
        logic = self.logic
        connected = logic.session is not None
        loaded = logic.frames is not None
        timeline = logic.timeline is not None
        self.ui.refreshCasesButton.enabled = connected
        self.ui.loadCaseButton.enabled = connected
        self.ui.recogniseButton.enabled = loaded
        self.ui.toolsButton.enabled = loaded
        for button in (self.ui.moveBoundaryButton, self.ui.splitButton, self.ui.mergeButton, self.ui.relabelButton,
                       self.ui.saveTimelineButton):
            button.enabled = timeline
        self.ui.undoButton.enabled = timeline and logic.edits.can_undo
        self.ui.loadVersionButton.enabled = loaded and self.ui.historyComboBox.count > 0
        referring = connected and logic.session.model(REFERRING_MODEL) is not None
        self.ui.segmentButton.enabled = loaded and referring
        self.ui.editSegmentationButton.enabled = logic.segmentation_sequence is not None
        self.ui.saveSegmentationButton.enabled = logic.segmentation_sequence is not None
        self.ui.trainButton.enabled = connected

    # -- server and cases -------------------------------------------------------------------------------
    def onConnect(self):
        url = self.ui.serverUrlEdit.text.strip()
        qt.QSettings().setValue(SETTINGS_URL, url)
        self._run("Connecting", lambda progress, cancelled: self.logic.connect(url), self._connected)

    def _connected(self, session):
        lines = []
        for model in session.models():
            if not model.available:
                state = f"unavailable: {model.reason or 'no reason given'}"
            else:
                state = f"ready ({model.reason})" if model.reason else "ready"
            untrained = " <b style='color:%s'>UNTRAINED</b>" % UNTRAINED_WARNING_COLOUR if model.untrained else ""
            lines.append(f"{model.name}: {state}{untrained}")
        self.ui.modelsLabel.text = "<br>".join(lines)
        self._show_training_stats()
        self.ui.promptSetComboBox.clear()
        self._prompt_tables = session.prompt_sets("phase")
        self.ui.promptSetComboBox.addItems(list(self._prompt_tables) + [EDITED_PROMPT_SET])
        self.onRefreshCases()

    def onRefreshCases(self):
        self._run("Listing cases", lambda progress, cancelled: self.logic.require_session().cases(), self._list_cases)

    def _list_cases(self, cases):
        self.ui.caseList.clear()
        for case in cases:
            saved = f"  (final: {case.labels['final']} versions)" if "final" in case.labels else ""
            item = qt.QListWidgetItem(case.name + saved)
            item.setData(qt.Qt.UserRole, case.id)
            self.ui.caseList.addItem(item)

    def onLoadCase(self):
        item = self.ui.caseList.currentItem()
        if item is None:
            self._fail("choose a case in the list first")
            return
        case = item.data(qt.Qt.UserRole)
        session = self.logic.require_session()
        edits = self.logic.edits
        if edits is not None and edits.unsaved and not slicer.util.confirmOkCancelDisplay(
                f"The timeline of {self.logic.case} has unsaved edits, which loading {case} discards."):
            return
        params = {"fps": self.ui.fpsSpinBox.value, "max_size": self.ui.maxSizeSpinBox.value}
        self._run(f"Loading {case}", lambda progress, cancelled: session.load_frames(case, progress, cancelled, **params),
                  lambda frames: self._show_frames(case, frames))

    def _show_frames(self, case, frames):
        nodes = self.logic.show_frames(case, frames)
        layout_manager = slicer.app.layoutManager()
        layout_node = layout_manager.layoutLogic().GetLayoutNode()
        if not layout_node.IsLayoutDescription(_LAYOUT_ID):
            layout_node.AddLayoutDescription(_LAYOUT_ID, _LAYOUT)
        layout_manager.setLayout(_LAYOUT_ID)
        slicer.util.setSliceViewerLayers(background=nodes.proxy, fit=True)
        slicer.modules.sequences.toolBar().setActiveBrowserNode(nodes.browser)
        self.addObserver(nodes.browser, slicer.vtkMRMLSequenceBrowserNode.ProxyNodeModifiedEvent, self._frame_changed)
        self._mark_untrained(frames.untrained)
        self.ui.statusLabel.text = f"{case}: {frames.volume.count} frames"
        self._refresh_history()

    def _mark_untrained(self, untrained):
        self.ui.untrainedLabel.text = "UNTRAINED MODEL: these results are not real predictions"
        self.ui.untrainedLabel.visible = bool(untrained)

    # -- phases -----------------------------------------------------------------------------------------
    def onPromptSetChosen(self, _index):
        table = self._prompt_tables.get(self.ui.promptSetComboBox.currentText)
        if table is not None:
            self._fill_prompt_table(table)

    def _fill_prompt_table(self, table):
        self._edited_from = table
        self.ui.promptTable.blockSignals(True)
        self.ui.promptTable.setRowCount(len(table.rows))
        for row, entry in enumerate(table.rows):
            self.ui.promptTable.setItem(row, 0, qt.QTableWidgetItem(entry.name))
            self.ui.promptTable.setItem(row, 1, qt.QTableWidgetItem(prompts_to_cell(entry.prompts)))
        self.ui.promptTable.resizeRowsToContents()
        self.ui.promptTable.blockSignals(False)

    def _table_prompt_set(self):
        """The prompt set as the table now reads (durations kept from the built-in set it started from)."""
        base = self._edited_from or PromptTable("edited")
        durations = {row.name: row.typical_duration for row in base.rows}
        rows = []
        for row in range(self.ui.promptTable.rowCount):
            name_item, prompts_item = self.ui.promptTable.item(row, 0), self.ui.promptTable.item(row, 1)
            name = name_item.text() if name_item else ""
            rows.append(PromptRow(name, cell_to_prompts(prompts_item.text() if prompts_item else ""),
                                  durations.get(name)))
        return PromptTable(f"{base.name}-edited", "phase", base.ordered, rows)

    def onPromptEdited(self, _row, _column):
        self.ui.promptSetComboBox.currentText = EDITED_PROMPT_SET

    def onAddClass(self):
        self.ui.promptTable.insertRow(self.ui.promptTable.rowCount)
        self.ui.promptSetComboBox.currentText = EDITED_PROMPT_SET

    def onRemoveClass(self):
        row = self.ui.promptTable.currentRow()
        if row >= 0:
            self.ui.promptTable.removeRow(row)
            self.ui.promptSetComboBox.currentText = EDITED_PROMPT_SET

    def _chosen_prompt_set(self):
        chosen = self.ui.promptSetComboBox.currentText
        return chosen if chosen in self._prompt_tables else self._table_prompt_set()

    def onRecognise(self):
        def work(progress, cancelled):
            case, session = self.logic.require_case(), self.logic.require_session()
            return session.recognise_phases(case, prompt_set, decoder, progress, cancelled, fps=fps,
                                            min_segment=min_segment)

        try:
            prompt_set = self._chosen_prompt_set()
            if not isinstance(prompt_set, str):
                prompt_set.to_prompt_set()  # checks the table before any server work
        except ClientError as error:
            self._fail(error)
            return
        decoder, fps, min_segment = (self.ui.decoderComboBox.currentText, self.ui.fpsSpinBox.value,
                                     self.ui.minSegmentSpinBox.value)
        self._run("Recognising phases", work, self._show_timeline)

    def onTools(self):
        def work(progress, cancelled):
            return self.logic.require_session().recognise_tools(self.logic.require_case(), progress, cancelled,
                                                                fps=fps)

        fps = self.ui.fpsSpinBox.value
        self._run("Recognising tools", work, self._show_tools)

    def _show_tools(self, tools):
        self.logic.show_tools(tools)
        self.ui.statusLabel.text = (f"{len(tools.tools)} tools: drawn under the phase band" if self.logic.timeline
                                    else "tool presence is drawn under the phase timeline: recognise the phases")

    def _show_timeline(self, timeline, keep_history=False):
        nodes = self.logic.show_timeline(timeline, keep_history)
        plot_widget = slicer.app.layoutManager().plotWidget(0)
        if plot_widget is not None:
            plot_widget.mrmlPlotViewNode().SetPlotChartNodeID(nodes.chart.GetID())
            if not self._chart_connected:
                plot_widget.plotView().connect("dataSelected(vtkStringArray*, vtkCollection*)", self._chart_clicked)
                self._chart_connected = True
        self._timeline_changed()

    def _timeline_changed(self):
        timeline = self.logic.timeline
        self.ui.phaseComboBox.clear()
        self.ui.phaseComboBox.addItems(timeline.classes)
        self.ui.segmentsTable.setRowCount(len(timeline.segments))
        for row, segment in enumerate(timeline.segments):
            confidence = "" if segment.mean_confidence is None else f"{segment.mean_confidence:.2f}"
            for column, text in enumerate((segment.label, f"{segment.start:.1f}", f"{segment.end:.1f}", confidence)):
                self.ui.segmentsTable.setItem(row, column, qt.QTableWidgetItem(text))
        self._mark_untrained(timeline.untrained)
        self._frame_changed()
        self._update_buttons()

    def _frame_changed(self, *_args):
        timeline = self.logic.timeline
        if timeline is None or self.logic.frame_nodes is None:
            return
        time = self.logic.current_time()
        flag = "  [UNTRAINED]" if timeline.untrained else ""
        self.ui.currentPhaseLabel.text = f"{time:.1f} s: {timeline.label_at(time)}{flag}"

    def _chart_clicked(self, _series_ids, selections):
        """A click on the timeline chart shows the frame at the clicked point."""
        if selections.GetNumberOfItems() == 0 or self.logic.timeline is None:
            return
        points = selections.GetItemAsObject(0)
        if points.GetNumberOfTuples():
            row = int(points.GetValue(0))
            scene.select_time(self.logic.frame_nodes, float(self.logic.timeline.times[row]))

    def onSegmentClicked(self, row, _column):
        segment = self.logic.timeline.segments[row]
        scene.select_time(self.logic.frame_nodes, segment.start)

    def _selected_segment(self):
        """The segment row chosen in the table (-1 when none: the edit then says which rows it takes)."""
        return self.ui.segmentsTable.currentRow()

    def _edit(self, operation, *args):
        self._guarded(lambda: (self.logic.edit(operation, *args), self._timeline_changed()))

    def onUndo(self):
        self._guarded(lambda: (self.logic.undo(), self._timeline_changed()))

    def onSaveTimeline(self):
        case, timeline = self.logic.case, self.logic.timeline
        session = self.logic.require_session()
        self._run("Saving the timeline", lambda progress, cancelled: session.save_timeline(case, timeline),
                  lambda _answer: self._timeline_saved(case, timeline))

    def _timeline_saved(self, case, timeline):
        if self.logic.timeline is timeline:
            self.logic.edits.mark_saved()
        self.ui.statusLabel.text = f"{case}: timeline saved as a new final version"
        self._refresh_history()

    def _refresh_history(self):
        case, session = self.logic.case, self.logic.session
        self._run("Reading the saved versions", lambda progress, cancelled: session.history(case), self._list_history)

    def _list_history(self, versions):
        self.ui.historyComboBox.clear()
        for version in reversed(versions):
            self.ui.historyComboBox.addItem(f"version {version.number}  ({version.ts})", version.number)

    def onLoadVersion(self):
        number = self.ui.historyComboBox.currentData
        case, session = self.logic.case, self.logic.session
        self._run(f"Reading version {number}", lambda progress, cancelled: session.saved_timeline(case, number),
                  lambda timeline: self._show_timeline(timeline, keep_history=True))

    # -- segmentation and training ----------------------------------------------------------------------
    def onSegment(self):
        text = self.ui.referringTextEdit.text
        case, session = self.logic.case, self.logic.session
        self._run(f"Segmenting '{text}'",
                  lambda progress, cancelled: session.segment(case, text, progress, cancelled), self._show_segmentation)

    def _show_segmentation(self, result):
        segmentation, answer = result
        self.logic.show_segmentation(segmentation)
        self._mark_untrained(answer.get("untrained", True) is not False)
        self.ui.statusLabel.text = f"{len(segmentation.segments)} segment(s) over {segmentation.shape[0]} frames"

    def onEditSegmentation(self):
        browser = self.logic.frame_nodes.browser
        segmentation = browser.GetProxyNode(self.logic.segmentation_sequence)
        segmentation.SetReferenceImageGeometryParameterFromVolumeNode(self.logic.frame_nodes.proxy)
        slicer.util.selectModule("SegmentEditor")
        editor = slicer.modules.segmenteditor.widgetRepresentation().self().editor
        editor.setSegmentationNode(segmentation)
        editor.setSourceVolumeNode(self.logic.frame_nodes.proxy)

    def onSaveSegmentation(self):
        def save(segmentation):
            case, session = self.logic.case, self.logic.session
            self._run("Saving the segmentation",
                      lambda progress, cancelled: session.save_segmentation(case, segmentation),
                      lambda _answer: self._set_status(f"{case}: segmentation saved as a new final version"))

        self._guarded(lambda: save(self.logic.current_segmentation()))

    def onTrain(self):
        session = self.logic.require_session()
        self._run("Training the adapter", lambda progress, cancelled: session.train_adapter(progress, cancelled),
                  self._show_training_stats)

    def _show_training_stats(self, _stats=None):
        self.ui.trainingStatsLabel.text = self.logic.require_session().training_summary()


class SlicerSurgVLPTest(ScriptedLoadableModuleTest):
    """Offline checks of the logic in a real Slicer (no server): frames in, timeline edited, masks round-trip.

    The whole workflow against a running server is ``Testing/Python/SlicerSurgVLPWorkflowTest.py``.
    """

    def setUp(self):
        slicer.mrmlScene.Clear(0)

    def runTest(self):
        self.setUp()
        self.test_frames_and_segmentation()

    def test_frames_and_segmentation(self):
        from SlicerSurgVLPLib.segmentations import SegmentInfo, Segmentation

        logic = SlicerSurgVLPLogic()
        pixels = np.random.default_rng(0).integers(0, 255, (3, 8, 10, 3), dtype=np.uint8)
        frames = LoadedFrames(FrameVolume(pixels), np.array([0.0, 1.0, 2.0]), untrained=True)
        nodes = logic.show_frames("synthetic.mp4", frames)
        self.assertEqual(nodes.sequence.GetNumberOfDataNodes(), 3)
        self.assertEqual(slicer.util.arrayFromVolume(nodes.proxy).shape, (1, 8, 10, 3))
        mask = np.zeros((3, 8, 10), dtype=bool)
        mask[:, 2:5, 3:7] = True
        logic.show_segmentation(Segmentation.from_masks([(SegmentInfo("tool", "tool", (1.0, 0.0, 0.0)), mask)]))
        saved = logic.current_segmentation()
        np.testing.assert_array_equal(saved.mask(saved.segments[0]), mask)
        self.delayDisplay("SlicerSurgVLP offline test passed")
