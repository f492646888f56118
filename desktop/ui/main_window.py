"""The main window: the queue on the left, the selected job's transcript on the right, the model's state in
the status bar. This module builds and shows them; what the window does is composed from one module each:

- job_events: the worker's events, written to the library through the JobCoordinator (the store is GUI-thread
  only; the worker never touches SQLite), and holding the queue while the library refuses writes
- queue_actions: adding files, cancel, retry, move, remove and undo remove
- range_rerun: transcribing a flagged range again and merging the answer
- export_actions, recording_panel, playback_link, model_status: export, the microphone, the player, the model
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QItemSelectionModel, QModelIndex, Qt, QTimer
from PySide6.QtGui import QAction, QCloseEvent, QKeySequence
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QMainWindow,
    QMessageBox,
    QPushButton,
    QSizePolicy,
    QSplitter,
    QStackedWidget,
    QTableView,
    QToolBar,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from desktop.core.coordinator import JobCoordinator
from desktop.core.jobs import JobState
from desktop.core.settings import Settings, save_settings
from desktop.core.store import Store, StoreError
from desktop.core.transcript import Transcript
from desktop.ui.editor import ShortcutsDialog, TranscriptEditor
from desktop.ui.export_actions import ExportActions
from desktop.ui.job_events import JobEvents
from desktop.ui.job_removal import JobRemovals
from desktop.ui.model_status import ModelStatusView
from desktop.ui.notice_bar import NoticeBar
from desktop.ui.playback_link import PlaybackLink
from desktop.ui.queue_actions import QueueActions
from desktop.ui.queue_model import PROGRESS, ProgressDelegate, QueueModel
from desktop.ui.quit_question import ask_quit, unfinished
from desktop.ui.range_rerun import RangeRerun
from desktop.ui.recording_panel import RecordingPanel
from desktop.ui.resources import icon
from desktop.ui.settings_dialog import SettingsDialog
from desktop.ui.timefmt import format_duration
from desktop.ui.transcript_model import END, START, TEXT, TranscriptModel
from desktop.ui.wording import count
from desktop.workers.model_worker import ModelWorker

log = logging.getLogger(__name__)


class MainWindow(QueueActions, JobEvents, RangeRerun, ExportActions, RecordingPanel, PlaybackLink, ModelStatusView,
                 QMainWindow):
    def __init__(
        self,
        store: Store,
        worker: ModelWorker,
        settings: Settings,
        *,
        settings_saver: Callable[[Settings], None] = save_settings,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        if not store.owner:
            # The window resumes jobs a crash left running; only the library's owner may (core/store.py).
            raise ValueError("the window needs the library's owner: Store(owner=True)")
        self.store = store
        self.worker = worker
        self.settings = settings
        self._settings_saver = settings_saver
        # Writes the worker's results to the library; its transcripts are the ones the editor shows.
        self.jobs = JobCoordinator(store)
        self._transcripts: dict[int, Transcript] = self.jobs.transcripts
        # Set while the library refuses writes (a full disk): the worker is held until the user resumes.
        self._write_failure: StoreError | None = None
        self._unsaved_edits: set[int] = set()
        self._stopped_by_hold: set[int] = set()  # jobs the pause stopped (their cancellations are the pause's)
        self._cancelled_while_paused: set[int] = set()
        self._notices: dict[int, tuple[str, ...]] = {}  # JobFinished.notices, by job id, while the window is open
        self._model_name = settings.model
        self._closing = False
        self._follow_newest = True

        self.setWindowTitle("Verbatim")
        self.setWindowIcon(icon("verbatim"))
        self.setAcceptDrops(True)
        self.resize(1180, 720)

        # Jobs removed before this start can no longer be brought back (see job_removal): delete them.
        self._purge_removed()
        self.removals = JobRemovals(self)
        self.queue_model = QueueModel(store.jobs(), self)
        self.transcript_model = TranscriptModel(self)
        # The editor (table, find bar, editing actions) is built first: the menus list its actions.
        self.editor = TranscriptEditor(self.transcript_model)
        self._reruns: dict[int, Transcript] = {}  # range re-run request id -> the transcript it answers
        self._build_actions()
        self._build_menus()
        self._build_widgets()
        self._build_player()
        self._build_status_bar()
        self._connect_worker()

        self.queue_model.rowsInserted.connect(self._queue_changed)
        self.queue_model.rowsRemoved.connect(self._queue_changed)
        self.queue_model.dataChanged.connect(self._update_summary)
        self.transcript_model.edited.connect(self._save_edit)
        self.transcript_model.edit_failed.connect(self._show_edit_error)
        self.transcript_model.rowsAboutToBeInserted.connect(self._remember_follow)
        self.transcript_model.rowsInserted.connect(self._follow)
        # The ETA counts down between progress events too.
        self._eta_timer = QTimer(self)
        self._eta_timer.setInterval(1000)
        self._eta_timer.timeout.connect(self.queue_model.refresh_eta)
        self._eta_timer.start()

        self._resume_queue()
        self._queue_changed()
        if self.queue_model.rowCount():
            self.select_job(self.queue_model.job(0).id)
        self._update_actions()

    # -- construction ------------------------------------------------------------------------------
    def _action(self, text: str, slot: Callable[[], object], icon_name: str | None = None,
                shortcut: QKeySequence | str | QKeySequence.StandardKey | None = None, tip: str = "") -> QAction:
        action = QAction(text, self)
        if icon_name:
            action.setIcon(icon(icon_name))
        if shortcut is not None:
            action.setShortcut(QKeySequence(shortcut))
        if tip:
            action.setToolTip(tip)
            action.setStatusTip(tip)
        action.triggered.connect(lambda _checked=False: slot())
        self.addAction(action)
        return action

    def _build_actions(self) -> None:
        self.open_action = self._action("&Open…", self.open_files, "open", QKeySequence.StandardKey.Open,
                                        "Add audio or video files to the queue")
        self.export_action = self._action("&Export…", self.export_selected, "export", "Ctrl+E",
                                          "Export the selected transcript")
        self.export_all_action = self._action("Export all &finished…", self.export_all_finished, "export-all",
                                              "Ctrl+Shift+E", "Export every finished transcript to a folder")
        self.quit_action = self._action("&Quit", self.request_quit, None, QKeySequence.StandardKey.Quit)
        self.undo_action = self._action("&Undo", self.undo, "undo", QKeySequence.StandardKey.Undo)
        self.redo_action = self._action("&Redo", self.transcript_model.redo, "redo")
        self.redo_action.setShortcuts([QKeySequence("Ctrl+Shift+Z"), QKeySequence("Ctrl+Y")])
        self.cancel_action = self._action("&Cancel job", self.cancel_selected, "cancel", "Ctrl+.",
                                          "Stop the selected job")
        self.retry_action = self._action("&Retry job", self.retry_selected, "retry", "Ctrl+R",
                                         "Transcribe the selected job again")
        self.remove_action = self._action("Re&move job", self.remove_selected, "remove", QKeySequence.StandardKey.Delete,
                                          "Remove the selected job and its transcript from the library")
        # Delete only means "remove job" in the queue, never while editing the transcript.
        self.remove_action.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        self.undo_remove_action = self._action("&Undo remove", self.undo_remove, "undo",
                                               tip="Bring back the job removed last, with its transcript")
        self.up_action = self._action("Move &up", lambda: self.move_selected(-1), "up", "Alt+Up",
                                      "Run the selected job earlier")
        self.down_action = self._action("Move &down", lambda: self.move_selected(1), "down", "Alt+Down",
                                        "Run the selected job later")
        self.shortcuts_action = self._action("&Keyboard shortcuts", lambda: self.show_shortcuts(), None, "F1",
                                             "Every shortcut of the window")
        self.settings_action = self._action("&Settings…", self.open_settings, "settings",
                                            QKeySequence.StandardKey.Preferences, "Model, language and more")
        if self.settings_action.shortcut().isEmpty():
            self.settings_action.setShortcut(QKeySequence("Ctrl+,"))

    def _build_menus(self) -> None:
        bar = self.menuBar()
        file_menu = bar.addMenu("&File")
        file_menu.addActions([self.open_action, self.export_action, self.export_all_action])
        file_menu.addSeparator()
        file_menu.addAction(self.settings_action)
        file_menu.addSeparator()
        file_menu.addAction(self.quit_action)
        edit_menu = bar.addMenu("&Edit")
        edit_menu.addActions([self.undo_action, self.redo_action])
        edit_menu.addSeparator()
        edit_menu.addActions(self.editor.editing_actions()[:4])
        nudge_menu = edit_menu.addMenu("&Times")
        nudge_menu.addActions(self.editor.editing_actions()[4:])
        edit_menu.addSeparator()
        edit_menu.addActions(self.editor.find_actions())
        review_menu = bar.addMenu("Re&view")
        review_menu.addActions(self.editor.review_actions())
        queue_menu = bar.addMenu("&Queue")
        queue_menu.addActions([self.cancel_action, self.retry_action, self.remove_action, self.undo_remove_action])
        queue_menu.addSeparator()
        queue_menu.addActions([self.up_action, self.down_action])
        help_menu = bar.addMenu("&Help")
        help_menu.addAction(self.shortcuts_action)

        toolbar = QToolBar("Main")
        toolbar.setObjectName("MainToolBar")
        toolbar.setMovable(False)
        toolbar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        toolbar.addAction(self.open_action)
        toolbar.addAction(self.export_action)
        toolbar.addAction(self.export_all_action)
        toolbar.addSeparator()
        for action in (self.cancel_action, self.retry_action, self.remove_action, self.up_action, self.down_action):
            toolbar.addAction(action)
            button = toolbar.widgetForAction(action)
            if isinstance(button, QToolButton):
                button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonIconOnly)
        spacer = QWidget()
        spacer.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        toolbar.addWidget(spacer)
        toolbar.addAction(self.settings_action)
        self.addToolBar(toolbar)

    def _build_widgets(self) -> None:
        # Queue panel: a hint while empty, the table once there are jobs.
        self.queue_view = QTableView()
        self.queue_view.setModel(self.queue_model)
        self.queue_view.setItemDelegateForColumn(PROGRESS, ProgressDelegate(self.queue_view))
        self.queue_view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.queue_view.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.queue_view.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.queue_view.setShowGrid(False)
        self.queue_view.setAlternatingRowColors(True)
        self.queue_view.verticalHeader().hide()
        self.queue_view.verticalHeader().setDefaultSectionSize(30)
        header = self.queue_view.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        for column, width in ((1, 70), (2, 110), (3, 120), (4, 70)):
            header.setSectionResizeMode(column, QHeaderView.ResizeMode.Fixed)
            header.resizeSection(column, width)
        header.setHighlightSections(False)
        self.queue_view.setContextMenuPolicy(Qt.ContextMenuPolicy.ActionsContextMenu)
        self.queue_view.addActions([self.export_action, self.cancel_action, self.retry_action, self.remove_action,
                                    self.undo_remove_action, self.up_action, self.down_action])
        self.queue_view.selectionModel().currentRowChanged.connect(self._current_job_changed)

        hint = QLabel()
        hint.setAlignment(Qt.AlignmentFlag.AlignCenter)
        hint.setWordWrap(True)
        hint.setTextFormat(Qt.TextFormat.RichText)
        hint.setText(
            f"<img src='{_icon_path('drop')}' width='72' height='72'><br><br>"
            "<span style='font-size:15pt'>Drop audio or video files here</span><br><br>"
            "<span>or choose <b>Open…</b> (Ctrl+O). Folders are searched for media files.</span>"
        )
        hint.setProperty("role", "hint")
        self.queue_stack = QStackedWidget()
        self.queue_stack.addWidget(hint)
        self.queue_stack.addWidget(self.queue_view)

        queue_panel = QWidget()
        queue_layout = QVBoxLayout(queue_panel)
        queue_layout.setContentsMargins(8, 8, 4, 8)
        queue_title = QLabel("Queue")
        queue_title.setProperty("role", "panel-title")
        queue_layout.addWidget(queue_title)
        queue_layout.addWidget(self.queue_stack, 1)

        # Transcript panel: title, details, export button, edit errors, the table.
        self.job_title = QLabel("No job selected")
        self.job_title.setProperty("role", "panel-title")
        self.job_details = QLabel("")
        self.job_details.setProperty("role", "hint")
        # Why a job failed gets a line of its own in the error colour, not a grey footnote.
        self.job_error = QLabel("")
        self.job_error.setProperty("role", "error")
        self.job_error.setWordWrap(True)
        self.job_error.hide()
        # What the engine noticed about a finished job (a damaged stretch, no speech found).
        self.job_notes = QLabel("")
        self.job_notes.setProperty("role", "hint")
        self.job_notes.setWordWrap(True)
        self.job_notes.hide()
        self.export_button = QPushButton(icon("export"), "Export…")
        self.export_button.clicked.connect(self.export_selected)
        self.edit_error = QLabel()
        self.edit_error.setProperty("role", "error")
        self.edit_error.setWordWrap(True)
        self.edit_error.hide()
        self._edit_error_timer = QTimer(self)
        self._edit_error_timer.setSingleShot(True)
        self._edit_error_timer.timeout.connect(self.edit_error.hide)

        self.transcript_view = self.editor.view
        self.transcript_view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectItems)
        self.transcript_view.setEditTriggers(
            QAbstractItemView.EditTrigger.DoubleClicked
            | QAbstractItemView.EditTrigger.EditKeyPressed
            | QAbstractItemView.EditTrigger.AnyKeyPressed
        )
        self.transcript_view.setAlternatingRowColors(True)
        # Long segments wrap. Rows are fitted one by one as they arrive (not ResizeToContents, which
        # measures every row on every change and would make streaming into a long transcript stutter).
        self.transcript_view.setWordWrap(True)
        self.transcript_view.verticalHeader().setDefaultSectionSize(28)
        self.transcript_view.verticalHeader().setMinimumSectionSize(28)
        self.transcript_view.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        self._refit_rows_timer = QTimer(self)
        self._refit_rows_timer.setSingleShot(True)
        self._refit_rows_timer.setInterval(120)
        self._refit_rows_timer.timeout.connect(self.transcript_view.resizeRowsToContents)
        theader = self.transcript_view.horizontalHeader()
        time_width = self.transcript_view.fontMetrics().horizontalAdvance("0:00:00.000") + 24
        for column in (START, END):
            theader.setSectionResizeMode(column, QHeaderView.ResizeMode.Fixed)
            theader.resizeSection(column, time_width)
        theader.setSectionResizeMode(TEXT, QHeaderView.ResizeMode.Stretch)
        theader.setHighlightSections(False)
        theader.sectionResized.connect(lambda column, _old, _new: column == TEXT and self._refit_rows_timer.start())
        self.transcript_model.modelReset.connect(self.transcript_view.resizeRowsToContents)
        self.transcript_model.dataChanged.connect(
            lambda first, last, _roles=(): self._fit_rows(first.row(), last.row()))

        editor_panel = QWidget()
        editor_layout = QVBoxLayout(editor_panel)
        editor_layout.setContentsMargins(4, 8, 8, 8)
        title_row = QHBoxLayout()
        titles = QVBoxLayout()
        titles.setSpacing(2)
        titles.addWidget(self.job_title)
        titles.addWidget(self.job_details)
        titles.addWidget(self.job_error)
        titles.addWidget(self.job_notes)
        title_row.addLayout(titles, 1)
        title_row.addWidget(self.export_button, 0, Qt.AlignmentFlag.AlignBottom)
        editor_layout.addLayout(title_row)
        editor_layout.addWidget(self.edit_error)
        editor_layout.addWidget(self.editor, 1)

        splitter = QSplitter(Qt.Orientation.Horizontal)
        splitter.addWidget(queue_panel)
        splitter.addWidget(editor_panel)
        splitter.setStretchFactor(0, 2)
        splitter.setStretchFactor(1, 3)
        splitter.setSizes([470, 710])
        splitter.setChildrenCollapsible(False)

        self.notice = NoticeBar()
        central = QWidget()
        central_layout = QVBoxLayout(central)
        central_layout.setContentsMargins(0, 0, 0, 0)
        central_layout.setSpacing(0)
        central_layout.addWidget(self.notice)
        self._build_recorder_bar(central_layout)
        central_layout.addWidget(splitter, 1)
        self.setCentralWidget(central)

    # -- dialogs (attributes so tests can replace them) --------------------------------------------
    def ask_settings(self, settings: Settings) -> Settings | None:
        dialog = SettingsDialog(settings, self)
        if dialog.exec() != SettingsDialog.DialogCode.Accepted:
            return None
        return dialog.settings()

    def show_error(self, title: str, message: str) -> None:
        QMessageBox.warning(self, title, message)

    # -- selection ---------------------------------------------------------------------------------
    def current_job_id(self) -> int | None:
        index = self.queue_view.currentIndex()
        if not index.isValid():
            return None
        return self.queue_model.job(index.row()).id

    def select_job(self, job_id: int) -> None:
        row = self.queue_model.row_of(job_id)
        if row is None:
            return
        self.queue_view.selectionModel().setCurrentIndex(
            self.queue_model.index(row, 0),
            QItemSelectionModel.SelectionFlag.ClearAndSelect | QItemSelectionModel.SelectionFlag.Rows,
        )

    def _current_job_changed(self, current: QModelIndex, _previous: QModelIndex) -> None:
        job_id = self.queue_model.job(current.row()).id if current.isValid() else None
        self._show_job(job_id)

    def _show_job(self, job_id: int | None) -> None:
        self.edit_error.hide()
        if job_id is None:
            self.transcript_model.set_transcript(None)
        else:
            draft = self._drafts.get(job_id)
            if draft is not None:
                self.transcript_model.set_transcript(draft, draft=True)
            else:
                self.transcript_model.set_transcript(self.transcript_for(job_id))
            self._follow_newest = True
            self.transcript_view.scrollToBottom() if self._is_running(job_id) else self.transcript_view.scrollToTop()
        self._player_show(job_id)
        self._update_job_header()
        self._update_actions()

    def transcript_for(self, job_id: int) -> Transcript:
        try:
            return self.jobs.transcript(job_id)
        except ValueError as exc:
            # A transcript whose saved segments break the rules (left by an older version with two
            # writers): shown empty with the reason, never taking another job's text.
            from desktop.core.segment import TranscriptInfo

            log.error("job %d: the saved transcript is damaged: %s", job_id, exc)
            self._show_edit_error(f"This transcript is damaged and cannot be shown: {exc}")
            info = self.store.info(job_id) if self.store.has_job(job_id) else TranscriptInfo(source="")
            return Transcript(info)

    def _is_running(self, job_id: int) -> bool:
        entry = self.queue_model.entry(job_id)
        return entry is not None and entry.job.state == JobState.RUNNING

    def _update_job_header(self) -> None:
        job_id = self.current_job_id()
        entry = self.queue_model.entry(job_id) if job_id is not None else None
        if entry is None:
            self.job_title.setText("No job selected")
            self.job_details.setText("Select a job in the queue to see and edit its transcript.")
            self.job_error.hide()
            self.job_notes.hide()
            self.transcript_model.times_editable = True
            return
        job = entry.job
        self.job_title.setText(Path(job.source).name)
        details = [job.state.value.capitalize()]
        if job.id in self._drafts:
            recording = self.recording is not None and self.recording.key == job.id
            details[0] = "Recording · live draft" if recording else "Draft · the full transcription is queued"
        if job.language:
            details.append(f"language {job.language}")
        if job.duration_s:
            details.append(format_duration(job.duration_s))
        details.append(count(len(self.transcript_model.rows()), "segment"))
        if job.state == JobState.RUNNING:
            details.append("text editable now, times when done")
        self.job_details.setText(" · ".join(details))
        failed = job.state == JobState.FAILED and bool(job.error)
        self.job_error.setText(f"Could not transcribe: {job.error}" if failed else "")
        self.job_error.setVisible(failed)
        notices = self._notices.get(job.id, ())
        self.job_notes.setText("Note: " + "; ".join(notices) if notices else "")
        self.job_notes.setVisible(bool(notices))
        self.transcript_model.times_editable = job.state != JobState.RUNNING

    # -- following the newest segment --------------------------------------------------------------
    def _remember_follow(self, *_args) -> None:
        bar = self.transcript_view.verticalScrollBar()
        self._follow_newest = bar.value() >= bar.maximum() - 2

    def _fit_rows(self, first: int, last: int) -> None:
        for row in range(first, last + 1):
            self.transcript_view.resizeRowToContents(row)

    def _follow(self, _parent: QModelIndex, first: int, last: int) -> None:
        self._fit_rows(first, last)
        if self._follow_newest:
            self.transcript_view.scrollToBottom()

    # -- editing -----------------------------------------------------------------------------------
    def _show_edit_error(self, message: str) -> None:
        self.edit_error.setText(message)
        self.edit_error.show()
        self._edit_error_timer.start(8000)
        self.statusBar().showMessage(message, 8000)

    def show_shortcuts(self) -> None:
        self.shortcuts_dialog().exec()

    def shortcuts_dialog(self) -> ShortcutsDialog:
        """Built from the actions themselves, so it lists exactly what the keys do."""
        editor = self.editor
        window_actions = [a for a in self.actions() if a is not self.shortcuts_action] + [self.shortcuts_action]
        return ShortcutsDialog([("Window", window_actions), ("Edit", editor.editing_actions()),
                                ("Find", editor.find_actions()), ("Review", editor.review_actions())], self)

    # -- settings ----------------------------------------------------------------------------------
    def open_settings(self) -> None:
        chosen = self.ask_settings(self.settings)
        if chosen is None or chosen == self.settings:
            return
        model_changed = chosen.model_key() != self.settings.model_key()
        self.settings = chosen
        try:
            self._settings_saver(chosen)
        except OSError as exc:
            self.show_error("Settings not saved", f"The settings apply now but could not be saved: {exc}")
        self.worker.apply_settings(chosen)
        if model_changed:
            self._set_model_text(f"Model: {chosen.model} · waiting for the current jobs…")
        self.statusBar().showMessage("Settings saved; they apply to the next job.", 6000)

    # -- state of the window -----------------------------------------------------------------------
    def _queue_changed(self, *_args) -> None:
        self.queue_stack.setCurrentIndex(1 if self.queue_model.rowCount() else 0)
        self._update_summary()
        self._update_actions()

    def _update_summary(self, *_args) -> None:
        counts: dict[JobState, int] = {}
        for job in self.queue_model.jobs():
            counts[job.state] = counts.get(job.state, 0) + 1
        parts = [f"{counts[s]} {s.value}" for s in JobState if counts.get(s)]
        self.summary_label.setText("  ·  ".join(parts))
        self._update_actions()

    def _update_actions(self) -> None:
        job_id = self.current_job_id()
        entry = self.queue_model.entry(job_id) if job_id is not None else None
        state = entry.job.state if entry is not None else None
        has_text = bool(self.transcript_model.rowCount())
        self.export_action.setEnabled(state is not None and state.is_final and has_text)
        self.export_button.setEnabled(self.export_action.isEnabled())
        self.export_all_action.setEnabled(any(j.state == JobState.DONE for j in self.queue_model.jobs()))
        self.cancel_action.setEnabled(state is not None and not state.is_final)
        self.retry_action.setEnabled(state is not None and state.is_final)
        self.remove_action.setEnabled(entry is not None)
        row = self.queue_model.row_of(job_id) if job_id is not None else None
        self.up_action.setEnabled(row is not None and row > 0)
        self.down_action.setEnabled(row is not None and row < self.queue_model.rowCount() - 1)
        transcript = self.transcript_model.transcript
        self.undo_remove_action.setEnabled(self.removals.can_undo())
        removed_name = (self.removals.last_name() or "").replace("&", "&&")  # a "&" in a name is no mnemonic
        self.undo_remove_action.setText(f"&Undo remove {removed_name}".strip())
        self.undo_action.setEnabled(self.removals.can_undo() or (transcript is not None and transcript.can_undo()))
        self.redo_action.setEnabled(transcript is not None and transcript.can_redo())
        if self._undo_goes_to_queue():
            self.undo_action.setText(self.undo_remove_action.text())
        elif transcript is not None and transcript.can_undo():
            self.undo_action.setText(f"&Undo {transcript.undo_description().lower()}")
        else:
            self.undo_action.setText("&Undo")
        if transcript is not None and transcript.can_redo():
            self.redo_action.setText(f"&Redo {transcript.redo_description().lower()}")
        else:
            self.redo_action.setText("&Redo")

    # -- quitting (ask_quit is an attribute so tests can replace it) ---------------------------------
    def ask_quit(self, unfinished_jobs: int) -> bool:
        return ask_quit(self, unfinished_jobs)

    def request_quit(self) -> None:
        """Ctrl+Q, File → Quit: with files unfinished, ask first."""
        if self._may_quit():
            self.close()

    def _may_quit(self) -> bool:
        count = unfinished(self.queue_model.jobs())
        return count == 0 or self.ask_quit(count)

    def closeEvent(self, event: QCloseEvent) -> None:
        if self._closing:  # closed before: the worker, the player and the library are already let go
            super().closeEvent(event)
            return
        # The title bar's close button (a spontaneous event) asks as Quit does; a close from code (Quit once
        # answered, SIGTERM, tests) does not.
        if event.spontaneous() and not self._may_quit():
            event.ignore()
            return
        self.worker.flush()  # events already out of the engine are written before worker events are ignored
        self._save_unsaved_edits()
        # From here on worker events are ignored: jobs the shutdown interrupts stay "running" in the library
        # and go back to the queue at the next start, instead of being marked cancelled by the user.
        self._closing = True
        if self.recording is not None:
            # The file is finished; its job stays queued in the library and is transcribed at the next start.
            self.recording.stop()
        self.player.close()
        self.worker.stop()
        # Removed jobs can no longer be brought back (see job_removal).
        self._purge_removed()
        super().closeEvent(event)

    def _save_unsaved_edits(self) -> None:
        """Edits the library refused (a full disk) get one more try on the way out; still refused, they are
        lost, and the log says so."""
        for job_id in sorted(self._unsaved_edits):
            try:
                if self.store.has_job(job_id):
                    self.jobs.edited(job_id, self.jobs.transcript(job_id))
                self._unsaved_edits.discard(job_id)
            except StoreError as exc:
                log.error("job %d: an edit could not be saved before quitting: %s", job_id, exc)

    def _purge_removed(self) -> None:
        try:
            self.store.purge_removed()
        except StoreError as exc:  # a full disk: they are deleted at a later start instead
            log.warning("removed jobs not deleted yet: %s", exc)


def _icon_path(name: str) -> str:
    from desktop.ui.resources import resources_dir

    return (resources_dir() / "icons" / f"{name}.svg").as_posix()
