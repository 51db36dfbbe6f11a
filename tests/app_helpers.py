"""Helpers for the app's tests: a window on a tiny model, with its settings, history and speech in a test folder."""

from __future__ import annotations

import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass
class AppUnderTest:
    window: object
    worker: object
    speaker: object
    history: object
    speech_dir: Path
    answers: list  # every description the worker sent, collected from the start (none can be missed)
    seen: int = 0

    def described(self, qtbot, count: int = 1, timeout: int = 60000) -> list:
        """Waits for `count` descriptions after those already returned, and returns them."""
        qtbot.waitUntil(lambda: len(self.answers) >= self.seen + count, timeout=timeout)
        new = self.answers[self.seen:self.seen + count]
        self.seen += count
        qtbot.wait(50)  # let the window's own slot run too
        return new


def start_app(qtbot, settings, history_dir: Path, speech_dir: Path, models_dir: Path | None = None,
              wait_ready: bool = True) -> AppUnderTest:
    from captioner_gui.app.history import History
    from captioner_gui.app.speech import Speaker
    from captioner_gui.app.window import MainWindow
    from captioner_gui.app.worker import CaptionWorker

    speaker = Speaker(record_dir=speech_dir)
    worker = CaptionWorker()
    answers = []
    worker.described.connect(answers.append)
    window = MainWindow(settings, worker, speaker, History(history_dir), models_dir)
    qtbot.addWidget(window)
    worker.start()
    if wait_ready:
        with qtbot.waitSignal(worker.ready, timeout=60000):
            window.load_model()
    else:
        window.load_model()
    window.show()
    return AppUnderTest(window, worker, speaker, window.history, speech_dir, answers)


def stop_app(app: AppUnderTest) -> None:
    app.worker.stop()
    app.speaker.close()
    app.window.close()


def expected_caption(model_folder: Path, image_path: Path, method: str = "beam") -> str:
    """What the engine itself says for this image file, as the app shows it (one line per line)."""
    from captioner_gui.engine import DecodeOptions, load_image, load_model
    from captioner_gui.engine.describe import Describer

    describer = Describer(load_model(str(model_folder), device="cpu"))
    description = describer.describe(load_image(image_path), str(Path(image_path).resolve()),
                                     options=DecodeOptions(method=method))
    return "\n".join(description.lines())


def loudness(path: Path) -> tuple[float, float]:
    """(seconds, root-mean-square amplitude in 16-bit units) of a WAV file."""
    with wave.open(str(path)) as sound:
        samples = np.frombuffer(sound.readframes(sound.getnframes()), dtype=np.int16).astype(np.float64)
        return sound.getnframes() / sound.getframerate(), float(np.sqrt(np.mean(samples ** 2))) if samples.size else 0.0
