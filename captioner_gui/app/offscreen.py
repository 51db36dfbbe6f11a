"""The app's own window and worker on Qt's offscreen platform, with settings and history in a temporary folder (the
user's are not touched): what `captioner benchmark --soak` and `--latency` drive."""

from __future__ import annotations

import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class OffscreenApp:
    application: object  # QApplication
    window: object  # MainWindow, with its model loaded
    folder: Path  # scratch space that lives as long as the app
    answers: list = field(default_factory=list)  # every Answer the worker sent
    failures: list = field(default_factory=list)  # why the model could not load

    def wait_for(self, condition: Callable[[], bool], timeout: float = 600) -> None:
        """Runs the event loop until `condition` holds (or the model failed to load)."""
        from PySide6.QtCore import QEventLoop

        from captioner_gui.engine import CaptionerError

        deadline = time.monotonic() + timeout
        while not condition() and not self.failures:
            if time.monotonic() > deadline:
                raise CaptionerError(f"The app did not answer within {timeout:.0f} s.")
            self.application.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 50)
            time.sleep(0.002)


@contextmanager
def offscreen_app(model: str, models_dir: Path | None, speaker, report: Callable[[str], None] = lambda m: None,
                  **settings) -> Iterator[OffscreenApp]:
    """The window with `model` loaded, speaking through `speaker`; `settings` override the defaults."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import QCoreApplication, QSettings
    from PySide6.QtWidgets import QApplication

    from captioner_gui.engine import CaptionerError

    from .history import History
    from .settings import Settings
    from .window import MainWindow
    from .worker import CaptionWorker

    with tempfile.TemporaryDirectory(prefix="captioner-offscreen-") as scratch:
        folder = Path(scratch)
        QCoreApplication.setOrganizationName("captioner-offscreen")
        QCoreApplication.setApplicationName("captioner-offscreen")
        QSettings.setDefaultFormat(QSettings.Format.IniFormat)
        QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, str(folder / "settings"))
        application = QApplication.instance() or QApplication([sys.argv[0]])
        worker = CaptionWorker()
        window = MainWindow(Settings(model=model, **settings), worker, speaker, History(folder / "data"),
                            models_dir)
        running = OffscreenApp(application, window, folder)
        worker.described.connect(running.answers.append)
        worker.load_failed.connect(lambda message, missing: running.failures.append(message))
        worker.start()
        try:
            window.load_model()
            report("Loading the model...")
            running.wait_for(lambda: window.model_ready)
            if running.failures:
                raise CaptionerError(running.failures[0])
            yield running
        finally:
            worker.stop()
            speaker.close()
            window.close()
