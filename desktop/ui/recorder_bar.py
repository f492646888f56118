"""The recorder bar: input picker, record / pause / stop, elapsed time and a live level meter. It only
shows state and asks; the main window owns the recording (desktop.workers.recorder.RecordingSession)."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QRectF, QSize, Qt, Signal
from PySide6.QtGui import QColor, QPainter, QPaintEvent
from PySide6.QtWidgets import QComboBox, QFrame, QHBoxLayout, QLabel, QPushButton, QSizePolicy, QWidget

from desktop.capture.devices import CaptureError, InputDevice
from desktop.capture.levels import Level
from desktop.ui.timefmt import format_duration
from desktop.workers.signals import emit

METER_FLOOR_DBFS = -60.0


class LevelMeter(QWidget):
    """A horizontal bar for the RMS level and a tick for the peak, on a dBFS scale from -60 to 0."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.rms_dbfs = METER_FLOOR_DBFS
        self.peak_dbfs = METER_FLOOR_DBFS
        self.setMinimumWidth(160)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.setToolTip("Input level")

    def sizeHint(self) -> QSize:
        return QSize(220, 14)

    def set_level(self, level: Level) -> None:
        self.rms_dbfs = max(METER_FLOOR_DBFS, level.rms_dbfs)
        self.peak_dbfs = max(METER_FLOOR_DBFS, level.peak_dbfs)
        self.update()

    def fraction(self, dbfs: float) -> float:
        return min(1.0, max(0.0, (dbfs - METER_FLOOR_DBFS) / -METER_FLOOR_DBFS))

    def paintEvent(self, _event: QPaintEvent) -> None:
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        rect = QRectF(self.rect()).adjusted(0.5, 0.5, -0.5, -0.5)
        # A light groove, like the progress bars beside it; a dark one read as a full bar at silence.
        painter.setPen(QColor("#9aa5b1"))
        painter.setBrush(QColor("#e4e7eb"))
        painter.drawRoundedRect(rect, 3, 3)
        width = rect.width() - 2
        rms = self.fraction(self.rms_dbfs)
        color = QColor("#3ebd93") if self.peak_dbfs < -6 else QColor("#f0b429") if self.peak_dbfs < -1 else QColor("#e12d39")
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(color)
        painter.drawRoundedRect(QRectF(rect.left() + 1, rect.top() + 1, width * rms, rect.height() - 2), 2, 2)
        peak_x = rect.left() + 1 + width * self.fraction(self.peak_dbfs)
        painter.setPen(QColor("#3e4c59"))
        painter.drawLine(int(peak_x), int(rect.top() + 1), int(peak_x), int(rect.bottom() - 1))


class RecorderBar(QFrame):
    record_clicked = Signal()
    pause_clicked = Signal()  # pause or resume, by state
    stop_clicked = Signal()

    def __init__(self, list_devices: Callable[[], list[InputDevice]] | None = None,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("RecorderBar")
        self._list_devices = list_devices
        self.state = "idle"
        self.device_combo = QComboBox()
        self.device_combo.setToolTip("Input to record from")
        self.device_combo.setMinimumContentsLength(18)
        self.device_combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.record_button = QPushButton("● Record")
        self.record_button.setObjectName("RecordButton")
        self.record_button.setToolTip("Record from the microphone (Ctrl+Shift+M)")
        self.pause_button = QPushButton("Pause")
        self.stop_button = QPushButton("■ Stop")
        self.stop_button.setToolTip("Stop; the recording joins the queue and is transcribed in full")
        self.elapsed_label = QLabel("0:00")
        self.elapsed_label.setMinimumWidth(56)
        self.elapsed_label.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        self.status_label = QLabel("")
        self.status_label.setProperty("role", "hint")
        self.meter = LevelMeter()
        layout = QHBoxLayout(self)
        layout.setContentsMargins(8, 4, 8, 4)
        mic = QLabel("Microphone:")
        layout.addWidget(mic)
        layout.addWidget(self.device_combo)
        layout.addWidget(self.record_button)
        layout.addWidget(self.pause_button)
        layout.addWidget(self.stop_button)
        layout.addWidget(self.elapsed_label)
        layout.addWidget(self.meter, 1)
        layout.addWidget(self.status_label)
        self.record_button.clicked.connect(lambda: emit(self.record_clicked))
        self.pause_button.clicked.connect(lambda: emit(self.pause_clicked))
        self.stop_button.clicked.connect(lambda: emit(self.stop_clicked))
        self.refresh_devices()
        self.set_state("idle")

    def refresh_devices(self) -> None:
        """Fill the picker: the system default first, then every input PortAudio lists."""
        chosen = self.selected_device()
        self.device_combo.clear()
        self.device_combo.addItem("System default input", None)
        devices: list[InputDevice] = []
        if self._list_devices is not None:
            try:
                devices = self._list_devices()
            except CaptureError as exc:
                self.device_combo.setToolTip(str(exc))
        for device in devices:
            self.device_combo.addItem(device.label + (" (default)" if device.is_default else ""), device.index)
        if chosen is not None:
            index = self.device_combo.findData(chosen)
            if index >= 0:
                self.device_combo.setCurrentIndex(index)

    def selected_device(self) -> int | None:
        data = self.device_combo.currentData()
        return int(data) if data is not None else None

    def set_state(self, state: str) -> None:
        """"idle", "recording" or "paused"."""
        self.state = state
        idle = state in ("idle", "stopped")
        self.record_button.setEnabled(idle)
        self.device_combo.setEnabled(idle)
        self.pause_button.setEnabled(not idle)
        self.stop_button.setEnabled(not idle)
        self.pause_button.setText("Resume" if state == "paused" else "Pause")
        self.status_label.setText({"recording": "Recording…", "paused": "Paused"}.get(state, ""))
        if idle:
            self.meter.set_level(Level())

    def set_elapsed(self, seconds: float) -> None:
        self.elapsed_label.setText(format_duration(int(seconds)))

    def set_level(self, level: Level) -> None:
        self.meter.set_level(level)
