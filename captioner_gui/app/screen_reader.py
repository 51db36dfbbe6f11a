"""Speaking through the user's own screen reader, where one runs, so that we never talk over it.

Windows: NVDA's controller client (nvdaControllerClient64.dll or nvdaControllerClient.dll) or Tolk (Tolk.dll,
which knows JAWS, NVDA, Narrator and others), when their libraries sit beside the app or on PATH.
Linux: Speech Dispatcher (the `speechd` module or the `spd-say` command) while Orca runs.
Elsewhere, or when none answers, the app falls back to its own voice.
"""

from __future__ import annotations

import ctypes
import shutil
import subprocess
import queue
import sys
import threading
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

from captioner_gui.i18n import spoken_language


class ScreenReader(ABC):
    name = "screen reader"

    @abstractmethod
    def speak(self, text: str, interrupt: bool = True) -> None:
        """Says the text through the screen reader: cutting off what it was saying (`interrupt`), or after it
        (a follow-up, such as the rest of a text whose first lines are being said)."""

    def speak_parts(self, parts: list[tuple[str, str]], interrupt: bool = True) -> None:
        """Says (words, language) parts in order, cutting off what it was saying or after it (`interrupt`). Where
        the screen reader's interface takes no language, the parts are said as one text in the reader's own
        voice."""
        self.speak(" ".join(words for words, _language in parts), interrupt)

    def stop(self) -> None:
        """Silences the screen reader (where its interface can)."""


class SpeechDispatcher(ScreenReader):
    """Linux: Orca speaks through Speech Dispatcher, so a message sent there takes its voice and its queue."""

    name = "Orca (Speech Dispatcher)"

    def __init__(self):
        self._client = None
        self._orders: queue.Queue[_Order | None] = queue.Queue()  # spd-say's: what to say next
        try:
            import speechd  # Debian's python3-speechd; not on PyPI

            self._client = speechd.SSIPClient("captioner")
            self._client.set_priority(speechd.Priority.TEXT)
        except Exception:
            if not shutil.which("spd-say"):
                raise OSError("Neither the speechd module nor spd-say is available.") from None

    def speak(self, text: str, interrupt: bool = True) -> None:
        self.speak_parts([(text, "")], interrupt)

    def speak_parts(self, parts: list[tuple[str, str]], interrupt: bool = True) -> None:
        """Each part with its language (Speech Dispatcher picks a voice of it); "" is the app's language. Messages
        of the "text" priority wait their turn in Speech Dispatcher's queue: a follow-up is said after what is being
        said, and only a request that interrupts cancels it first."""
        parts = [(words, language or spoken_language()) for words, language in parts if words.strip()]
        if self._client is not None:
            if interrupt:
                self._client.cancel()
            for words, language in parts:
                self._client.set_language(language)
                self._client.speak(words)
        else:
            self._send(_Order(parts, interrupt))

    def stop(self) -> None:
        if self._client is not None:
            self._client.cancel()
        else:
            self._send(None)

    def _send(self, order: _Order | None) -> None:
        """spd-say's orders go to one thread, which runs them one after another (each spd-say returns once its
        message is queued, so the parts stay in order); a newer order that interrupts drops the parts of an older
        one not yet sent, a follow-up waits for them. `None`: silence."""
        self._orders.put(order)
        if not getattr(self, "_sender", None):
            self._sender = threading.Thread(target=self._spd_say, daemon=True)
            self._sender.start()

    def _spd_say(self) -> None:
        quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, "timeout": 10, "check": False}
        while True:
            order = self._orders.get()
            try:
                if order is None or order.interrupt:
                    subprocess.run(["spd-say", "--cancel"], **quiet)
                for words, language in order.parts if order is not None else []:
                    if self._interrupted():
                        break  # cut off by a newer order
                    subprocess.run(["spd-say", "--priority", "text", "--language", language, "--", words], **quiet)
            except (OSError, subprocess.SubprocessError):
                pass  # Speech Dispatcher gone or hung: the next order tries again

    def _interrupted(self) -> bool:
        """Whether an order waiting cuts off the one being sent (silence, or a new request)."""
        with self._orders.mutex:
            return any(order is None or order.interrupt for order in self._orders.queue)


@dataclass(frozen=True)
class _Order:
    """What spd-say is to say: (words, language) parts, and whether they cut off what is being said."""

    parts: list[tuple[str, str]]
    interrupt: bool


class NvdaController(ScreenReader):
    name = "NVDA"

    def __init__(self, library):
        self._dll = library
        if self._dll.nvdaController_testIfRunning() != 0:
            raise OSError("NVDA is not running.")

    def speak(self, text: str, interrupt: bool = True) -> None:
        if interrupt:  # else NVDA queues the words after its own
            self._dll.nvdaController_cancelSpeech()
        self._dll.nvdaController_speakText(ctypes.c_wchar_p(text))
        self._dll.nvdaController_brailleMessage(ctypes.c_wchar_p(text))

    def stop(self) -> None:
        self._dll.nvdaController_cancelSpeech()


class Tolk(ScreenReader):
    def __init__(self, library):
        self._dll = library
        self._dll.Tolk_Load()
        self._dll.Tolk_DetectScreenReader.restype = ctypes.c_wchar_p
        detected = self._dll.Tolk_DetectScreenReader()
        if not detected:
            raise OSError("Tolk found no screen reader.")
        self.name = detected

    def speak(self, text: str, interrupt: bool = True) -> None:
        self._dll.Tolk_Output(ctypes.c_wchar_p(text), ctypes.c_bool(interrupt))

    def stop(self) -> None:
        self._dll.Tolk_Silence()


def orca_running() -> bool:
    """Whether a process named orca runs (Linux: /proc/*/comm)."""
    for entry in Path("/proc").glob("[0-9]*/comm"):
        try:
            if entry.read_text().strip() == "orca":
                return True
        except OSError:
            continue
    return False


def _windows_library(names: tuple[str, ...]):
    folders = [Path(sys.executable).parent, Path(__file__).resolve().parent]
    for folder in folders:
        for name in names:
            if (folder / name).is_file():
                return ctypes.WinDLL(str(folder / name))
    for name in names:
        try:
            return ctypes.WinDLL(name)  # PATH
        except OSError:
            continue
    return None


def detect() -> ScreenReader | None:
    """The screen reader to speak through now, or None (then the app uses its own voice)."""
    try:
        if sys.platform == "win32":
            nvda = _windows_library(("nvdaControllerClient64.dll", "nvdaControllerClient.dll"))
            if nvda is not None:
                try:
                    return NvdaController(nvda)
                except OSError:
                    pass
            tolk = _windows_library(("Tolk.dll",))
            return Tolk(tolk) if tolk is not None else None
        if sys.platform.startswith("linux") and orca_running():
            return SpeechDispatcher()
    except (OSError, AttributeError):
        return None
    return None
