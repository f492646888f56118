"""Playback linked to the transcript: the player bar under the editor, a double-click on a time plays that
segment, the playing segment is tinted (and followed, if asked) and re-tinted when edits move its row.

A mixin of MainWindow: it uses the window's transcript_model, transcript_view, store, notice and status bar."""

from __future__ import annotations

import bisect

from PySide6.QtWidgets import QAbstractItemView

from desktop.ui.transcript_model import END, START, TEXT


class PlaybackLink:
    def _build_player(self) -> None:
        from desktop.ui.player_bar import PlayerBar, PlayOnDoubleClick
        from desktop.workers.player import Player

        self.player = Player(self)
        self._player_job_id: int | None = None
        self.player_bar = PlayerBar(self.player)
        self.player_bar.selected_range = self._selected_segment_range
        self.player_bar.range_at = lambda position_s: self._segment_range(self._row_at(position_s))
        self.transcript_view.parentWidget().layout().addWidget(self.player_bar)
        # A double-click on a time plays from there; the text cell still opens its editor.
        self._play_on_double_click = PlayOnDoubleClick(self.transcript_view, (START, END), self.play_segment)
        self.player.position_changed.connect(self._on_play_position)
        self.player.state_changed.connect(self._on_play_state)
        self.player.error.connect(self._on_play_error)
        # Rows inserted or removed by an edit move the playing segment's row; re-tint it even while paused.
        for changed in (self.transcript_model.rowsInserted, self.transcript_model.rowsRemoved):
            changed.connect(lambda *_args: self._retint_playing_row())
        self.menuBar().addMenu("&Playback").addActions(self.player_bar.playback_actions())

    def play_segment(self, row: int) -> None:
        segment = self._segment_range(row)
        if segment is not None:
            self.player_bar.play_range(segment)

    def _player_show(self, job_id: int | None) -> None:
        # Another job shown: whatever played stops (its highlight would point into the wrong transcript).
        if job_id != self._player_job_id:
            self._player_job_id = job_id
            self.player.set_source(None)
            job = self.store.job(job_id) if job_id is not None else None
            self.player.set_source(job.source if job else None, job.duration_s if job else None)

    def _segment_range(self, row: int | None) -> tuple[float, float] | None:
        if row is None or not 0 <= row < self.transcript_model.rowCount():
            return None
        segment = self.transcript_model.segment(row)
        return (segment.start_s, segment.end_s)

    def _selected_segment_range(self) -> tuple[float, float] | None:
        index = self.transcript_view.currentIndex()
        return self._segment_range(index.row()) if index.isValid() else None

    def _row_at(self, position_s: float) -> int | None:
        rows = self.transcript_model.rows()
        row = bisect.bisect_right(rows, position_s, key=lambda segment: segment.start_s) - 1
        return row if row >= 0 and position_s < rows[row].end_s else None

    def _on_play_position(self, position_s: float) -> None:
        row = self._row_at(position_s)
        self.transcript_model.set_playing_row(row)
        view = self.transcript_view
        if row is None or not self.player_bar.follow or view.state() == QAbstractItemView.State.EditingState:
            return  # never move the cursor out of a cell being edited
        current = view.currentIndex()
        if current.row() != row:
            index = self.transcript_model.index(row, current.column() if current.isValid() else TEXT)
            view.setCurrentIndex(index)
            view.scrollTo(index)

    def _retint_playing_row(self) -> None:
        if self.transcript_model.playing_row is not None:
            self.transcript_model.set_playing_row(self._row_at(self.player.position_s))

    def _on_play_state(self, state: str) -> None:
        if state in ("stopped", "empty"):
            self.transcript_model.set_playing_row(None)

    def _on_play_error(self, message: str) -> None:
        self.notice.show_message(message, "error", hide_after_ms=10_000)
        self.statusBar().showMessage(message, 10_000)
