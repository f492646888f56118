"""The main window: the queue on the left, the selected job's transcript on the right, the model's state in
the status bar. It is the only place that writes worker results to the library (the store is GUI-thread
only; the worker never touches SQLite)."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QItemSelectionModel, QMimeData, QModelIndex, Qt, QTimer
from PySide6.QtGui import QAction, QCloseEvent, QDragEnterEvent, QDropEvent, QKeySequence
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QMainWindow,
    QMessageBox,
    QProgressBar,
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
from desktop.core.jobs import Job, JobState
from desktop.core.segment import Segment
from desktop.core.settings import Settings, save_settings
from desktop.core.store import Store, StoreError
from desktop.core.transcript import RerunMerge, Transcript
from desktop.engine.sources import expand_paths
from desktop.ui.editor import ShortcutsDialog, TranscriptEditor
from desktop.ui.export_actions import ExportActions
from desktop.ui.job_removal import JobRemovals
from desktop.ui.notice_bar import NoticeBar
from desktop.ui.playback_link import PlaybackLink
from desktop.ui.queue_model import PROGRESS, ProgressDelegate, QueueModel
from desktop.ui.quit_question import ask_quit, unfinished
from desktop.ui.recording_panel import RecordingPanel
from desktop.ui.resources import icon
from desktop.ui.settings_dialog import SettingsDialog
from desktop.ui.timefmt import format_duration, format_time
from desktop.ui.transcript_model import END, START, TEXT, TranscriptModel
from desktop.ui.wording import count
from desktop.workers.model_worker import ModelStatus, ModelWorker, RangeOutcome

if TYPE_CHECKING:
    pass

log = logging.getLogger(__name__)



class MainWindow(ExportActions, RecordingPanel, PlaybackLink, QMainWindow):
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
        self._notices: dict[int, tuple[str, ...]] = {}  # JobFinished.notices, by job id, for this session
        self._model_name = settings.model
        self._closing = False
        self._follow_newest = True
        self._last_export_dir: Path | None = None
        self._last_export_format = "srt"

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

    def _build_status_bar(self) -> None:
        status = self.statusBar()
        self.summary_label = QLabel()
        self.download_bar = QProgressBar()
        self.download_bar.setMaximumWidth(180)
        self.download_bar.setMaximumHeight(16)
        self.download_bar.hide()
        self.download_cancel = QToolButton()
        self.download_cancel.setText("Cancel download")
        self.download_cancel.setAutoRaise(True)
        self.download_cancel.clicked.connect(self.worker.cancel_model_load)
        self.download_cancel.hide()
        self.model_label = QLabel()
        status.addPermanentWidget(self.summary_label)
        status.addPermanentWidget(self.download_bar)
        status.addPermanentWidget(self.download_cancel)
        status.addPermanentWidget(self.model_label)
        self._set_model_text(f"Model: {self.settings.model} · starting…")

    def _connect_worker(self) -> None:
        self.worker.model_status_changed.connect(self._on_model_status)
        self.worker.model_failed.connect(self._on_model_failed)
        self.worker.job_started.connect(self._on_job_started)
        self.worker.segments_decoded.connect(self._on_segments_decoded)
        self.worker.job_progressed.connect(self._on_job_progressed)
        self.worker.job_noticed.connect(self._on_job_noticed)
        self.worker.job_finished.connect(self._on_job_finished)
        self.worker.job_failed.connect(self._on_job_failed)
        self.worker.job_cancelled.connect(self._on_job_cancelled)
        self.worker.range_transcribed.connect(self._on_range_transcribed)
        self.worker.range_failed.connect(self._on_range_failed)
        self.editor.rerun_requested.connect(self.rerun_rows)
        self.editor.message.connect(lambda text: self.statusBar().showMessage(text, 8000))

    def _resume_queue(self) -> None:
        """Jobs a crash left running, and jobs still queued when the app last closed, run again."""
        try:
            found = self.jobs.resumable()
        except StoreError as exc:
            self._halt_on_write_error(exc)
            return
        for item in found:
            job = item.job
            if item.interrupted:
                self.queue_model.update(job.id, state=JobState.QUEUED)
                log.info("resuming job %d (%s) at %.2f s", job.id, job.source, item.start_at_s)
            self.worker.enqueue(job.id, job.source, start_at_s=item.start_at_s)

    # -- when the library refuses writes -----------------------------------------------------------
    def _halt_on_write_error(self, exc: StoreError) -> None:
        """Stop transcribing until the user resumes: what cannot be saved would be lost. What was saved
        stays, and each stopped job resumes where its saved text ends."""
        first = self._write_failure is None
        self._write_failure = exc
        if first:
            log.error("the library refused a write: %s", exc)
            stopped = set(self.worker.hold()) | set(self.jobs.halted())
            stopped |= {job.id for job in self.queue_model.jobs() if job.state == JobState.RUNNING}
            for job_id in stopped:
                self.queue_model.update(job_id, state=JobState.QUEUED, error=None)
        what = "Free some space, then press Resume" if getattr(exc, "disk_full", False) else "Press Resume once it is fixed"
        self.notice.setProperty("write-error", True)
        self.notice.show_message(
            f"Could not save to the library: {exc}. Transcription is paused and everything saved so far is kept. "
            f"{what}: it carries on where the saved text ends.", "error",
            action=("Resume", self.resume_after_write_error))
        self._update_job_header()
        self._update_actions()

    def resume_after_write_error(self) -> bool:
        """Carry on after a refused write, once the library takes writes again. True when it did."""
        if self._write_failure is None:
            return True
        try:
            for job_id in sorted(self._unsaved_edits):
                if self.store.has_job(job_id):
                    self.jobs.edited(job_id, self.jobs.transcript(job_id))
            self._unsaved_edits.clear()
            # Jobs stopped mid-run go back to the queue at their resume point (a crash would do the same).
            found = self.jobs.resumable()
        except StoreError as exc:
            self._write_failure = None
            self._halt_on_write_error(exc)
            return False
        self._write_failure = None
        self.notice.setProperty("write-error", False)
        self.notice.hide()
        for item in found:
            self.jobs.forget(item.job.id)
            self.queue_model.update(item.job.id, state=JobState.QUEUED, error=None, done_s=item.start_at_s)
            self.worker.enqueue(item.job.id, item.job.source, start_at_s=item.start_at_s)
        self.worker.release()
        self.statusBar().showMessage("Saving works again; transcription carries on.", 8000)
        if self.current_job_id() is not None:
            self._show_job(self.current_job_id())
        return True

    def _store_write(self, job_id: int, write: Callable[[], object]) -> bool:
        """Run one library write for a job's event; a refused write pauses the queue. True when saved."""
        if self._write_failure is not None:
            return False
        try:
            write()
        except StoreError as exc:
            self._halt_on_write_error(exc)
            return False
        return True

    # -- dialogs (attributes so tests can replace them) --------------------------------------------
    def ask_open_files(self) -> list[str]:
        from desktop.engine.audio import SUPPORTED_EXTENSIONS

        patterns = " ".join(f"*{ext}" for ext in sorted(SUPPORTED_EXTENSIONS))
        files, _ = QFileDialog.getOpenFileNames(
            self, "Add audio or video files", "", f"Audio and video ({patterns});;All files (*)"
        )
        return files

    def ask_settings(self, settings: Settings) -> Settings | None:
        dialog = SettingsDialog(settings, self)
        if dialog.exec() != SettingsDialog.DialogCode.Accepted:
            return None
        return dialog.settings()

    def show_error(self, title: str, message: str) -> None:
        QMessageBox.warning(self, title, message)

    # -- adding files ------------------------------------------------------------------------------
    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if event.mimeData().hasUrls() and any(url.isLocalFile() for url in event.mimeData().urls()):
            event.acceptProposedAction()
        else:
            event.ignore()

    def dragMoveEvent(self, event) -> None:
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:
        if self.handle_drop(event.mimeData()):
            event.acceptProposedAction()
        else:
            event.ignore()

    def handle_drop(self, mime: QMimeData) -> bool:
        paths = [url.toLocalFile() for url in mime.urls() if url.isLocalFile()]
        if not paths:
            return False
        self.add_paths(paths)
        return True

    def open_files(self) -> None:
        files = self.ask_open_files()
        if files:
            self.add_paths(files)

    def add_paths(self, paths: Iterable[str | Path]) -> list[Job]:
        """Queue every supported file (folders searched recursively); refuse the rest with a message.
        Jobs wait in the queue until the model is ready."""
        accepted, refused = expand_paths(paths)
        waiting = {Path(j.source) for j in self.queue_model.jobs() if not j.state.is_final}
        added: list[Job] = []
        for path in accepted:
            source = path.resolve()
            if source in waiting:
                refused.append((path, "already in the queue"))
                continue
            waiting.add(source)
            try:
                job = self.store.add_job(str(source))
            except StoreError as exc:
                refused.append((path, f"not saved to the library: {exc}"))
                continue
            self.queue_model.add(job)
            self.worker.enqueue(job.id, job.source)
            added.append(job)
        if added and self.current_job_id() is None:
            self.select_job(added[0].id)
        if refused:
            self._show_refused(refused)
        elif added:
            self.statusBar().showMessage(f"Added {count(len(added), 'file')} to the queue.", 5000)
        return added

    def _show_refused(self, refused: Sequence[tuple[Path, str]]) -> None:
        shown = "; ".join(f"{p.name or p}: {why}" for p, why in refused[:3])
        more = f" (and {len(refused) - 3} more)" if len(refused) > 3 else ""
        text = f"Not added — {shown}{more}."
        self.notice.show_message(text, "error", hide_after_ms=12_000)
        self.statusBar().showMessage(text, 12_000)

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

    # -- playback ----------------------------------------------------------------------------------
    # -- worker events -----------------------------------------------------------------------------
    def _on_model_status(self, status: ModelStatus) -> None:
        if self._closing:
            return
        downloading = status.stage == "downloading" and status.total_bytes > 0
        self.download_bar.setVisible(downloading)
        self.download_cancel.setVisible(status.stage == "downloading")
        if downloading:
            self.download_bar.setRange(0, 1000)
            self.download_bar.setValue(int(1000 * status.done_bytes / status.total_bytes))
            self.download_bar.setFormat(f"{status.done_bytes / 1e6:.0f} / {status.total_bytes / 1e6:.0f} MB")
        if status.stage == "failed" and status.still_using is not None:
            self._on_model_fallback(status)
            return
        texts = {
            "loading": "loading…",
            "downloading": "downloading…",
            "warming": "warming up…",
            "failed": "failed",
        }
        if status.stage == "ready":
            self._model_name = status.model
            text = f"Model: {status.model} · {(status.device or '').upper()} · {status.compute_type} · ready"
            self._set_model_text(text, status.device_note or "")
            if self.notice.property("model-error"):
                self.notice.hide()
                self.notice.setProperty("model-error", False)
            if status.device_note and (self.settings.device == "cuda" or "failed" in status.device_note):
                # The GPU was asked for, or it was there and failed: say so where it stays visible. With
                # "auto" and no GPU at all, the CPU is the expected outcome and needs no notice.
                self.notice.show_message(f"{status.device_note[0].upper()}{status.device_note[1:]}.", "warning")
                self.statusBar().showMessage(status.device_note, 10_000)
        else:
            level = "error" if status.stage == "failed" else ""
            self._set_model_text(f"Model: {status.model} · {texts.get(status.stage, status.stage)}",
                                 status.error or "", level)

    def _on_model_fallback(self, status: ModelStatus) -> None:
        """The chosen model could not be loaded and the worker went on with one that works: say so, and
        make the settings (shown and saved) what it runs with, so the next start does not fail the same way."""
        using = status.still_using
        assert using is not None
        self._model_name = using.model
        self._set_model_text(f"Model: {using.model} · {(using.device or '').upper()} · {using.compute_type} · ready",
                             f"Could not load {status.model}: {status.error}")
        self.notice.setProperty("model-error", True)
        reason = (status.error or "").rstrip(".")
        what = "load"
        download_failed = f"could not download model '{status.model}': "
        if reason.startswith(download_failed):  # not "Could not load small: could not download model 'small': …"
            what, reason = "download", reason[len(download_failed):]
        self.notice.show_message(f"Could not {what} {status.model}: {reason}. Still using {using.model}.",
                                 "error", action=("Settings…", self.open_settings))
        effective = status.effective_settings
        if effective is None or self.settings.model != status.model:
            return  # the user has chosen something else since
        self.settings = dataclasses.replace(self.settings, model=effective.model, device=effective.device,
                                            compute_type=effective.compute_type)
        try:
            self._settings_saver(self.settings)
        except OSError as exc:
            log.warning("cannot save the settings: %s", exc)

    def _on_model_failed(self, reason: str) -> None:
        if self._closing:
            return
        self.notice.setProperty("model-error", True)
        self.notice.show_message(
            f"The speech model could not be loaded: {reason}. Queued files wait until a model is ready.",
            "error",
            action=("Settings…", self.open_settings),
        )

    def _set_model_text(self, text: str, tooltip: str = "", level: str = "") -> None:
        self.model_label.setText(text)
        self.model_label.setToolTip(tooltip)
        self.model_label.setProperty("role", "error" if level == "error" else "")
        self.model_label.style().unpolish(self.model_label)
        self.model_label.style().polish(self.model_label)

    def _known(self, job_id: int) -> bool:
        # A job removed while the worker still had events for it is ignored from then on, and so are the
        # last events of a run its removal stopped, should the job be back by then.
        return (not self._closing and self.queue_model.row_of(job_id) is not None
                and not self.removals.is_stopping(job_id))

    def _on_job_started(self, job_id: int, event) -> None:
        if not self._known(job_id) or self._write_failure is not None:
            return
        self._drafts.pop(job_id, None)  # a recording's full pass replaces its live draft
        self._notices.pop(job_id, None)
        if not self._store_write(job_id, lambda: self.jobs.started(
                job_id, event.duration_s, event.language, event.language_probability, self._model_name,
                event.start_at_s)):
            return
        job = self.store.job(job_id)
        self.queue_model.update(job_id, state=JobState.RUNNING, duration_s=event.duration_s,
                                language=job.language, error=None, done_s=event.start_at_s)
        if job_id == self.current_job_id():
            self._show_job(job_id)

    def _on_segments_decoded(self, job_id: int, segments: tuple[Segment, ...]) -> None:
        if not self._known(job_id) or self._write_failure is not None:
            return
        self.jobs.decoded(job_id, segments)
        if job_id == self.current_job_id():
            self._update_job_header()

    def _on_job_progressed(self, job_id: int, done_s: float, total_s: float) -> None:
        if not self._known(job_id) or self._write_failure is not None:
            return
        if self._store_write(job_id, lambda: self.jobs.progressed(job_id, done_s)):
            self.queue_model.set_progress(job_id, done_s, total_s)
            log.info("job %d: committed up to %.2f of %.2f s", job_id, done_s, total_s)

    def _end_job(self, job_id: int, state: JobState, error: str | None = None) -> None:
        if self.removals.job_ended(job_id) or not self._known(job_id) or self._write_failure is not None:
            return
        if not self._store_write(job_id, lambda: self.jobs.ended(job_id, state, error)):
            return
        log.info("job %d: %s", job_id, state.value)
        self.queue_model.update(job_id, state=state, error=error)
        if job_id == self.current_job_id():
            self._update_job_header()
        self._update_actions()

    def _on_job_noticed(self, job_id: int, notices: tuple[str, ...]) -> None:
        if self._known(job_id):
            self._notices[job_id] = tuple(notices)  # shown by _end_job's header update, which follows

    def _on_job_finished(self, job_id: int) -> None:
        self._end_job(job_id, JobState.DONE)

    def _on_job_failed(self, job_id: int, reason: str) -> None:
        self._end_job(job_id, JobState.FAILED, reason)

    def _on_job_cancelled(self, job_id: int) -> None:
        self._end_job(job_id, JobState.CANCELLED)

    # -- editing -----------------------------------------------------------------------------------
    def _save_edit(self) -> None:
        job_id = self.current_job_id()
        transcript = self.transcript_model.transcript
        if job_id is None or transcript is None:
            return
        try:
            self.jobs.edited(job_id, transcript)
        except StoreError as exc:
            # The edit stays in the editor and is saved on resume.
            self._unsaved_edits.add(job_id)
            self._halt_on_write_error(exc)
            self._show_edit_error(f"Your edit is not saved yet: {exc}")
            return
        self._unsaved_edits.discard(job_id)
        self.edit_error.hide()
        self._update_actions()

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

    # -- re-running a flagged range ------------------------------------------------------------------
    def rerun_rows(self, first: int, last: int) -> int | None:
        """Ask the worker to transcribe the time of rows first..last again; the answer replaces whatever
        segments then lie in that time, as one undoable edit. Returns the request id."""
        job_id = self.current_job_id()
        entry = self.queue_model.entry(job_id) if job_id is not None else None
        transcript = self.transcript_model.transcript
        if entry is None or transcript is None or job_id is None:
            return None
        if entry.job.state != JobState.DONE:
            self._show_edit_error("A range can be transcribed again once the job is done.")
            return None
        rows = self.transcript_model.rows()
        start_s, end_s = rows[first].start_s, rows[last].end_s
        request_id = self.worker.rerun_range(job_id, entry.job.source, start_s, end_s)
        self._reruns[request_id] = transcript
        self.statusBar().showMessage(f"Transcribing {format_time(start_s)}–{format_time(end_s)} again…")
        return request_id

    def _on_range_transcribed(self, outcome: RangeOutcome) -> None:
        request = outcome.request
        transcript = self._reruns.pop(request.request_id, None)
        # The job may have been removed or retried (a new transcript) since: then the answer is stale.
        if transcript is None or not self._known(request.job_id) or self._transcripts.get(request.job_id) is not transcript:
            return
        span = f"{format_time(request.start_s)}–{format_time(request.end_s)}"
        merged: list[RerunMerge] = []
        self.transcript_model.perform(lambda: merged.append(transcript.merge_rerun(
            request.start_s, request.end_s, outcome.segments, f"Re-run {span}")), transcript)
        if not merged:
            return  # the edit was refused; edit_failed said why
        merge = merged[0]
        if merge.refused:
            self._show_edit_error(merge.refused)
            return
        if not merge.changed:
            self.statusBar().showMessage("The re-run found nothing to change.", 8000)
            return
        self.store.save_transcript(request.job_id, transcript)
        self._update_actions()
        if request.job_id == self.current_job_id():
            self._update_job_header()
            if merge.inserted:
                self.editor.select_row(merge.first, 0)
        if merge.inserted:
            self.statusBar().showMessage(f"{span} transcribed again: {count(merge.replaced, 'segment')} replaced by "
                                         f"{merge.inserted} (Ctrl+Z undoes it).", 10_000)
        else:
            self.statusBar().showMessage(f"The re-run found no speech in {span}; the flagged segments were removed "
                                         "(Ctrl+Z brings them back).", 10_000)

    def _on_range_failed(self, outcome: RangeOutcome) -> None:
        if self._reruns.pop(outcome.request.request_id, None) is not None and not self._closing:
            self._show_edit_error(f"The range could not be transcribed again: {outcome.error}")

    # -- queue operations --------------------------------------------------------------------------
    def cancel_selected(self) -> None:
        job_id = self.current_job_id()
        entry = self.queue_model.entry(job_id) if job_id is not None else None
        if entry is not None and not entry.job.state.is_final:
            self.worker.cancel_job(entry.job.id)
            self.statusBar().showMessage(f"Cancelling {Path(entry.job.source).name}…", 4000)

    def retry_selected(self) -> None:
        job_id = self.current_job_id()
        entry = self.queue_model.entry(job_id) if job_id is not None else None
        if entry is None or not entry.job.state.is_final:
            return
        try:
            self.jobs.requeue(job_id)
        except StoreError as exc:
            self.show_error("Retry failed", f"The job could not be queued again: {exc}")
            return
        self.queue_model.update(job_id, state=JobState.QUEUED, error=None, done_s=0.0)
        self.worker.enqueue(job_id, entry.job.source)
        self._show_job(job_id)

    def remove_selected(self) -> None:
        job_id = self.current_job_id()
        if job_id is None:
            return
        row = self.queue_model.row_of(job_id)
        self.removals.remove(job_id)
        if self.queue_model.rowCount():
            self.select_job(self.queue_model.job(min(row or 0, self.queue_model.rowCount() - 1)).id)
        else:
            self._show_job(None)

    def undo_remove(self) -> None:
        job_id = self.removals.undo()
        if job_id is not None:
            self.select_job(job_id)
            self.queue_view.setFocus()
        self._update_actions()

    def _undo_goes_to_queue(self) -> bool:
        """Ctrl+Z undoes a removal where the queue has the focus, or where the transcript has nothing to undo."""
        transcript = self.transcript_model.transcript
        return self.removals.can_undo() and (
            self.focusWidget() is self.queue_view or transcript is None or not transcript.can_undo())

    def undo(self) -> None:
        if self._undo_goes_to_queue():
            self.undo_remove()
        else:
            self.transcript_model.undo()

    def move_selected(self, delta: int) -> None:
        job_id = self.current_job_id()
        if job_id is None or not self.queue_model.move(job_id, delta):
            return
        order = self.queue_model.job_ids()
        try:
            self.jobs.reorder(order)
        except StoreError as exc:
            self.statusBar().showMessage(f"The new order is not saved: {exc}", 8000)
        self.worker.reorder(order)
        self.select_job(job_id)
        self._update_actions()

    # -- export ------------------------------------------------------------------------------------
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
        self.worker.flush()  # segments already decoded are saved before worker events are ignored
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

    def _purge_removed(self) -> None:
        try:
            self.store.purge_removed()
        except StoreError as exc:  # a full disk: they are deleted at a later start instead
            log.warning("removed jobs not deleted yet: %s", exc)


    # -- recording from the microphone -------------------------------------------------------------

def _icon_path(name: str) -> str:
    from desktop.ui.resources import resources_dir

    return (resources_dir() / "icons" / f"{name}.svg").as_posix()
