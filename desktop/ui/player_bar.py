"""The player bar under the transcript: play/pause, position, speed, loop-segment and follow toggles.

It knows segments only through two callables the window sets: `selected_range()` (the segment the user
selected) and `range_at(position_s)` (the segment playing at a position). Its actions carry the keyboard
shortcuts; they are chosen not to clash with the editor's (Ctrl+F find, Ctrl+Z/Y undo/redo, Ctrl+E export,
F8 next uncertain word).
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QEvent, QObject, Qt, Signal
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QSlider, QToolButton, QWidget

from desktop.ui.resources import icon
from desktop.ui.timefmt import format_time
from desktop.workers.player import Player, PlayerState
from desktop.workers.signals import emit

SPEEDS = (0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0)
SKIP_S = 5.0

Range = tuple[float, float]

SHORTCUTS = {
    "play": "Ctrl+Space",
    "loop": "Ctrl+L",
    "follow": "Ctrl+Shift+F",
    "back": "Ctrl+[",
    "forward": "Ctrl+]",
}


class PlayerBar(QWidget):
    follow_toggled = Signal(bool)

    def __init__(self, player: Player, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("PlayerBar")
        self.player = player
        self.selected_range: Callable[[], Range | None] = lambda: None
        self.range_at: Callable[[float], Range | None] = lambda _position_s: None
        self._dragging = False

        self.play_action = self._action("Play / pause", "play", SHORTCUTS["play"],
                                        "Play from the selected segment, or pause", self.play_pause)
        self.loop_action = self._action("Loop segment", "loop", SHORTCUTS["loop"],
                                        "Repeat the segment being played", self._loop_toggled, checkable=True)
        self.follow_action = self._action("Follow playback", "follow", SHORTCUTS["follow"],
                                          "Keep the segment being played selected and in view",
                                          lambda: emit(self.follow_toggled, self.follow_action.isChecked()),
                                          checkable=True)
        self.follow_action.setChecked(True)
        self.back_action = self._action("Back 5 s", None, SHORTCUTS["back"], "Jump back five seconds",
                                        lambda: self.skip(-SKIP_S))
        self.forward_action = self._action("Forward 5 s", None, SHORTCUTS["forward"],
                                           "Jump ahead five seconds", lambda: self.skip(SKIP_S))

        self.play_button = self._button(self.play_action)
        self.loop_button = self._button(self.loop_action)
        self.follow_button = self._button(self.follow_action)
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setRange(0, 0)  # milliseconds
        self.slider.setSingleStep(1000)  # arrow keys: one second
        self.slider.setPageStep(int(SKIP_S * 1000))  # Page Up/Down and clicks on the groove: like Ctrl+[ and Ctrl+]
        self.slider.setToolTip("Position in the source; drag to seek")
        self.slider.setAccessibleName("Playback position")
        self.slider.sliderPressed.connect(self._drag_started)
        self.slider.sliderReleased.connect(self._drag_ended)
        self.slider.actionTriggered.connect(self._slider_action)
        self.time_label = QLabel()
        self.time_label.setMinimumWidth(self.fontMetrics().horizontalAdvance("0:00:00.0 / 0:00:00.0") + 8)
        self.time_label.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        self.speed_box = QComboBox()
        for speed in SPEEDS:
            self.speed_box.addItem(f"{speed:g}×", speed)
        self.speed_box.setCurrentIndex(SPEEDS.index(1.0))
        self.speed_box.setToolTip("Playback speed (the pitch stays the same)")
        self.speed_box.setAccessibleName("Playback speed")
        self.speed_box.currentIndexChanged.connect(lambda i: self.player.set_speed(SPEEDS[i]))

        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 4, 0, 0)
        layout.addWidget(self.play_button)
        layout.addWidget(self.slider, 1)
        layout.addWidget(self.time_label)
        layout.addWidget(self.speed_box)
        layout.addWidget(self.loop_button)
        layout.addWidget(self.follow_button)

        player.position_changed.connect(self._show_position)
        player.duration_changed.connect(self._show_duration)
        player.state_changed.connect(self._show_state)
        self._show_state(player.state.value)
        self._show_position(0.0)

    # -- construction ------------------------------------------------------------------------------
    def _action(self, text: str, icon_name: str | None, shortcut: str, tip: str, slot: Callable[[], object],
                checkable: bool = False) -> QAction:
        action = QAction(text, self)
        if icon_name:
            action.setIcon(icon(icon_name))
        action.setShortcut(QKeySequence(shortcut))
        action.setToolTip(f"{tip} ({shortcut})")
        action.setStatusTip(tip)
        action.setCheckable(checkable)
        action.triggered.connect(lambda _checked=False: slot())
        self.addAction(action)
        return action

    def _button(self, action: QAction) -> QToolButton:
        button = QToolButton()
        button.setDefaultAction(action)
        button.setAutoRaise(True)
        return button

    def playback_actions(self) -> list[QAction]:
        """For menus and the shortcut list."""
        return [self.play_action, self.back_action, self.forward_action, self.loop_action, self.follow_action]

    # -- commands ----------------------------------------------------------------------------------
    def play_pause(self) -> None:
        """Pause when playing; otherwise play the selected segment, or resume where it paused when that is
        still inside the selected segment."""
        if self.player.is_playing():
            self.player.pause()
            return
        selected = self.selected_range()
        position_s = self.player.position_s
        if selected is not None and not (selected[0] <= position_s < selected[1]
                                         and self.player.state == PlayerState.PAUSED):
            self.play_range(selected)
        else:
            self.player.play(loop=self._loop_for(position_s))

    def play_range(self, segment: Range) -> None:
        """Play from a segment's start; with loop on, loop that segment."""
        if not self.loop_action.isChecked():
            self.player.set_loop(None)
        self.player.play(segment[0], loop=segment if self.loop_action.isChecked() else None)

    def skip(self, delta_s: float) -> None:
        duration_s = self.player.duration_s
        if duration_s is None:
            return
        self.player.seek(min(max(self.player.position_s + delta_s, 0.0), duration_s))

    @property
    def follow(self) -> bool:
        return self.follow_action.isChecked()

    def _loop_for(self, position_s: float) -> Range | None:
        if not self.loop_action.isChecked():
            return None
        return self.range_at(position_s) or self.selected_range()

    def _loop_toggled(self) -> None:
        if not self.loop_action.isChecked():
            self.player.set_loop(None)
            return
        segment = self._loop_for(self.player.position_s)
        if segment is None:
            self.loop_action.setChecked(False)
            return
        self.player.set_loop(segment)

    # -- slider ------------------------------------------------------------------------------------
    def _drag_started(self) -> None:
        self._dragging = True

    def _drag_ended(self) -> None:
        self._dragging = False
        self.player.seek(self.slider.value() / 1000)

    def _slider_action(self, action: int) -> None:
        # Clicks on the groove and arrow keys move the slider without a drag; seek to where it goes.
        if action != QSlider.SliderAction.SliderMove.value and not self._dragging:
            self.player.seek(self.slider.sliderPosition() / 1000)

    # -- player events -----------------------------------------------------------------------------
    def _show_position(self, position_s: float) -> None:
        if not self._dragging:
            self.slider.blockSignals(True)
            self.slider.setValue(int(position_s * 1000))
            self.slider.blockSignals(False)
        duration_s = self.player.duration_s
        total = format_time(duration_s)[:-2] if duration_s is not None else "–:––"
        self.time_label.setText(f"{format_time(position_s)[:-2]} / {total}")

    def _show_duration(self, duration_s: float) -> None:
        self.slider.setRange(0, int(duration_s * 1000))
        self._show_position(self.player.position_s)

    def _show_state(self, state: str) -> None:
        playing = state in (PlayerState.PLAYING.value, PlayerState.LOADING.value)
        self.play_action.setIcon(icon("pause" if playing else "play"))
        self.play_action.setText("Pause" if playing else "Play")
        self.setEnabled(state != PlayerState.EMPTY.value)
        if state == PlayerState.EMPTY.value:
            self.slider.setRange(0, 0)
            self._show_position(0.0)
        if state == PlayerState.LOADING.value:
            self.time_label.setText("loading…")


class PlayOnDoubleClick(QObject):
    """Event filter for a table view's viewport: a double-click on one of `columns` calls play(row) instead
    of opening the cell's editor (the time cells stay editable with F2 or by typing)."""

    def __init__(self, view, columns: tuple[int, ...], play: Callable[[int], None]) -> None:
        super().__init__(view)
        self._view = view
        self._columns = columns
        self._play = play
        view.viewport().installEventFilter(self)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() == QEvent.Type.MouseButtonDblClick:
            index = self._view.indexAt(event.position().toPoint())
            if index.isValid() and index.column() in self._columns:
                self._view.setCurrentIndex(index)
                self._play(index.row())
                return True
        return False
