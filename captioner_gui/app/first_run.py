"""The first-run dialog: the chosen model is not on this computer. Says what a download brings (names and sizes,
from the engine's pinned table: the Hub is contacted only when the user chooses Download), downloads it with a
progress bar and Cancel through the engine's model store, or imports files the user already has. Offline, the
download says so and how to import."""

from __future__ import annotations

import threading
from pathlib import Path

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QFileDialog, QLabel, QProgressBar, QPushButton, QVBoxLayout
from tqdm import tqdm

from captioner_gui.engine.store import human_size
from captioner_gui.i18n import _

from .fitting import ScrollingPane

WEIGHT_PATTERNS = "*.pt *.pth *.safetensors *.bin"
PREFERRED_WIDTH = 600  # pixels, where the screen has them (at 200% a laptop's screen is 640 of Qt's pixels wide)


def weight_filter() -> str:
    """The file dialog's filter, in the user's language."""
    return "{weights} ({patterns});;{all} (*)".format(weights=_("ClipCap weights"), patterns=WEIGHT_PATTERNS,
                                                      all=_("All files"))


def _purpose(filename: str) -> str:
    if filename in ("vocab.json", "merges.txt"):
        return _("GPT-2's word list")
    if filename.startswith("open_clip"):
        return _("CLIP image encoder")
    return _("Captioning model")


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
        self.setWindowTitle(_("Get the model"))
        self.bridge = _Bridge()
        self.bridge.progress.connect(self._show_progress)
        self.bridge.finished.connect(self._finished)

        if self.downloadable:
            intro = _("Captioner needs the model '{model}' to describe images, and it is not on this computer yet. "
                      "It can be downloaded once from the Hugging Face Hub; after that everything stays offline."
                      ).format(model=model)
        elif model in BUILTINS:
            intro = _("Captioner needs the model '{model}' to describe images, and it is not on this computer yet. "
                      "It has no download mirror: get {file} from {source}, then choose it with 'Use files I have'."
                      ).format(model=model, file=BUILTINS[model].filename, source=_(BUILTINS[model].source))
        else:  # the engine's message says why, and what to do
            intro = _("Captioner needs the model '{model}' to describe images, and it is not on this computer yet. "
                      "{reason}").format(model=model, reason=reason)
        self.intro = QLabel(intro)
        self.files = QLabel("")
        self.message = QLabel("")
        for label in (self.intro, self.files, self.message):
            label.setWordWrap(True)
            label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByKeyboard
                                          | Qt.TextInteractionFlag.TextSelectableByMouse)
        self.files.setAccessibleName(_("Files to download"))
        # No fixed name: a label's name is what a screen reader reads, so it stays the message itself.
        self.message.setAccessibleDescription(_("Download status"))
        self.progress = QProgressBar()
        self.progress.setAccessibleName(_("Download progress"))
        self.progress.setVisible(False)

        self.buttons = QDialogButtonBox()
        self.download_button = QPushButton(_("&Download"))
        self.download_button.setAccessibleDescription(_("Download the model's files, then load it."))
        self.import_button = QPushButton(_("&Use files I have..."))
        self.import_button.setAccessibleDescription(_("Choose a ClipCap weights file already on this computer."))
        self.cancel_button = QPushButton(_("Not now"))
        if self.downloadable:
            self.buttons.addButton(self.download_button, QDialogButtonBox.ButtonRole.AcceptRole)
            self.download_button.setDefault(True)
        self.buttons.addButton(self.import_button, QDialogButtonBox.ButtonRole.ActionRole)
        self.buttons.addButton(self.cancel_button, QDialogButtonBox.ButtonRole.RejectRole)
        self.download_button.clicked.connect(self.start_download)
        self.import_button.clicked.connect(self.choose_files)
        self.cancel_button.clicked.connect(self._cancel_or_close)

        # Large text (200%) or a long translation makes the words taller than a laptop's screen: they scroll, and the
        # buttons stay in view.
        words = QVBoxLayout()
        for widget in (self.intro, self.files, self.progress, self.message):
            words.addWidget(widget)
        words.addStretch()
        self.scroll = ScrollingPane(words)
        layout = QVBoxLayout(self)
        layout.addWidget(self.scroll, 1)
        layout.addWidget(self.buttons)
        self.setAccessibleDescription(intro)
        if self.downloadable:
            self._show_plan()
        self._fit()

    # ------------------------------------------------------------------ the plan

    def _show_plan(self) -> None:
        """The files a download brings and their sizes, from the engine's pinned table (no network)."""
        from captioner_gui.engine import download_plan

        planned = download_plan(self.model, self.models_dir)
        # Translators: one file of a download: what it is, its name, where it comes from, its size.
        line = _("{purpose}: {file} from {repository}, {size}")
        lines = [line.format(purpose=_purpose(item.remote.filename), file=item.remote.filename,
                             repository=item.remote.repo_id,
                             size=human_size(item.size) if item.size is not None else _("size unknown"))
                 for item in planned]
        sizes = [item.size for item in planned if item.size]
        text = "\n".join([_("To download:"), *lines])
        if sizes:
            text += "\n" + _("In all about {size}, saved in {folder}.").format(size=human_size(sum(sizes)),
                                                                             folder=self.models_dir)
        self.files.setText(text)
        self.download_button.setFocus()

    # ------------------------------------------------------------------ downloading and importing

    def start_download(self) -> None:
        from captioner_gui.engine import download_model

        self._run_in_background(_("Downloading..."), _("The download failed"), lambda progress: download_model(
            self.model, self.models_dir, tqdm_class=progress, report=lambda message: None))

    def choose_files(self) -> None:
        from captioner_gui.engine import import_model

        path, _filter = QFileDialog.getOpenFileName(self, _("Choose the weights of '{model}'").format(model=self.model),
                                                    str(Path.home()), weight_filter())
        if path:
            self._run_in_background(_("Importing {file}...").format(file=Path(path).name), _("The import failed"),
                                    lambda progress: import_model(Path(path), self.model, self.models_dir,
                                                                  tqdm_class=progress))

    def _run_in_background(self, doing: str, failed: str, work) -> None:
        """Runs work(progress class) in a thread; its end (or its error message) arrives as `finished`."""
        from captioner_gui.engine import CaptionerError

        self._busy = True
        self._cancel.clear()
        self.download_button.setEnabled(False)
        self.import_button.setEnabled(False)
        self.cancel_button.setText(_("Cancel"))
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
                self.bridge.finished.emit(_("{failure}: {problem}").format(failure=failed, problem=exc))

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
                    raise DownloadCancelled(_("The download was cancelled; what arrived is kept for next time."))
                self.done += n or 0
                bridge.progress.emit(str(self.name), int(self.done), int(self.total or 0))

        return DialogProgress

    def _show_progress(self, name: str, done: int, total: int) -> None:
        if total > 0:
            self.progress.setRange(0, 1000)
            self.progress.setValue(int(1000 * done / total))
        self.message.setText(_("Downloading {file}: {done} of {total}").format(
            file=Path(name).name or _("files"), done=human_size(done), total=human_size(total)))

    def _finished(self, error: str) -> None:
        self._busy = False
        self.progress.setVisible(False)
        self.cancel_button.setText(_("Not now"))
        self.import_button.setEnabled(True)
        if not error:
            self.tell(_("The model '{model}' is ready.").format(model=self.model))
            self.accept()
            return
        self.download_button.setEnabled(self.downloadable)
        self.tell(error.replace("--name NAME", f"--name {self.model}"))

    def _fit(self) -> None:
        """As wide as its words want (600 pixels at least) and as tall as they then need, within the screen."""
        screen = self.screen().availableGeometry()
        content = self.scroll.widget()
        width = min(max(PREFERRED_WIDTH, content.sizeHint().width() + 40), screen.width() - 16)
        words = content.layout().totalHeightForWidth(width - 40)
        height = words + self.buttons.sizeHint().height() + 40
        self.resize(width, min(height, screen.height() - 48))

    def tell(self, message: str) -> None:
        self.message.setText(message)
        self._fit()  # room for the wrapped message
        self.message.setFocus()
        self.scroll.ensureWidgetVisible(self.message)
        from PySide6.QtGui import QAccessible, QAccessibleAnnouncementEvent

        event = QAccessibleAnnouncementEvent(self.message, message)
        QAccessible.updateAccessibility(event)

    def _cancel_or_close(self) -> None:
        if self._busy:
            self._cancel.set()
            self.message.setText(_("Cancelling..."))
        else:
            self.reject()

    def reject(self) -> None:  # Escape: cancel a running download first
        if self._busy:
            self._cancel_or_close()
        else:
            super().reject()
