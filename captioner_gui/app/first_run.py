"""The first-run dialog: the chosen model is not on this computer. Says what a download brings (names and sizes,
from the engine's pinned table: the Hub is contacted only when the user chooses Download), downloads it with a
progress bar and Cancel through the engine's model store, or imports files the user already has. Offline, the
download says so and how to import."""

from __future__ import annotations

import threading
from pathlib import Path

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtWidgets import (QDialog, QDialogButtonBox, QFileDialog, QLabel, QProgressBar, QPushButton,
                               QVBoxLayout)
from tqdm import tqdm

from captioner_gui.engine.store import human_size

WEIGHT_FILTER = "ClipCap weights (*.pt *.pth *.safetensors *.bin);;All files (*)"


def _purpose(filename: str) -> str:
    if filename in ("vocab.json", "merges.txt"):
        return "GPT-2's word list"
    if filename.startswith("open_clip"):
        return "CLIP image encoder"
    return "Captioning model"


class _Bridge(QObject):
    """Carries news from the download thread to the dialog (signals cross threads safely)."""

    progress = Signal(str, int, int)  # file name, bytes so far, bytes in all (0: unknown)
    finished = Signal(str)  # "" on success, else the message


class ModelSetupDialog(QDialog):
    def __init__(self, model: str, models_dir: Path, reason: str = "", parent=None):
        super().__init__(parent)
        from captioner_gui.engine import BUILTINS

        self.model, self.models_dir = model, models_dir
        self.downloadable = model in BUILTINS and bool(BUILTINS[model].hub_repo)
        self._cancel = threading.Event()
        self._busy = False
        self.setWindowTitle("Get the model")
        self.bridge = _Bridge()
        self.bridge.progress.connect(self._show_progress)
        self.bridge.finished.connect(self._finished)

        intro = f"Captioner needs the model '{model}' to describe images, and it is not on this computer yet."
        if self.downloadable:
            intro += " It can be downloaded once from the Hugging Face Hub; after that everything stays offline."
        elif model in BUILTINS:
            intro += f" It has no download mirror: get {BUILTINS[model].filename} from {BUILTINS[model].source}, " \
                     "then choose it with 'Use files I have'."
        else:
            intro += f" {reason}"
        self.intro = QLabel(intro)
        self.files = QLabel("")
        self.message = QLabel("")
        for label in (self.intro, self.files, self.message):
            label.setWordWrap(True)
            label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByKeyboard
                                          | Qt.TextInteractionFlag.TextSelectableByMouse)
        self.files.setAccessibleName("Files to download")
        # No fixed name: a label's name is what a screen reader reads, so it stays the message itself.
        self.message.setAccessibleDescription("Download status")
        self.progress = QProgressBar()
        self.progress.setAccessibleName("Download progress")
        self.progress.setVisible(False)

        self.buttons = QDialogButtonBox()
        self.download_button = QPushButton("&Download")
        self.download_button.setAccessibleDescription("Download the model's files, then load it.")
        self.import_button = QPushButton("&Use files I have...")
        self.import_button.setAccessibleDescription("Choose a ClipCap weights file already on this computer.")
        self.cancel_button = QPushButton("Not now")
        if self.downloadable:
            self.buttons.addButton(self.download_button, QDialogButtonBox.ButtonRole.AcceptRole)
            self.download_button.setDefault(True)
        self.buttons.addButton(self.import_button, QDialogButtonBox.ButtonRole.ActionRole)
        self.buttons.addButton(self.cancel_button, QDialogButtonBox.ButtonRole.RejectRole)
        self.download_button.clicked.connect(self.start_download)
        self.import_button.clicked.connect(self.choose_files)
        self.cancel_button.clicked.connect(self._cancel_or_close)

        layout = QVBoxLayout(self)
        for widget in (self.intro, self.files, self.progress, self.message, self.buttons):
            layout.addWidget(widget)
        self.setAccessibleDescription(intro)
        self.setMinimumWidth(600)
        if self.downloadable:
            self._show_plan()

    # ------------------------------------------------------------------ the plan

    def _show_plan(self) -> None:
        """The files a download brings and their sizes, from the engine's pinned table (no network)."""
        from captioner_gui.engine import download_plan

        planned = download_plan(self.model, self.models_dir)
        lines = [f"{_purpose(item.remote.filename)}: {item.remote.filename} from {item.remote.repo_id}, "
                 f"{human_size(item.size) if item.size is not None else 'size unknown'}" for item in planned]
        sizes = [item.size for item in planned if item.size]
        text = "To download:\n" + "\n".join(lines)
        if sizes:
            text += f"\nIn all about {human_size(sum(sizes))}, saved in {self.models_dir}."
        self.files.setText(text)
        self.download_button.setFocus()

    # ------------------------------------------------------------------ downloading and importing

    def start_download(self) -> None:
        from captioner_gui.engine import download_model

        self._run_in_background("Downloading...", "The download failed", lambda progress: download_model(
            self.model, self.models_dir, tqdm_class=progress, report=lambda message: None))

    def choose_files(self) -> None:
        from captioner_gui.engine import import_model

        path, _ = QFileDialog.getOpenFileName(self, f"Choose the weights of '{self.model}'", str(Path.home()),
                                              WEIGHT_FILTER)
        if path:
            self._run_in_background(f"Importing {Path(path).name}...", "The import failed", lambda progress:
                                    import_model(Path(path), self.model, self.models_dir, tqdm_class=progress))

    def _run_in_background(self, doing: str, failed: str, work) -> None:
        """Runs work(progress class) in a thread; its end (or its error message) arrives as `finished`."""
        from captioner_gui.engine import CaptionerError

        self._busy = True
        self._cancel.clear()
        self.download_button.setEnabled(False)
        self.import_button.setEnabled(False)
        self.cancel_button.setText("Cancel")
        self.cancel_button.setFocus()
        self.progress.setVisible(True)
        self.progress.setRange(0, 0)
        self.tell(doing)
        progress = self._progress_class()

        def run():
            try:
                work(progress)
                self.bridge.finished.emit("")
            except CaptionerError as exc:
                self.bridge.finished.emit(str(exc))
            except Exception as exc:
                self.bridge.finished.emit(f"{failed}: {exc}")

        threading.Thread(target=run, daemon=True).start()

    def _progress_class(self):
        """A tqdm that reports to the dialog and stops the transfer when Cancel was pressed."""
        from captioner_gui.engine import DownloadCancelled

        bridge, cancel = self.bridge, self._cancel

        class DialogProgress(tqdm):
            def __init__(self, *args, **kwargs):
                kwargs["disable"] = True
                super().__init__(*args, **kwargs)
                self.done, self.name = kwargs.get("initial", 0) or 0, kwargs.get("desc") or ""

            def update(self, n=1):
                if cancel.is_set():
                    raise DownloadCancelled("The download was cancelled; what arrived is kept for next time.")
                self.done += n or 0
                bridge.progress.emit(str(self.name), int(self.done), int(self.total or 0))

        return DialogProgress

    def _show_progress(self, name: str, done: int, total: int) -> None:
        if total > 0:
            self.progress.setRange(0, 1000)
            self.progress.setValue(int(1000 * done / total))
        self.message.setText(f"Downloading {Path(name).name or 'files'}: {human_size(done)} of {human_size(total)}")

    def _finished(self, error: str) -> None:
        self._busy = False
        self.progress.setVisible(False)
        self.cancel_button.setText("Not now")
        self.import_button.setEnabled(True)
        if not error:
            self.tell(f"The model '{self.model}' is ready.")
            self.accept()
            return
        self.download_button.setEnabled(self.downloadable)
        self.tell(error.replace("--name NAME", f"--name {self.model}"))

    def tell(self, message: str) -> None:
        self.message.setText(message)
        self.adjustSize()  # room for the wrapped message
        self.message.setFocus()
        from PySide6.QtGui import QAccessible, QAccessibleAnnouncementEvent

        event = QAccessibleAnnouncementEvent(self.message, message)
        QAccessible.updateAccessibility(event)

    def _cancel_or_close(self) -> None:
        if self._busy:
            self._cancel.set()
            self.message.setText("Cancelling...")
        else:
            self.reject()

    def reject(self) -> None:  # Escape: cancel a running download first
        if self._busy:
            self._cancel_or_close()
        else:
            super().reject()
