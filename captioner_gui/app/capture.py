"""Screen capture: a monitor, all monitors, the active window or a region, with mss; the active window's bounds
from the platform (Windows: GetForegroundWindow/GetWindowRect; X11: _NET_ACTIVE_WINDOW, else the input focus).
On Wayland the desktop portal takes the picture (portal.py), and no program can find the active window.
No Qt here: the `captioner describe-screen` command uses it without a window."""

from __future__ import annotations

import math
import os
import sys
from dataclasses import dataclass

from PIL import Image

from captioner_gui.engine.errors import first_line
from captioner_gui.engine.options import CAPTURES, Target
from captioner_gui.i18n import N_, _

MAX_COORDINATE = 1 << 16  # beyond any desktop: a region's numbers are refused past it
WAYLAND_HINT = N_("On Wayland, you can also take a screenshot with your desktop's tool and paste it (Ctrl+V).")


class CaptureError(Exception):
    """The screen could not be captured; the message says why, in one line."""


@dataclass(frozen=True)
class Box:
    left: int
    top: int
    width: int
    height: int

    @classmethod
    def parse(cls, text: str) -> Box:
        """"X,Y,W,H" -> Box; raises ValueError with a readable message."""
        try:
            left, top, width, height = (int(part) for part in text.split(","))
        except ValueError:
            raise ValueError(_("'{region}' is not a region: write X,Y,WIDTH,HEIGHT, e.g. 0,0,800,600.")
                             .format(region=text)) from None
        if width <= 0 or height <= 0:
            raise ValueError(_("'{region}': the width and height must be above 0.").format(region=text))
        return cls(left, top, width, height)

    @classmethod
    def from_numbers(cls, values) -> Box:
        """[x, y, w, h] as a request gives it (JSON: any values) -> Box; raises ValueError with a readable message
        for anything but four whole, finite numbers within a desktop's reach, the width and height above 0."""
        if not (isinstance(values, list) and len(values) == 4 and all(_whole(value) for value in values)):
            raise ValueError(_("The region must be four whole numbers: X, Y, WIDTH, HEIGHT."))
        left, top, width, height = (int(value) for value in values)
        if width <= 0 or height <= 0:
            raise ValueError(_("The region's width and height must be above 0."))
        return cls(left, top, width, height)

    def inside(self, other: Box) -> bool:
        return (other.left <= self.left and self.left + self.width <= other.left + other.width
                and other.top <= self.top and self.top + self.height <= other.top + other.height)

    def __str__(self) -> str:
        return f"{self.left},{self.top},{self.width},{self.height}"

    def as_mss(self) -> dict:
        return {"left": self.left, "top": self.top, "width": self.width, "height": self.height}


def _whole(value) -> bool:
    """A whole number of pixels that a desktop can have: not infinite, not 2.5, not true, not 10**400."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    if isinstance(value, float) and not (math.isfinite(value) and value.is_integer()):
        return False
    return abs(value) <= MAX_COORDINATE


def check_on_screen(region: Box, screen: Box) -> None:
    """Raises CaptureError where `region` is not wholly on the screen (`screen`: all the monitors together)."""
    if not region.inside(screen):
        raise CaptureError(_("The region {region} is not on the screen, which is {screen}: give X,Y,WIDTH,HEIGHT "
                             "inside it.").format(region=region, screen=screen))


def on_wayland() -> bool:
    return sys.platform.startswith("linux") and (os.environ.get("XDG_SESSION_TYPE") == "wayland"
                                                 or (bool(os.environ.get("WAYLAND_DISPLAY"))
                                                     and not os.environ.get("DISPLAY")))


def _mss():
    import mss

    return getattr(mss, "MSS", mss.mss)()  # mss 10 renamed mss.mss to mss.MSS


def _grab(area: dict) -> Image.Image:
    try:
        with _mss() as screens:
            shot = screens.grab(area)
            return Image.frombytes("RGB", shot.size, shot.bgra, "raw", "BGRX")
    except Exception as exc:  # mss raises its own ScreenShotError, or an XError without a display
        raise CaptureError(_why(exc)) from None


def _why(exc: BaseException) -> str:
    return _("The screen could not be captured ({problem}).").format(problem=first_line(exc))


def monitors() -> list[Box]:
    """The monitors, as boxes in the virtual screen's coordinates."""
    try:
        with _mss() as screens:
            found = screens.monitors[1:] or screens.monitors[:1]
            return [Box(m["left"], m["top"], m["width"], m["height"]) for m in found]
    except Exception as exc:
        raise CaptureError(_why(exc)) from None


def grab_screen(x: int | None = None, y: int | None = None, all_monitors: bool = False) -> Image.Image:
    """The monitor that holds the point (x, y) (the first one when it is None), or all monitors together
    (on Wayland: always the whole desktop, as the portal gives it)."""
    if on_wayland():
        return _portal_screenshot()
    if all_monitors:
        try:
            with _mss() as screens:
                everything = screens.monitors[0]
        except Exception as exc:
            raise CaptureError(_why(exc)) from None
        return _grab(everything)
    screens = monitors()
    chosen = screens[0]
    if x is not None and y is not None:
        for box in screens:
            if box.left <= x < box.left + box.width and box.top <= y < box.top + box.height:
                chosen = box
                break
    return _grab(chosen.as_mss())


def pointer_position() -> tuple[int, int] | None:
    """Where the mouse pointer is, without a GUI toolkit (X11 and Windows); None where it cannot be asked."""
    try:
        if sys.platform == "win32":
            import ctypes
            from ctypes import wintypes

            point = wintypes.POINT()
            ctypes.windll.user32.GetCursorPos(ctypes.byref(point))
            return point.x, point.y
        if sys.platform.startswith("linux") and os.environ.get("DISPLAY"):
            from Xlib import display as xdisplay

            screen = xdisplay.Display()
            try:
                pointer = screen.screen().root.query_pointer()
                return pointer.root_x, pointer.root_y
            finally:
                screen.close()
    except Exception:
        return None
    return None


def whole_desktop() -> Box:
    """All the monitors together, as one box in the virtual screen's coordinates."""
    try:
        with _mss() as screens:
            everything = screens.monitors[0]
    except Exception as exc:
        raise CaptureError(_why(exc)) from None
    return Box(everything["left"], everything["top"], everything["width"], everything["height"])


def grab_box(box: Box) -> Image.Image:
    """A part of the screen (on Wayland: of the portal's screenshot, in its pixels). Raises CaptureError where
    the box is not wholly on the screen."""
    if on_wayland():
        desktop = _portal_screenshot()
        check_on_screen(box, Box(0, 0, *desktop.size))
        return desktop.crop((box.left, box.top, box.left + box.width, box.top + box.height))
    return _grab(box.as_mss())


def _portal_screenshot() -> Image.Image:
    from .portal import PortalError, portal_screenshot

    try:
        return portal_screenshot()
    except PortalError as exc:
        # Translators: a problem with the screenshot, then a hint (two sentences).
        raise CaptureError(_("{problem} {hint}").format(problem=exc, hint=_(WAYLAND_HINT))) from None


def active_window() -> tuple[Box, str, int]:
    """The bounds, the title and the platform's handle of the window that has the focus."""
    if sys.platform == "win32":
        return _active_window_windows()
    if sys.platform.startswith("linux") and os.environ.get("DISPLAY"):
        return _active_window_x11()
    if sys.platform == "darwin":
        return _active_window_macos()
    if on_wayland():
        raise CaptureError(_("On Wayland, programs cannot find the active window: describe the screen or a region "
                             "instead."))
    raise CaptureError(_("Finding the active window is not supported here; describe the screen or a region "
                         "instead."))


def grab_active_window() -> Image.Image:
    return grab_box(active_window()[0])


def _x11_title(screen, window) -> str:
    """The window's title as the window manager shows it: _NET_WM_NAME (UTF-8), else the older WM_NAME."""
    utf8 = screen.intern_atom("UTF8_STRING")
    title = window.get_full_property(screen.intern_atom("_NET_WM_NAME"), utf8)
    if title is not None and title.value:
        value = title.value
        return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
    return str(window.get_wm_name() or "")


FROM_THE_SCREEN = CAPTURES | {Target.TEXT}  # the targets `take` captures (the clipboard is no picture of the screen)


@dataclass
class Capture:
    image: Image.Image
    title: str | None  # the active window's title, where the platform tells
    source: Target  # what the picture shows: one of CAPTURES (or the clipboard, for `describe-screen --clipboard`)
    dialog: bool = False  # the active window (shown, or named by `title`) is a dialog


def take(target: Target, region: Box | None = None, pointer: tuple[int, int] | None = None,
         all_monitors: bool = False, own_window: int | None = None) -> Capture:
    """The one way a picture of the screen is taken, for the app and for `captioner describe-screen`.

    screen: the monitor under `pointer` (or all of them); window: the active window; region: `region`; text: the
    active window, or the screen where no program can find the active window (Wayland), for its text alone.
    The active window's title comes along for the screen and the window. `own_window` is the app's own window
    handle: the app never describes itself."""
    if target == Target.REGION:
        if region is None:
            raise CaptureError(_("No region was given: write X,Y,WIDTH,HEIGHT."))
        if not on_wayland():  # (there, grab_box checks it against the portal's picture)
            check_on_screen(region, whole_desktop())
        return Capture(grab_box(region), None, Target.REGION)
    if target not in FROM_THE_SCREEN:
        raise CaptureError(_("Unknown thing to describe: {what}.").format(what=target))
    window = _active_window_or_none(own_window)
    if target == Target.WINDOW or (target == Target.TEXT and window is not None):
        if window is None:
            active_window()  # raises the reason (Wayland, no focus, ...)
            raise CaptureError(_("Captioner itself is the active window. Switch to the window to describe, then "
                                 "press the key again."))
        box, title, dialog = window
        return Capture(grab_box(box), title or None, Target.WINDOW, dialog)
    picture = grab_screen(*(pointer or (None, None)), all_monitors=all_monitors)
    title, dialog = (window[1] or None, window[2]) if window else (None, False)
    return Capture(picture, title, Target.SCREEN, dialog)


def _active_window_or_none(own_window: int | None) -> tuple[Box, str, bool] | None:
    """The active window's bounds, title and whether it is a dialog; None where it is ours or cannot be found."""
    try:
        box, title, handle = active_window()
    except CaptureError:
        return None
    return None if own_window is not None and handle == own_window else (box, title, is_dialog(handle))


def is_dialog(handle: int) -> bool:
    """Whether the window is a dialog. X11: its type says so, or, having no type, it is transient for another
    window (as the EWMH reads it). Windows: a dialog's class, or a window owned by another with a dialog's frame
    (an owned main window, as Delphi's are, is not one). False where the platform does not tell."""
    try:
        if sys.platform == "win32":
            import ctypes

            user32 = ctypes.windll.user32
            name = ctypes.create_unicode_buffer(64)
            user32.GetClassNameW(handle, name, 64)
            extended = user32.GetWindowLongW(handle, -20)  # GWL_EXSTYLE
            dialog_frame, app_window = extended & 0x1, extended & 0x40000  # WS_EX_DLGMODALFRAME, WS_EX_APPWINDOW
            return name.value == "#32770" or bool(user32.GetWindow(handle, 4) and dialog_frame and not app_window)
        if sys.platform.startswith("linux") and os.environ.get("DISPLAY"):
            from Xlib import Xatom, display as xdisplay

            screen = xdisplay.Display()
            try:
                window = screen.create_resource_object("window", handle)
                types = window.get_full_property(screen.intern_atom("_NET_WM_WINDOW_TYPE"), Xatom.ATOM)
                if types is not None and len(types.value):
                    return screen.intern_atom("_NET_WM_WINDOW_TYPE_DIALOG") in list(types.value)
                return window.get_wm_transient_for() is not None
            finally:
                screen.close()
    except Exception:  # a window gone meanwhile, no Xlib: the description goes on without knowing
        return False
    return False


def _active_window_windows() -> tuple[Box, str, int]:
    import ctypes
    from ctypes import wintypes

    user32 = ctypes.windll.user32
    handle = user32.GetForegroundWindow()
    if not handle:
        raise CaptureError(_("No window has the focus."))
    rect = wintypes.RECT()
    user32.GetWindowRect(handle, ctypes.byref(rect))
    title = ctypes.create_unicode_buffer(512)
    user32.GetWindowTextW(handle, title, 512)
    return Box(rect.left, rect.top, rect.right - rect.left, rect.bottom - rect.top), title.value, int(handle)


def _active_window_macos() -> tuple[Box, str, int]:
    """The frontmost application's front window, from Quartz's list of windows (front to back), in points as mss
    takes them. Its title needs the Screen Recording permission that taking the screen needs anyway; without a
    title, the application's name ("Mail") is said instead."""
    try:
        import Quartz
        from AppKit import NSWorkspace
    except ImportError:
        raise CaptureError(_("Finding the active window needs pyobjc: pip install pyobjc-framework-Quartz. "
                             "Describe the screen instead.")) from None
    application = NSWorkspace.sharedWorkspace().frontmostApplication()
    if application is None:
        raise CaptureError(_("No window has the focus."))
    owner = int(application.processIdentifier())
    if owner == os.getpid():  # our window is hidden while the picture is taken, but we are still in front
        raise CaptureError(_("Captioner itself is the active window. Switch to the window to describe, then "
                             "press the key again."))
    options = Quartz.kCGWindowListOptionOnScreenOnly | Quartz.kCGWindowListExcludeDesktopElements
    for info in Quartz.CGWindowListCopyWindowInfo(options, Quartz.kCGNullWindowID) or []:
        if int(info.get("kCGWindowOwnerPID", -1)) == owner and int(info.get("kCGWindowLayer", -1)) == 0:
            bounds = info["kCGWindowBounds"]
            box = Box(int(bounds["X"]), int(bounds["Y"]), int(bounds["Width"]), int(bounds["Height"]))
            title = str(info.get("kCGWindowName") or "") or str(application.localizedName() or "")
            return box, title, int(info["kCGWindowNumber"])
    raise CaptureError(_("The active program shows no window; describe the screen instead."))


def _active_window_x11() -> tuple[Box, str, int]:
    try:
        from Xlib import X, display as xdisplay
        from Xlib.error import XError
    except ImportError:
        raise CaptureError(_("python-xlib is missing: pip install python-xlib.")) from None
    screen = None
    try:
        screen = xdisplay.Display()
        root = screen.screen().root
        window = None
        active = root.get_full_property(screen.intern_atom("_NET_ACTIVE_WINDOW"), X.AnyPropertyType)
        if active is not None and active.value and active.value[0]:
            window = screen.create_resource_object("window", active.value[0])
        else:  # no window manager says which window is active: the one with the keyboard focus
            window = screen.get_input_focus().focus
            if isinstance(window, int) or window == root:
                raise CaptureError(_("No window has the focus."))
            while True:  # up to the top-level window, the child of the root
                parent = window.query_tree().parent
                if parent is None or parent == root or parent.id == root.id:
                    break
                window = parent
        geometry = window.get_geometry()
        origin = window.translate_coords(root, 0, 0)
        name = _x11_title(screen, window)
        return Box(-origin.x, -origin.y, geometry.width, geometry.height), str(name), int(window.id)
    except XError as exc:
        raise CaptureError(_("The active window could not be found ({problem}).").format(problem=exc)) from None
    finally:
        if screen is not None:
            screen.close()
