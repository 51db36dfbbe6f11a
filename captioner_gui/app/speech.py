"""Our own voice: pyttsx3 in a thread of its own, fed by a queue.

pyttsx3's engine must stay in one thread, and a second `runAndWait()` that plays aloud is known to hang or stay
silent; its espeak driver also plays through a blocking `aplay` that nothing can interrupt. So this thread asks
pyttsx3 only to write each utterance to a sound file, and plays the file with a player it can stop: a new
description cuts off the one being spoken, and Escape silences it.
"""

from __future__ import annotations

import contextlib
import io
import os
import queue
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
import wave
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Callable


@dataclass(frozen=True)
class Voice:
    id: str
    name: str


@dataclass(frozen=True)
class _Order:
    kind: str  # say, stop, configure, voices, quit
    text: str = ""
    interrupt: bool = True
    settings: tuple = ()  # (voice id, words per minute, volume 0..1)
    reply: object = None  # a list and an Event, for "voices"


class Player:
    """Plays a sound file in the background and can stop it: a child process, or winsound on Windows."""

    def __init__(self):
        self._process: subprocess.Popen | None = None
        self._until = 0.0
        self.command = self._find_command()

    @staticmethod
    def _find_command() -> list[str] | None:
        """CAPTIONER_PLAYER (a command that plays a WAV file named after it), else the platform's player."""
        if os.environ.get("CAPTIONER_PLAYER"):
            return shlex.split(os.environ["CAPTIONER_PLAYER"])
        if sys.platform == "win32":
            return None
        if sys.platform == "darwin":
            return ["afplay"]
        for candidate in (["paplay"], ["pw-play"], ["aplay", "-q"]):
            if shutil.which(candidate[0]):
                return candidate
        return None

    def play(self, path: Path) -> None:
        self.stop()
        if sys.platform == "win32" and not self.command:
            import time
            import winsound

            winsound.PlaySound(str(path), winsound.SND_FILENAME | winsound.SND_ASYNC)
            self._until = time.monotonic() + _duration(path)
        elif self.command:
            self._process = subprocess.Popen([*self.command, str(path)], stdout=subprocess.DEVNULL,
                                             stderr=subprocess.DEVNULL)

    def playing(self) -> bool:
        if sys.platform == "win32" and not self.command:
            import time

            return time.monotonic() < self._until
        return self._process is not None and self._process.poll() is None

    def stop(self) -> None:
        if sys.platform == "win32" and not self.command:
            import winsound

            winsound.PlaySound(None, winsound.SND_PURGE)
            self._until = 0.0
        elif self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.wait()
        self._process = None


def _duration(path: Path) -> float:
    try:
        with wave.open(str(path)) as sound:
            return sound.getnframes() / sound.getframerate()
    except (OSError, wave.Error, ZeroDivisionError):
        return 0.0


class Speaker:
    """Say things in order, or interrupting; every call returns at once.

    `record_dir`: each utterance's sound file is also kept there, numbered (CAPTIONER_SPEECH_DIR sets it in the
    app), which is how the tests listen. `on_error` gets a one-line message once if speech cannot work at all."""

    def __init__(self, record_dir: Path | None = None, on_error: Callable[[str], None] = lambda message: None):
        self.record_dir = Path(record_dir) if record_dir else None
        self.on_error = on_error
        self.spoken = 0  # utterances written so far
        self.available = True
        self._orders: queue.Queue[_Order] = queue.Queue()
        self._unfinished = 0  # utterances asked for and not yet played, stopped or dropped
        self._quiet = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="speech", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ any thread

    def say(self, text: str, interrupt: bool = True) -> None:
        text = speakable(text)
        if text.strip():
            with self._quiet:
                self._unfinished += 1
            self._orders.put(_Order("say", text, interrupt))

    def stop(self) -> None:
        self._orders.put(_Order("stop"))

    def configure(self, voice: str = "", rate: int = 180, volume: float = 1.0) -> None:
        self._orders.put(_Order("configure", settings=(voice, rate, volume)))

    def voices(self, timeout: float = 10.0) -> list[Voice]:
        """The engine's voices (asked in the speech thread, where the engine lives)."""
        answer: list[Voice] = []
        done = threading.Event()
        self._orders.put(_Order("voices", reply=(answer, done)))
        done.wait(timeout)
        return answer

    def wait_until_quiet(self, timeout: float = 30.0) -> bool:
        """Waits until everything said so far was written and played (or stopped)."""
        with self._quiet:
            return self._quiet.wait_for(lambda: self._unfinished == 0, timeout)

    def close(self) -> None:
        self._orders.put(_Order("quit"))
        self._thread.join(5)

    # ------------------------------------------------------------------ the speech thread

    def _run(self) -> None:
        engine, player = None, Player()
        pending: deque[_Order] = deque()
        scratch = Path(tempfile.mkdtemp(prefix="captioner-speech-"))
        try:
            while True:
                if not pending:
                    self._take(self._orders.get(), pending)
                self._drain(pending)
                order = pending.popleft()
                if order.kind == "quit":
                    break
                if order.kind == "stop":
                    player.stop()
                    continue
                engine = engine or self._start_engine()
                if engine is None:
                    if order.kind == "voices":
                        order.reply[1].set()
                    if order.kind == "say":
                        self._finished(1)
                    continue
                if order.kind == "configure":
                    self._apply(engine, *order.settings)
                elif order.kind == "voices":
                    order.reply[0].extend(Voice(v.id, v.name) for v in engine.getProperty("voices"))
                    order.reply[1].set()
                elif order.kind == "say":
                    sound = self._synthesize(engine, order.text, scratch)
                    if sound is not None:
                        player.play(sound)
                        self._wait_while_playing(player, pending)
                if order.kind == "say":
                    self._finished(1)
        finally:
            player.stop()
            shutil.rmtree(scratch, ignore_errors=True)
            self._finished(sum(o.kind == "say" for o in pending))

    def _finished(self, count: int) -> None:
        with self._quiet:
            self._unfinished = max(0, self._unfinished - count)
            self._quiet.notify_all()

    def _take(self, order: _Order, pending: deque) -> None:
        """Queues an order; one that interrupts (a new description, stop, quit) drops the speech waiting."""
        if _interrupts(order):
            dropped = [o for o in pending if o.kind == "say"]
            kept = [o for o in pending if o.kind != "say"]
            pending.clear()
            pending.extend(kept)
            self._finished(len(dropped))
        pending.append(order)

    def _drain(self, pending: deque) -> None:
        while True:
            try:
                self._take(self._orders.get_nowait(), pending)
            except queue.Empty:
                return

    def _wait_while_playing(self, player: Player, pending: deque) -> None:
        while player.playing():
            try:
                order = self._orders.get(timeout=0.05)
            except queue.Empty:
                continue
            self._take(order, pending)
            if _interrupts(order):
                break
        player.stop()

    def _start_engine(self):
        if not self.available:
            return None
        try:
            import pyttsx3

            return pyttsx3.init()
        except Exception as exc:
            self.available = False
            hint = " Install espeak-ng." if sys.platform.startswith("linux") else ""
            self.on_error(f"Speech is not available ({str(exc).splitlines()[0] if str(exc) else exc!r}).{hint}")
            return None

    @staticmethod
    def _apply(engine, voice: str, rate: int, volume: float) -> None:
        try:
            if voice:
                engine.setProperty("voice", voice)
            engine.setProperty("rate", int(rate))
            engine.setProperty("volume", max(0.0, min(1.0, float(volume))))
        except (ValueError, KeyError, RuntimeError):
            pass  # a voice that is gone: the engine keeps its current one

    def _synthesize(self, engine, text: str, scratch: Path) -> Path | None:
        path = scratch / f"{self.spoken % 4}.wav"
        path.unlink(missing_ok=True)
        try:
            with contextlib.redirect_stdout(io.StringIO()):  # pyttsx3's espeak driver prints "Audio saved to"
                engine.save_to_file(text, str(path))
                engine.runAndWait()
                if not path.is_file():
                    # pyttsx3 can leave the first order of a fresh engine queued until the next loop: run it.
                    engine.runAndWait()
        except Exception as exc:
            self.on_error(f"Speech failed: {str(exc).splitlines()[0] if str(exc) else exc!r}")
            return None
        if not path.is_file():
            return None
        self.spoken += 1
        if self.record_dir is not None:
            self.record_dir.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, self.record_dir / f"{self.spoken:03d}.wav")
        return path


def speakable(text: str) -> str:
    """The text without control characters and undecodable bytes (U+FFFD), on which espeak stops short."""
    return "".join(c if c.isprintable() and c != "\ufffd" else " " for c in text)


def _interrupts(order: _Order) -> bool:
    return order.kind in ("stop", "quit") or (order.kind == "say" and order.interrupt)


def recording_dir() -> Path | None:
    """Where the app keeps a copy of each utterance, if anywhere (CAPTIONER_SPEECH_DIR)."""
    value = os.environ.get("CAPTIONER_SPEECH_DIR")
    return Path(value) if value else None
