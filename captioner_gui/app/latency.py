"""`captioner benchmark --latency`: from the hotkey's key press to the first sound, as a user feels it, with the
model loaded: for a photo that fills the screen and for a screen of text, through our own voice and through the
screen reader.

The app's real window and worker run offscreen (app/offscreen.py) and are handed the picture the hotkey would take;
the time to take it (measured where there is a screen) is added. "First sound" is the moment our voice starts to
play an utterance ("Describing..." when the answer is slower, see window.DESCRIBING_AFTER_MS), or the moment the
screen reader is handed the words (its own delay is the screen reader's; a stand-in records the hand-off).
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from .screen_reader import ScreenReader


class ScreenReaderStandIn(ScreenReader):
    """Takes the words as a screen reader would and notes when. It is a ScreenReader, so it has the real interface
    whatever that becomes: what it does not say itself, the base class says through `speak`."""

    name = "stand-in"

    def __init__(self, heard: list):
        self.heard = heard

    def speak(self, text: str, interrupt: bool = True) -> None:
        self.heard.append((time.perf_counter(), text))


def photo_screen(size=(1366, 768), seed: int = 0) -> Image.Image:
    """A photo-like picture that fills the screen: soft shapes over noise (every pixel differs, as a camera's)."""
    rng = np.random.default_rng(seed)
    picture = Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))
    picture = picture.filter(ImageFilter.GaussianBlur(2))
    draw = ImageDraw.Draw(picture)
    for _ in range(12):
        x, y = int(rng.integers(0, size[0] - 200)), int(rng.integers(0, size[1] - 200))
        draw.ellipse((x, y, x + 200, y + 160), fill=tuple(int(c) for c in rng.integers(0, 256, 3)))
    return picture.filter(ImageFilter.GaussianBlur(1))


def run_latency(model: str, models_dir: Path | None, repeats: int = 3, max_tokens: int | None = None,
                report: Callable[[str], None] = lambda message: None,
                measured: Callable[[dict, str], None] = lambda results, key: None) -> dict:
    """Medians over `repeats` key presses, in ms: the first sound, and the first sound of the answer itself.
    `max_tokens` cuts captions short (a model with random weights never ends one). `measured` gets the results so far
    and the key of the row just measured, as soon as it is."""
    from captioner_gui.benchmark import _capture_seconds, benchmark_screen
    from captioner_gui.engine.options import Target

    from .offscreen import offscreen_app
    from .speech import Speaker
    from .worker import Request

    from captioner_gui.i18n import _ as translate

    from .window import DESCRIBING

    working = translate(DESCRIBING)  # as the window says it, in the app's language
    capture = _capture_seconds() or 0.0
    pictures = {"photo": photo_screen(), "text": benchmark_screen(0)}
    player = os.environ.get("CAPTIONER_PLAYER")
    os.environ["CAPTIONER_PLAYER"] = "true"  # a player that returns at once: no sound device is needed
    heard: list[tuple[float, str]] = []
    speaker = Speaker()
    speaker.on_sound = lambda text: heard.append((time.perf_counter(), text))
    results: dict = {"capture_ms": round(capture * 1000)}
    try:
        with offscreen_app(model, models_dir, speaker, report) as app:
            window = app.window
            if max_tokens is not None:
                window.worker.set_decoding(replace(window.worker.options, max_tokens=max_tokens))
            reader = ScreenReaderStandIn(heard)
            for route in ("own_voice", "screen_reader"):
                window.settings.use_screen_reader = route == "screen_reader"
                window.voice.screen_reader = (lambda: reader) if route == "screen_reader" else (lambda: None)
                for name, picture in pictures.items():
                    first, answer = [], []
                    for _ in range(repeats + 1):  # the first press warms up
                        report(f"Pressing the key over a {name} ({route.replace('_', ' ')}) ...")
                        speaker.wait_until_quiet(30)
                        heard.clear()
                        pressed = time.perf_counter()
                        done = len(app.answers)
                        window.submit(Request(name="Screen", source=Target.SCREEN, picture=picture))
                        app.wait_for(lambda: len(app.answers) > done and not window.pending
                                     and any(text != working for _, text in heard), timeout=120)
                        first.append(heard[0][0] - pressed + capture)
                        answer.append(next(t for t, text in heard if text != working) - pressed + capture)
                        said_first = heard[0][1]
                    key = f"{name}_{route}"
                    results[key] = {"first_sound_ms": round(statistics.median(first[1:]) * 1000),
                                    "answer_ms": round(statistics.median(answer[1:]) * 1000),
                                    "first_words": said_first[:60]}
                    measured(results, key)
    finally:
        if player is None:
            os.environ.pop("CAPTIONER_PLAYER", None)
        else:
            os.environ["CAPTIONER_PLAYER"] = player
    return results


def latency_heading(capture_ms: int) -> str:
    return "\n".join([f"from the key press to the first sound (medians, ms; taking the picture: {capture_ms} ms)",
                      "| picture, route | first sound | the answer's first sound | first heard |",
                      "|---|---|---|---|"])


def latency_row(key: str, row: dict) -> str:
    return f"| {key.replace('_', ' ')} | {row['first_sound_ms']} | {row['answer_ms']} | {row['first_words']} |"
