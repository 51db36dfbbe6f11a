"""Global hotkeys that work in any program, turned into ordinary Qt signals.

X11: a key grab on the root window (python-xlib), read in a thread of its own. Windows: RegisterHotKey, with
WM_HOTKEY caught by a QAbstractNativeEventFilter. macOS: pynput's global hotkeys (a Quartz event tap, which macOS
lets run once the user allows it). Wayland allows no program to grab keys: there the desktop binds them for us
through its global shortcuts portal, where it has one; elsewhere people bind `captioner describe-screen` in their
desktop's shortcut settings (see the README).
"""

from __future__ import annotations

import sys
import threading

from PySide6.QtCore import QAbstractNativeEventFilter, QCoreApplication, QObject, Signal

from captioner_gui.engine.options import Target
from captioner_gui.i18n import N_, _

from .capture import on_wayland

MODIFIER_NAMES = {"ctrl": "control", "control": "control", "alt": "alt", "shift": "shift", "meta": "super",
                  "super": "super", "win": "super"}


def parse_hotkey(text: str) -> tuple[set[str], str]:
    """'Ctrl+Alt+Shift+S' -> ({'control', 'alt', 'shift'}, 'S'); raises ValueError for nonsense."""
    parts = [part.strip() for part in text.split("+") if part.strip()]
    if not parts:
        raise ValueError(_("empty hotkey"))
    modifiers = set()
    for part in parts[:-1]:
        if part.lower() not in MODIFIER_NAMES:
            raise ValueError(_("unknown modifier '{modifier}' in '{key}'").format(modifier=part, key=text))
        modifiers.add(MODIFIER_NAMES[part.lower()])
    if not modifiers:
        raise ValueError(_("'{key}' has no Ctrl, Alt, Shift or Meta: it would take the key from every program")
                         .format(key=text))
    return modifiers, parts[-1]


class Hotkeys(QObject):
    """Registers the hotkeys it is given; `pressed` carries the action (a Target value: "screen", ...)."""

    pressed = Signal(str)
    problem = Signal(str)  # one line for the user: a key taken by another program, no global keys here

    def __init__(self):
        super().__init__()
        self._backend = None

    def register(self, hotkeys: dict[Target, str]) -> list[str]:
        """(Re-)registers {action: "Ctrl+Alt+Shift+S", ...}; returns the problems, also sent as `problem`."""
        self.unregister()
        problems = []
        if on_wayland():
            self._backend = _PortalHotkeys(self.pressed.emit, self.problem.emit)
        elif sys.platform == "win32":
            self._backend = _WindowsHotkeys(self.pressed.emit)
        elif sys.platform.startswith("linux"):
            try:
                self._backend = _X11Hotkeys(self.pressed.emit)
            except Exception as exc:
                problems.append(_("Global hotkeys are not available ({problem}).").format(problem=exc))
        elif sys.platform == "darwin":
            try:
                self._backend = PynputHotkeys(self.pressed.emit, command_is_ctrl=True)
            except ImportError:
                problems.append(_("Global hotkeys need pynput: pip install pynput."))
        else:
            problems.append(_("Global hotkeys are not available on this system; bind 'captioner describe-screen' "
                              "to a key in the system's shortcut settings."))
        if self._backend is not None:
            for action, text in hotkeys.items():
                if not text:
                    continue
                try:
                    modifiers, key = parse_hotkey(text)
                    self._backend.grab(str(action), modifiers, key)  # a plain string for the platform
                except ValueError as exc:
                    problems.append(_("The hotkey {key} cannot be used: {problem}. Choose another in Settings.")
                                    .format(key=text, problem=exc))
                except KeyTaken:
                    problems.append(_("{key} is already used by another program. Choose another hotkey in Settings.")
                                    .format(key=text))
            problem = self._backend.start()
            if problem:
                problems.append(problem)
        for problem in problems:
            self.problem.emit(problem)
        return problems

    def unregister(self) -> None:
        if self._backend is not None:
            self._backend.close()
            self._backend = None


class KeyTaken(Exception):
    """Another program holds this key combination."""


class _X11Hotkeys:
    """Key grabs on the root window; a thread waits for the X server's KeyPress events."""

    def __init__(self, on_press):
        import Xlib.threaded  # noqa: F401 (the listening thread and the GUI thread share one connection)
        from Xlib import display as xdisplay

        self._on_press = on_press
        self._display = xdisplay.Display()
        self._root = self._display.screen().root
        self._grabs: dict[tuple[int, int], str] = {}
        self._thread: threading.Thread | None = None
        self._closing = False

    def grab(self, action: str, modifiers: set[str], key: str) -> None:
        from Xlib import X, XK
        from Xlib.error import CatchError

        masks = {"control": X.ControlMask, "alt": X.Mod1Mask, "shift": X.ShiftMask, "super": X.Mod4Mask}
        mask = 0
        for modifier in modifiers:
            mask |= masks[modifier]
        keysym = XK.string_to_keysym(key if len(key) > 1 else key.lower())
        if not keysym:
            raise ValueError(_("unknown key '{key}'").format(key=key))
        keycode = self._display.keysym_to_keycode(keysym)
        if not keycode:
            raise ValueError(_("this keyboard has no key '{key}'").format(key=key))
        # Num Lock (Mod2) and Caps Lock (Lock) must not stop the hotkey: grab with each of them too.
        catcher = CatchError()
        for extra in (0, X.Mod2Mask, X.LockMask, X.Mod2Mask | X.LockMask):
            self._root.grab_key(keycode, mask | extra, True, X.GrabModeAsync, X.GrabModeAsync, onerror=catcher)
            self._grabs[(keycode, mask | extra)] = action
        self._display.sync()
        if catcher.get_error() is not None:  # BadAccess: another client grabbed it first
            for extra in (0, X.Mod2Mask, X.LockMask, X.Mod2Mask | X.LockMask):
                self._root.ungrab_key(keycode, mask | extra)
                self._grabs.pop((keycode, mask | extra), None)
            self._display.sync()
            raise KeyTaken()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._listen, name="hotkeys", daemon=True)
        self._thread.start()

    def _listen(self) -> None:
        from Xlib import X

        while not self._closing:
            try:
                event = self._display.next_event()
            except Exception:
                return  # the display was closed
            if event.type == X.KeyPress:
                action = self._grabs.get((event.detail, event.state & 0xFF))
                if action:
                    self._on_press(action)

    def close(self) -> None:
        self._closing = True
        try:
            self._root.ungrab_key(0, 0x8000)  # AnyKey, AnyModifier: every grab of ours
            self._display.close()  # wakes the thread, whose next_event then fails
        except Exception:
            pass


class PynputHotkeys:
    """pynput's GlobalHotKeys, on a listener thread of pynput's: a Quartz event tap on macOS (where the app uses
    it), a RECORD client on X11 (where the tests run it). macOS lets the tap see keys only once the user allows
    captioner under Privacy & Security; until then `start` says so. It cannot tell whether another program uses
    the same keys: both then act."""

    # pynput's names for keys other than letters and digits, by the names Qt's key sequences give them.
    KEYS = {"space": "space", "print": "print_screen", "ins": "insert", "del": "delete", "home": "home",
            "end": "end", "pgup": "page_up", "pgdown": "page_down", "esc": "esc", "tab": "tab"}

    def __init__(self, on_press, command_is_ctrl: bool = False):
        from pynput import keyboard

        self._keyboard = keyboard
        self._on_press = on_press
        # Qt calls the Command key "Ctrl" on macOS (and the Control key "Meta"), so a key sequence means the same
        # keys in the Settings' editor and here.
        self._modifiers = {"control": "<cmd>" if command_is_ctrl else "<ctrl>", "alt": "<alt>", "shift": "<shift>",
                           "super": "<ctrl>" if command_is_ctrl else "<cmd>"}
        self._actions: dict[str, str] = {}  # pynput's "<ctrl>+<alt>+<shift>+s" -> action
        self._listener = None

    def grab(self, action: str, modifiers: set[str], key: str) -> None:
        name = key.lower()
        if len(name) == 1 and name.isalnum():
            main = name
        elif name in self.KEYS or (name[:1] == "f" and name[1:].isdigit() and 1 <= int(name[1:]) <= 20):
            main = f"<{self.KEYS.get(name, name)}>"
        else:
            raise ValueError(_("unknown key '{key}'").format(key=key))
        combination = "+".join(sorted(self._modifiers[m] for m in modifiers)) + "+" + main
        self._keyboard.HotKey.parse(combination)  # raises ValueError for what pynput cannot read
        self._actions[combination] = action

    def start(self) -> str | None:
        if not self._actions:
            return None
        self._listener = self._keyboard.GlobalHotKeys(
            {combination: (lambda action=action: self._on_press(action)) for combination, action in
             self._actions.items()})
        self._listener.start()
        # Until the listener runs. pynput's wait() has no time limit and never returns when the listener fails
        # before it is ready, so it waits on a thread of its own, for a while.
        ready = threading.Thread(target=self._listener.wait, daemon=True)
        ready.start()
        ready.join(5)
        if ready.is_alive() or not self._listener.is_alive():
            return _("Global hotkeys could not start: the keyboard listener failed.")
        if not getattr(self._listener, "IS_TRUSTED", True):  # macOS only: the user has not allowed it (yet)
            return _("To use the hotkeys, allow Captioner in System Settings > Privacy & Security > Accessibility "
                     "and Input Monitoring, then start it again.")
        return None

    def close(self) -> None:
        if self._listener is not None:
            self._listener.stop()
            self._listener = None


class _PortalHotkeys:
    """Wayland: the desktop's global shortcuts portal binds the keys (it may ask the user to confirm them in a
    dialog of its own, so binding runs on a thread). The active window cannot be found on Wayland: that action
    gets no key there."""

    # What the desktop's shortcut settings list our keys as.
    DESCRIPTIONS = {Target.SCREEN: N_("Describe the screen"), Target.REGION: N_("Describe a region of the screen"),
                    Target.CLIPBOARD: N_("Describe the image on the clipboard"),
                    Target.TEXT: N_("Read the text on the screen")}
    MODIFIERS = {"control": "CTRL", "alt": "ALT", "shift": "SHIFT", "super": "LOGO"}  # the XDG shortcuts names
    KEYS = {"space": "space", "print": "Print", "ins": "Insert", "del": "Delete", "home": "Home", "end": "End",
            "pgup": "Page_Up", "pgdown": "Page_Down"}  # Qt's names -> X keysym names

    def __init__(self, on_press, on_problem):
        self._on_press, self._on_problem = on_press, on_problem
        self._wanted: dict[str, tuple[str, str]] = {}
        self._shortcuts = None
        self._closed = threading.Event()

    def grab(self, action: str, modifiers: set[str], key: str) -> None:
        if action not in self.DESCRIPTIONS:
            return
        name = key.lower()
        if len(name) == 1 and name.isalnum():
            keysym = name
        elif name[:1] == "f" and name[1:].isdigit():
            keysym = name.upper()
        elif name in self.KEYS:
            keysym = self.KEYS[name]
        else:
            raise ValueError(_("unknown key '{key}'").format(key=key))
        trigger = "+".join([self.MODIFIERS[m] for m in ("control", "alt", "shift", "super") if m in modifiers]
                           + [keysym])
        self._wanted[action] = (_(self.DESCRIPTIONS[action]), trigger)

    def start(self) -> None:
        if self._wanted:
            threading.Thread(target=self._bind, name="portal-hotkeys", daemon=True).start()

    def _bind(self) -> None:
        from .portal import PortalError, PortalShortcuts

        try:
            self._shortcuts = PortalShortcuts(self._on_press)
            if not self._closed.is_set():  # else unregistered meanwhile
                self._shortcuts.bind(self._wanted)
        except PortalError as exc:
            if not self._closed.is_set():
                self._on_problem(_("Global hotkeys: {problem}").format(problem=exc))
        if self._closed.is_set() and self._shortcuts is not None:
            self._shortcuts.close()

    def close(self) -> None:
        self._closed.set()
        if self._shortcuts is not None:
            self._shortcuts.close()


class _WindowsHotkeys(QAbstractNativeEventFilter):
    """RegisterHotKey for the thread's message queue; WM_HOTKEY arrives through Qt's native event filter."""

    WM_HOTKEY = 0x0312
    MODIFIERS = {"alt": 0x1, "control": 0x2, "shift": 0x4, "super": 0x8}
    MOD_NOREPEAT = 0x4000

    def __init__(self, on_press):
        super().__init__()
        import ctypes

        self._user32 = ctypes.windll.user32
        self._on_press = on_press
        self._ids: dict[int, str] = {}
        QCoreApplication.instance().installNativeEventFilter(self)

    def grab(self, action: str, modifiers: set[str], key: str) -> None:
        virtual_key = _windows_virtual_key(key)
        mask = self.MOD_NOREPEAT
        for modifier in modifiers:
            mask |= self.MODIFIERS[modifier]
        hotkey_id = 0xB000 + len(self._ids)
        if not self._user32.RegisterHotKey(None, hotkey_id, mask, virtual_key):
            raise KeyTaken()
        self._ids[hotkey_id] = action

    def start(self) -> None:
        pass

    def nativeEventFilter(self, event_type, message):
        # A hotkey registered without a window is a thread message: Qt shows it to filters as the dispatcher's
        # message ("windows_dispatcher_MSG"); messages for windows come as "windows_generic_MSG".
        name = event_type.encode() if isinstance(event_type, str) else bytes(event_type)  # QByteArray
        if name in (b"windows_dispatcher_MSG", b"windows_generic_MSG"):
            from ctypes import wintypes

            msg = wintypes.MSG.from_address(int(message))
            if msg.message == self.WM_HOTKEY and msg.wParam in self._ids:
                self._on_press(self._ids[msg.wParam])
                return True, 0
        return False, 0

    def close(self) -> None:
        for hotkey_id in self._ids:
            self._user32.UnregisterHotKey(None, hotkey_id)
        self._ids.clear()
        QCoreApplication.instance().removeNativeEventFilter(self)


def _windows_virtual_key(key: str) -> int:
    key = key.upper()
    if len(key) == 1 and (key.isalpha() or key.isdigit()):
        return ord(key)
    if key.startswith("F") and key[1:].isdigit() and 1 <= int(key[1:]) <= 24:
        return 0x70 + int(key[1:]) - 1
    named = {"SPACE": 0x20, "PRINT": 0x2C, "INS": 0x2D, "DEL": 0x2E, "HOME": 0x24, "END": 0x23, "PGUP": 0x21,
             "PGDOWN": 0x22}
    if key in named:
        return named[key]
    raise ValueError(_("unknown key '{key}'").format(key=key))
