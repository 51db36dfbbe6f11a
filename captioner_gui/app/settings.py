"""The user's settings, kept with QSettings (the platform's usual place: the registry, a plist or an .ini file)."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from dataclasses import dataclass, field, fields
from typing import Any

from PySide6.QtCore import QSettings

from captioner_gui import i18n
from captioner_gui.i18n import _
from captioner_gui.engine.options import DEVICES, DecodeOptions, Target

VERSION = 1  # the layout of what is kept; a later layout says here how to read an older one
DECODINGS = ("beam", "greedy")
THEMES = ("system", "standard", "high_contrast")
# Ctrl+Alt+Shift+letter: free in NVDA, JAWS, Narrator and the common applications.
DEFAULT_HOTKEYS = {Target.SCREEN: "Ctrl+Alt+Shift+S", Target.WINDOW: "Ctrl+Alt+Shift+W",
                   Target.REGION: "Ctrl+Alt+Shift+R", Target.CLIPBOARD: "Ctrl+Alt+Shift+V",
                   Target.TEXT: "Ctrl+Alt+Shift+T"}


def ranged(default: int, low: int, high: int) -> Any:
    """A whole number kept between `low` and `high`."""
    return field(default=default, metadata={"range": (low, high)})


def one_of(default: str, choices: tuple[str, ...]) -> Any:
    """One of `choices`; anything else falls back to the default."""
    return field(default=default, metadata={"choices": choices})


def a_language() -> Any:
    """A language there is a translation for (its code, as i18n.available() lists them), or "": the system's. A
    language whose translation is gone falls back to the system's."""
    return field(default="", metadata={"choices_from": lambda: ("", *i18n.available())})


@dataclass
class Settings:
    model: str = field(default="coco", metadata={"not_blank": True})  # a model name, a model folder or a manifest
    decoding: str = one_of("beam", DECODINGS)
    beam_size: int = ranged(5, 1, 20)
    rerank: bool = False  # among beam search's captions, say the one CLIP finds closest to the picture
    device: str = one_of("auto", DEVICES)
    speech: bool = True
    voice: str = ""  # a voice id of the text-to-speech engine; empty: its default
    rate: int = ranged(180, 80, 450)  # words per minute
    volume: int = ranged(100, 0, 100)  # percent
    use_screen_reader: bool = True  # send descriptions to a running screen reader instead of our own voice
    auto_copy: bool = False
    history: bool = True
    history_limit: int = ranged(1000, 10, 100_000)  # descriptions kept on disk; the oldest are dropped first
    keep_screen_pictures: bool = False  # thumbnails of screen captures (they can show mail, banking, passwords)
    keep_screen_text: bool = False  # the lines read from the screen; off: its summary and pictures' captions only
    all_monitors: bool = False  # "describe the screen" takes every monitor, not only the one with the pointer
    # The key of each action; kept as "hotkey_screen", "hotkey_window", ... (an empty key: no hotkey).
    hotkeys: dict[Target, str] = field(default_factory=lambda: dict(DEFAULT_HOTKEYS))
    theme: str = one_of("system", THEMES)  # system (high contrast when the system asks for it), standard, high_contrast
    text_size: int = ranged(100, 70, 300)  # percent of the system's font size (Ctrl+Plus, Ctrl+Minus, Ctrl+0)
    language: str = a_language()  # the app's words: "" the system's, else a code ("en", "zh_CN"); read at start-up

    @staticmethod
    def range_of(name: str) -> tuple[int, int]:
        """The lowest and highest value of a whole-number setting (for the dialog's spin boxes)."""
        return next(f.metadata["range"] for f in fields(Settings) if f.name == name)

    def decode_options(self) -> DecodeOptions:
        return DecodeOptions(method=self.decoding, beam_size=self.beam_size, rerank=self.rerank)

    @classmethod
    def load(cls, store: QSettings | None = None) -> Settings:
        """Reads what was saved; a value of the wrong type or out of range falls back to its default. Files of
        every version so far have the same layout; keys this version does not know are left as they are."""
        own_store = store is None
        store = store or QSettings()
        settings = cls()
        for f in fields(cls):
            if f.name == "hotkeys":
                settings.hotkeys = {action: _read(store, f"hotkey_{action}", default)
                                    for action, default in DEFAULT_HOTKEYS.items()}
            else:
                setattr(settings, f.name, _read(store, f.name, getattr(settings, f.name)))
        settings._clamp()
        if os.path.islink(store.fileName()):
            if own_store:
                _keep_away_from_link(store)
        else:
            _make_private(store.fileName())  # a file written by an older version, or by Qt itself, may be readable
        return settings

    def save(self, store: QSettings | None = None) -> None:
        store = store or QSettings()
        self._clamp()
        store.setValue("version", VERSION)
        for f in fields(self):
            if f.name == "hotkeys":
                for action, key in self.hotkeys.items():
                    store.setValue(f"hotkey_{action}", key)
            else:
                store.setValue(f.name, getattr(self, f.name))
        store.sync()
        if not os.path.islink(store.fileName()):
            _make_private(store.fileName())

    def _clamp(self) -> None:
        """Each value back inside the bounds its field declares."""
        for f in fields(self):
            value = getattr(self, f.name)
            if "range" in f.metadata:
                low, high = f.metadata["range"]
                setattr(self, f.name, min(max(value, low), high))
            elif "choices" in f.metadata and value not in f.metadata["choices"]:
                setattr(self, f.name, f.default)
            elif "choices_from" in f.metadata and value not in f.metadata["choices_from"]():
                setattr(self, f.name, f.default)
            elif f.metadata.get("not_blank") and not value.strip():
                setattr(self, f.name, f.default)
        self.hotkeys = {action: self.hotkeys.get(action, default) for action, default in DEFAULT_HOTKEYS.items()}


def _read(store: QSettings, key: str, default):
    """A stored value as the default's type, or the default."""
    value = store.value(key, default)
    try:
        if isinstance(default, bool):  # QSettings' .ini files give back "true"/"false" strings
            return value if isinstance(value, bool) else str(value).lower() in ("true", "1", "yes")
        return type(default)(value)
    except (TypeError, ValueError):
        return default


LINKED: list[str] = []  # the settings file, where it is a link (Settings.load reads it; nothing is written to it)


def _keep_away_from_link(store: QSettings) -> None:
    """The settings file is a link to another file: Qt would write through it (and we would make that file
    private). From here on, this run's settings are kept in a folder of its own, deleted at exit; what was read
    stays in use. Said once (linked_settings_problem)."""
    if LINKED:
        return
    LINKED.append(store.fileName())
    folder = tempfile.mkdtemp(prefix="captioner-settings-")
    atexit.register(shutil.rmtree, folder, True)
    QSettings.setPath(store.format(), QSettings.Scope.UserScope, folder)
    kept = QSettings()
    for key in store.allKeys():  # what was read stays in use (the window's size too)
        kept.setValue(key, store.value(key))
    kept.sync()


def linked_settings_problem() -> str | None:
    """What to say where the settings file is a link (once, at start)."""
    if not LINKED:
        return None
    return _("{path} is a link to somewhere else: the settings were read from it, but are not written to it, nor is "
             "it made private. Changes last until Captioner quits; replace the link with a file to keep them.").format(
                 path=LINKED[0])


def _make_private(path: str) -> None:
    """The settings file (where it is a file, not the registry) readable by the user only."""
    if os.path.isfile(path):
        try:
            os.chmod(path, 0o600)
        except OSError:
            pass  # a file of another owner: nothing we may change
