"""The user's settings, kept with QSettings (the platform's usual place: the registry, a plist or an .ini file)."""

from __future__ import annotations

import os
from dataclasses import dataclass, fields

from PySide6.QtCore import QSettings

HISTORY_LIMITS = (10, 100_000)  # what "keep at most N descriptions" may be set to
DECODINGS = ("beam", "greedy")
DEVICES = ("auto", "cpu", "cuda")
THEMES = ("system", "standard", "high_contrast")
TEXT_SIZES = (70, 300)  # percent of the system's font size
# Ctrl+Alt+Shift+letter: free in NVDA, JAWS, Narrator and the common applications.
DEFAULT_HOTKEYS = {"screen": "Ctrl+Alt+Shift+S", "window": "Ctrl+Alt+Shift+W", "region": "Ctrl+Alt+Shift+R",
                   "clipboard": "Ctrl+Alt+Shift+V", "text": "Ctrl+Alt+Shift+T"}


@dataclass
class Settings:
    model: str = "coco"  # a model name in the models folder, a model folder or a manifest file
    decoding: str = "beam"
    beam_size: int = 5
    rerank: bool = False  # among beam search's captions, say the one CLIP finds closest to the picture
    device: str = "auto"
    speech: bool = True
    voice: str = ""  # a voice id of the text-to-speech engine; empty: its default
    rate: int = 180  # words per minute
    volume: int = 100  # percent
    use_screen_reader: bool = True  # send descriptions to a running screen reader instead of our own voice
    auto_copy: bool = False
    history: bool = True
    history_limit: int = 1000  # descriptions kept on disk; the oldest are dropped first
    keep_screen_pictures: bool = False  # thumbnails of screen captures (they can show mail, banking, passwords)
    all_monitors: bool = False  # "describe the screen" takes every monitor, not only the one with the pointer
    hotkey_screen: str = DEFAULT_HOTKEYS["screen"]
    hotkey_window: str = DEFAULT_HOTKEYS["window"]
    hotkey_region: str = DEFAULT_HOTKEYS["region"]
    hotkey_clipboard: str = DEFAULT_HOTKEYS["clipboard"]
    hotkey_text: str = DEFAULT_HOTKEYS["text"]  # read the text of the active window (the screen on Wayland)
    theme: str = "system"  # system (high contrast when the system asks for it), standard or high_contrast
    text_size: int = 100  # percent of the system's font size (Ctrl+Plus, Ctrl+Minus, Ctrl+0)

    @classmethod
    def load(cls, store: QSettings | None = None) -> Settings:
        """Reads what was saved; a value of the wrong type or out of range falls back to its default."""
        store = store or QSettings()
        settings = cls()
        for field in fields(cls):
            default = getattr(settings, field.name)
            value = store.value(field.name, default)
            try:
                if isinstance(default, bool):  # QSettings' .ini files give back "true"/"false" strings
                    value = value if isinstance(value, bool) else str(value).lower() in ("true", "1", "yes")
                else:
                    value = type(default)(value)
            except (TypeError, ValueError):
                value = default
            setattr(settings, field.name, value)
        settings._clamp()
        _make_private(store.fileName())  # a file written by an older version, or by Qt itself, may be readable
        return settings

    def save(self, store: QSettings | None = None) -> None:
        store = store or QSettings()
        self._clamp()
        for field in fields(self):
            store.setValue(field.name, getattr(self, field.name))
        store.sync()
        _make_private(store.fileName())

    def _clamp(self) -> None:
        defaults = Settings()
        if self.decoding not in DECODINGS:
            self.decoding = defaults.decoding
        if self.device not in DEVICES:
            self.device = defaults.device
        self.beam_size = min(max(self.beam_size, 1), 20)
        self.rate = min(max(self.rate, 80), 450)
        self.volume = min(max(self.volume, 0), 100)
        self.history_limit = min(max(self.history_limit, HISTORY_LIMITS[0]), HISTORY_LIMITS[1])
        if self.theme not in THEMES:
            self.theme = defaults.theme
        self.text_size = min(max(self.text_size, TEXT_SIZES[0]), TEXT_SIZES[1])
        if not self.model.strip():
            self.model = defaults.model

    def hotkeys(self) -> dict[str, str]:
        return {action: getattr(self, f"hotkey_{action}") for action in DEFAULT_HOTKEYS}


def _make_private(path: str) -> None:
    """The settings file (where it is a file, not the registry) readable by the user only."""
    if os.path.isfile(path):
        try:
            os.chmod(path, 0o600)
        except OSError:
            pass  # a file of another owner: nothing we may change
