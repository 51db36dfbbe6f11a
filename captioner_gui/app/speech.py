"""Our own voice: a thread of its own with a queue, which writes each utterance to a sound file and plays it with
a player it can stop, so that a new description cuts off the one being spoken and Escape silences it.

The sound comes from pyttsx3 (SAPI5 on Windows, NSSpeechSynthesizer on macOS), whose engine lives in this one
thread. On Linux it comes from the espeak-ng program itself: pyttsx3's espeak driver synthesizes asynchronously
behind a queue of its own, and in our measurements it lost settings and utterances (a rate change ignored in 1 of 2
rounds, an utterance never written after a stop); one espeak-ng process per utterance has none of that state.
pyttsx3 stays the fallback there when only the espeak library is installed.
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
import time
import wave
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from captioner_gui.engine.errors import first_line
from captioner_gui.i18n import _
from captioner_gui.i18n import spoken_language




@dataclass(frozen=True)
class Voice:
    id: str
    name: str


# The orders the speech thread takes, one frozen dataclass each.

@dataclass(frozen=True)
class Say:
    text: str
    interrupt: bool = True  # cuts off what is being said, and drops what waits
    language: str = ""  # a language the text is in, when its voice should be one of that language


@dataclass(frozen=True)
class Stop:
    """Silence now."""


@dataclass(frozen=True)
class Configure:
    voice: str  # a voice id of the engine; empty: its default
    rate: int  # words per minute
    volume: float  # 0..1


@dataclass(frozen=True)
class ListVoices:
    answer: list[Voice]  # filled by the speech thread, which then sets `done`
    done: threading.Event


@dataclass(frozen=True)
class Quit:
    """Stop the speech thread."""


Order = Say | Stop | Configure | ListVoices | Quit


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
            import winsound

            winsound.PlaySound(str(path), winsound.SND_FILENAME | winsound.SND_ASYNC)
            self._until = time.monotonic() + _duration(path)
        elif self.command:
            self._process = subprocess.Popen([*self.command, str(path)], stdout=subprocess.DEVNULL,
                                             stderr=subprocess.DEVNULL)

    def play_itself(self, command: list[str]) -> None:
        """Runs a program that makes the sound itself (espeak-ng without -w), stoppable like a player."""
        self.stop()
        self._process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def failure(self) -> str | None:
        """After `play_itself` ended by itself: why no sound came out, or None when it played."""
        process = self._process
        if process is None or process.poll() is None:
            return None
        errors = process.stderr.read().decode(errors="replace") if process.stderr else ""
        if process.returncode == 0 and not any(line.startswith("error") for line in errors.splitlines()):
            return None
        return errors.strip().splitlines()[-1] if errors.strip() else f"exit status {process.returncode}"

    def playing(self) -> bool:
        if sys.platform == "win32" and not self.command:
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
        if self._process is not None and self._process.stderr is not None:
            self._process.stderr.close()
        self._process = None


class EspeakProgram:
    """espeak-ng (or espeak) run once per utterance: `-w` writes a WAV file."""

    def __init__(self, program: str):
        self.program = program

    VOICES = {"zh": "cmn"}  # a language -> espeak-ng's voice for it (Mandarin)

    def voice_for(self, language: str) -> str | None:
        return self.VOICES.get(language, language or None)

    def speak_command(self, text: str, voice: str, rate: int, volume: float) -> list[str]:
        """espeak-ng playing the text through its own sound output (for machines without a sound player)."""
        command = [self.program, "-s", str(int(rate)), "-a", str(int(round(volume * 100)))]
        return [*command, *(["-v", voice] if voice else []), "--", text]

    def write(self, text: str, path: Path, voice: str, rate: int, volume: float) -> bool:
        command = [self.program, "-w", str(path), "-s", str(int(rate)), "-a", str(int(round(volume * 100)))]
        if voice:
            command += ["-v", voice]
        done = subprocess.run([*command, "--", text], capture_output=True, text=True, timeout=60)
        if done.returncode != 0 and voice:  # a voice that is gone: the default one rather than silence
            done = subprocess.run([*command[:-2], "--", text], capture_output=True, text=True, timeout=60)
        return done.returncode == 0 and _wait_for_sound(path, timeout=1)

    def voices(self) -> list[Voice]:
        listing = subprocess.run([self.program, "--voices"], capture_output=True, text=True, timeout=30).stdout
        voices = []
        for line in listing.splitlines()[1:]:  # Pty Language Age/Gender VoiceName File Other-languages
            columns = line.split()
            if len(columns) >= 5:
                voices.append(Voice(columns[4], f"{columns[3].replace('_', ' ')} ({columns[1]})"))
        return voices


class Pyttsx3Engine:
    """pyttsx3's engine for the platform, one per process and never released (its drivers keep process-wide
    state), used only from the speech thread."""

    _engine = None

    def __init__(self):
        if Pyttsx3Engine._engine is None:
            import pyttsx3

            Pyttsx3Engine._engine = pyttsx3.init()
        self.engine = Pyttsx3Engine._engine

    def write(self, text: str, path: Path, voice: str, rate: int, volume: float) -> bool:
        engine = self.engine
        try:
            if voice:
                engine.setProperty("voice", voice)
            engine.setProperty("rate", int(rate))
            engine.setProperty("volume", max(0.0, min(1.0, float(volume))))
        except (ValueError, KeyError, RuntimeError):
            pass  # a voice that is gone: the engine keeps its current one
        with contextlib.redirect_stdout(io.StringIO()):  # pyttsx3's espeak driver prints "Audio saved to"
            engine.save_to_file(text, str(path))
            engine.runAndWait()
        # Some drivers write the file after runAndWait returns: wait for it, so that utterances stay in order.
        return _wait_for_sound(path, timeout=20)

    def voices(self) -> list[Voice]:
        return [Voice(v.id, v.name) for v in self.engine.getProperty("voices")]

    def voice_for(self, language: str) -> str | None:
        """The first system voice that speaks `language` ("zh": zh_CN, zh-TW, ...), if any."""
        for voice in self.engine.getProperty("voices"):
            for spoken in getattr(voice, "languages", None) or []:
                name = spoken.decode(errors="ignore") if isinstance(spoken, bytes) else str(spoken)
                if name.lstrip("\x05").lower().replace("_", "-").startswith(language):
                    return voice.id
        return None


def make_synthesizer():
    if sys.platform.startswith("linux"):
        program = shutil.which("espeak-ng") or shutil.which("espeak")
        if program:
            return EspeakProgram(program)
    return Pyttsx3Engine()


def _wait_for_sound(path: Path, timeout: float) -> bool:
    """Waits until `path` is a complete sound file (a WAV's header counts its frames only once they are written;
    other formats: the file exists)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.is_file():
            if path.suffix.lower() != ".wav":
                return True
            try:
                with wave.open(str(path)) as sound:
                    if sound.getnframes() > 0:
                        return True
            except (OSError, EOFError, wave.Error):
                pass
        time.sleep(0.01)
    return False


def _duration(path: Path) -> float:
    try:
        with wave.open(str(path)) as sound:
            return sound.getnframes() / sound.getframerate()
    except (OSError, wave.Error, ZeroDivisionError):
        return 0.0


class Speaker:
    """Say things in order, or interrupting; every call returns at once.

    `record_dir`: each utterance's sound file is also kept there, numbered (CAPTIONER_SPEECH_DIR sets it in the
    app), which is how the tests listen; otherwise a sound file is deleted once played. `on_error` gets a one-line
    message once if speech cannot work at all."""

    def __init__(self, record_dir: Path | None = None, on_error: Callable[[str], None] = lambda message: None):
        self.record_dir = Path(record_dir) if record_dir else None
        self.on_error = on_error
        self.spoken = 0  # utterances written so far
        self.settings: tuple[str, int, float] = ("", 180, 1.0)  # voice id, words per minute, volume 0..1
        self.available = True
        self._told_silent = False  # "no sound can be played" was said (once is enough)
        self.on_sound: Callable[[str], None] | None = None  # told each utterance as its sound starts (the latency
        # benchmark listens here), in the speech thread
        self._orders: queue.Queue[Order] = queue.Queue()
        self._unfinished = 0  # utterances asked for and not yet played, stopped or dropped
        self._quiet = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="speech", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ any thread

    def say(self, text: str, interrupt: bool = True, language: str = "") -> None:
        """`language`: the text's own language ("zh"), said with a voice of that language where there is one."""
        text = speakable(text)
        if text.strip():
            with self._quiet:
                self._unfinished += 1
            self._orders.put(Say(text, interrupt, language))

    def stop(self) -> None:
        self._orders.put(Stop())

    def configure(self, voice: str = "", rate: int = 180, volume: float = 1.0) -> None:
        self._orders.put(Configure(voice, rate, volume))

    def voices(self, timeout: float = 10.0) -> list[Voice]:
        """The engine's voices (asked in the speech thread, where the engine lives)."""
        answer: list[Voice] = []
        done = threading.Event()
        self._orders.put(ListVoices(answer, done))
        done.wait(timeout)
        return answer

    def wait_until_quiet(self, timeout: float = 30.0) -> bool:
        """Waits until everything said so far was written and played (or stopped)."""
        with self._quiet:
            return self._quiet.wait_for(lambda: self._unfinished == 0, timeout)

    def close(self) -> None:
        self._orders.put(Quit())
        self._thread.join(5)

    # ------------------------------------------------------------------ the speech thread

    def _run(self) -> None:
        synthesizer, player = None, Player()
        pending: deque[Order] = deque()
        scratch = Path(tempfile.mkdtemp(prefix="captioner-speech-"))
        try:
            while True:
                if not pending:
                    self._take(self._orders.get(), pending)
                self._drain(pending)
                order = pending.popleft()
                if not isinstance(order, (Quit, Stop)):
                    synthesizer = synthesizer or self._start_synthesizer()  # None where speech cannot work
                match order:
                    case Quit():
                        break
                    case Stop():
                        player.stop()
                    case ListVoices(answer, done):
                        if synthesizer is not None:
                            answer.extend(synthesizer.voices())
                        done.set()
                    case Configure(voice, rate, volume):
                        if synthesizer is not None:
                            self.settings = (voice, rate, volume)
                    case Say(text, _, language):
                        try:
                            if synthesizer is not None:
                                self._say(synthesizer, text, language, scratch, player, pending)
                        finally:
                            self._finished(1)
        finally:
            player.stop()
            shutil.rmtree(scratch, ignore_errors=True)
            self._finished(sum(isinstance(o, Say) for o in pending))

    def _say(self, synthesizer, text: str, language: str, scratch: Path, player: Player, pending: deque) -> None:
        if player.command is None and sys.platform.startswith("linux"):
            self._say_without_player(synthesizer, text, scratch, player, pending, language)
            return
        sound = self._synthesize(synthesizer, text, scratch, language)
        if sound is not None:
            try:
                player.play(sound)
                self._sounding(text)
                self._wait_while_playing(player, pending)
            finally:
                sound.unlink(missing_ok=True)  # played (or cut off): no spoken words left on disk

    def _say_without_player(self, synthesizer, text: str, scratch: Path, player: Player, pending: deque,
                            language: str = "") -> None:
        """Linux without paplay, pw-play or aplay: espeak-ng plays the words itself. When that cannot make a sound
        either, the user hears of it once (on_error), instead of silence with no reason given."""
        if self.record_dir is not None:  # the copy for tests and troubleshooting is still written
            sound = self._synthesize(synthesizer, text, scratch, language)
            if sound is not None:
                sound.unlink(missing_ok=True)
        if not isinstance(synthesizer, EspeakProgram):
            self._tell_silent(_("no sound player was found"))
            return
        player.play_itself(synthesizer.speak_command(text, *self._voice_settings(synthesizer, language)))
        self._sounding(text)
        self._wait_while_playing(player, pending, stop_after=False)
        failure = player.failure()
        player.stop()
        if failure is not None:
            self._tell_silent(_("no sound player was found and espeak-ng could not play ({problem})").format(
                problem=failure))

    def _sounding(self, text: str) -> None:
        if self.on_sound is not None:
            self.on_sound(text)

    def _tell_silent(self, reason: str) -> None:
        if not self._told_silent:
            self._told_silent = True
            self.on_error(_("Speech cannot be heard: {reason}. Install pulseaudio-utils or alsa-utils, or set "
                            "CAPTIONER_PLAYER.").format(reason=reason))

    def _finished(self, count: int) -> None:
        with self._quiet:
            self._unfinished = max(0, self._unfinished - count)
            self._quiet.notify_all()

    def _take(self, order: Order, pending: deque) -> None:
        """Queues an order; one that interrupts (a new description, stop, quit) drops the speech waiting."""
        if _interrupts(order):
            dropped = [o for o in pending if isinstance(o, Say)]
            kept = [o for o in pending if not isinstance(o, Say)]
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

    def _wait_while_playing(self, player: Player, pending: deque, stop_after: bool = True) -> None:
        while player.playing():
            try:
                order = self._orders.get(timeout=0.05)
            except queue.Empty:
                continue
            self._take(order, pending)
            if _interrupts(order):
                player.stop()
                break
        if stop_after:
            player.stop()

    def _start_synthesizer(self):
        if not self.available:
            return None
        try:
            return make_synthesizer()
        except Exception as exc:
            self.available = False
            if sys.platform.startswith("linux"):
                self.on_error(_("Speech is not available ({problem}). Install espeak-ng.").format(
                    problem=first_line(exc)))
            else:
                self.on_error(_("Speech is not available ({problem}).").format(problem=first_line(exc)))
            return None

    def _voice_settings(self, synthesizer, language: str) -> tuple[str, int, float]:
        """The user's voice, rate and volume. The user's voice speaks the app's language; where none was chosen,
        a voice of the app's language speaks it (espeak-ng's Mandarin for Chinese). Text in another language (the
        OCR's, a caption's) gets a voice of its own language where the engine has one."""
        voice, rate, volume = self.settings
        ours = spoken_language()
        if language and language != ours:
            voice = synthesizer.voice_for(language) or voice
        elif not voice and ours != "en":
            voice = synthesizer.voice_for(ours) or voice
        return voice, rate, volume

    def _synthesize(self, synthesizer, text: str, scratch: Path, language: str = "") -> Path | None:
        path = scratch / f"{self.spoken % 4}.wav"
        path.unlink(missing_ok=True)
        try:
            written = synthesizer.write(text, path, *self._voice_settings(synthesizer, language))
        except Exception as exc:
            path.unlink(missing_ok=True)
            self.on_error(_("Speech failed: {problem}").format(problem=first_line(exc)))
            return None
        if not written:
            path.unlink(missing_ok=True)
            self.on_error(_("Speech failed: the text-to-speech engine wrote no sound."))
            return None
        self.spoken += 1
        if self.record_dir is not None:
            self.record_dir.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, self.record_dir / f"{self.spoken:03d}.wav")
        return path


def speakable(text: str) -> str:
    """The text without control characters and undecodable bytes (U+FFFD), on which espeak stops short."""
    return "".join(c if c.isprintable() and c != "\ufffd" else " " for c in text)


def _interrupts(order: Order) -> bool:
    match order:
        case Stop() | Quit():
            return True
        case Say(interrupt=interrupt):
            return interrupt
    return False


def recording_dir() -> Path | None:
    """Where the app keeps a copy of each utterance, if anywhere (CAPTIONER_SPEECH_DIR)."""
    value = os.environ.get("CAPTIONER_SPEECH_DIR")
    return Path(value) if value else None


class SpeechRoute:
    """Where the app's words go: the user's screen reader where one runs and the settings ask for it, else our own
    voice. The one home of that choice, for the window and for `captioner describe-screen`. The screen reader is
    looked up at most every few seconds: a user may start or quit one."""

    def __init__(self, speaker: Speaker, settings):
        self.speaker, self.settings = speaker, settings
        self._reader_cache: tuple[float, object] = (-1e9, None)

    def screen_reader(self):
        from . import screen_reader

        checked, reader = self._reader_cache
        if time.monotonic() - checked > 5:
            reader = screen_reader.detect()
            self._reader_cache = (time.monotonic(), reader)
        return reader

    def say(self, text: str | list[tuple[str, str]], interrupt: bool = True,
            reader_hears_window: bool = False) -> None:
        """Says `text`, unless speech is off: words, or (words, language) parts, each said by our voice in its own
        language. `interrupt`: cuts off what is being said; else it is said after that. `reader_hears_window`: our
        window has the focus and announced the words, so they already reach the screen reader, which must not be
        told twice."""
        if not self.settings.speech:
            return
        parts = [(text, "")] if isinstance(text, str) else text
        reader = self.screen_reader() if self.settings.use_screen_reader else None
        if reader is not None:
            if not reader_hears_window:
                reader.speak_parts(parts, interrupt)
            return
        for index, (words, language) in enumerate(parts):
            self.speaker.say(words, interrupt and index == 0, language)

    def stop(self) -> None:
        self.speaker.stop()
        reader = self.screen_reader() if self.settings.use_screen_reader else None
        if reader is not None:
            reader.stop()
