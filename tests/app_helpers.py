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


def expected_description(model_folder: Path, image_path: Path, method: str = "beam", source: str | None = None,
                         title: str | None = None):
    """The engine's own description of this image: as a file, or as a capture (`source` "screen", "window" or
    "region") of a window with `title`."""
    from captioner_gui.engine import DecodeOptions, load_image, load_model
    from captioner_gui.engine.describe import Describer

    describer = Describer(load_model(str(model_folder), device="cpu"))
    return describer.describe(load_image(image_path), source or str(Path(image_path).resolve()), title,
                              options=DecodeOptions(method=method))


def expected_caption(model_folder: Path, image_path: Path, method: str = "beam", source: str | None = None,
                     title: str | None = None) -> str:
    """What the app shows for this image (the description, one line per line)."""
    return "\n".join(expected_description(model_folder, image_path, method, source, title).lines())


def loudness(path: Path) -> tuple[float, float]:
    """(seconds, root-mean-square amplitude in 16-bit units) of a WAV file."""
    with wave.open(str(path)) as sound:
        samples = np.frombuffer(sound.readframes(sound.getnframes()), dtype=np.int16).astype(np.float64)
        return sound.getnframes() / sound.getframerate(), float(np.sqrt(np.mean(samples ** 2))) if samples.size else 0.0


def same_description(answer: dict, expected) -> bool:
    """Whether a description that another process printed as JSON (`describe-screen --json`) is the engine's
    description of the same picture: the same kind, title, text and pictures, and the same first words. The
    caption's words themselves may differ in another process: the tiny test model's random weights leave
    near-ties between tokens that the last bits of an int8 sum can tip."""
    head = expected.spoken.split(":")[0]
    return (answer["kind"] == expected.kind and answer["title"] == expected.title and answer["text"] == expected.text
            and [p["box"] for p in answer["pictures"]] == [list(p.box) for p in expected.pictures]
            and answer["spoken"].split(":")[0] == head)
