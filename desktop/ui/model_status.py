"""The model's state in the status bar: loading, downloading (with its progress and a cancel button), ready
on which device; a model that failed to load, and the one the worker went on with instead.

A mixin of MainWindow: it uses the window's worker, settings, _settings_saver, notice, open_settings and
status bar."""

from __future__ import annotations

import dataclasses
import logging

from PySide6.QtWidgets import QLabel, QProgressBar, QToolButton

from desktop.workers.messages import ModelStatus

log = logging.getLogger(__name__)


class ModelStatusView:
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
