"""The active window on macOS, from Quartz's window list: which window is the active one, and its title. Quartz and
AppKit are replaced by stand-ins that answer as macOS does (pyobjc runs only there); X11's active window is tested
in a real X server (test_screen_x11.py)."""

import os
import sys
import types

import pytest


def fake_macos(monkeypatch, windows, front_pid, front_name="Mail"):
    application = types.SimpleNamespace(processIdentifier=lambda: front_pid, localizedName=lambda: front_name)
    workspace = types.SimpleNamespace(frontmostApplication=lambda: application)
    appkit = types.ModuleType("AppKit")
    appkit.NSWorkspace = types.SimpleNamespace(sharedWorkspace=lambda: workspace)
    quartz = types.ModuleType("Quartz")
    quartz.kCGWindowListOptionOnScreenOnly, quartz.kCGWindowListExcludeDesktopElements = 1, 16
    quartz.kCGNullWindowID = 0
    quartz.CGWindowListCopyWindowInfo = lambda options, window: windows if options == 17 else []
    monkeypatch.setitem(sys.modules, "AppKit", appkit)
    monkeypatch.setitem(sys.modules, "Quartz", quartz)
    monkeypatch.setattr(sys, "platform", "darwin")


def window(number, pid, name, x=0, y=0, width=800, height=600, layer=0):
    info = {"kCGWindowNumber": number, "kCGWindowOwnerPID": pid, "kCGWindowLayer": layer,
            "kCGWindowBounds": {"X": x, "Y": y, "Width": width, "Height": height}}
    if name is not None:  # absent without the Screen Recording permission
        info["kCGWindowName"] = name
    return info


def test_the_frontmost_programs_front_window_and_its_title(monkeypatch):
    from captioner_gui.app.capture import Box, active_window

    windows = [window(1, 50, "Menu bar", height=24, layer=25),  # in front of everything, but not a window
               window(2, 60, "Notes"),  # another program's window, in front but not active
               window(3, 70, "Inbox - Mail", 100, 50, 1000, 700), window(4, 70, "Drafts")]
    fake_macos(monkeypatch, windows, front_pid=70)
    assert active_window() == (Box(100, 50, 1000, 700), "Inbox - Mail", 3)

    # Without the permission to read window titles: the program's name.
    fake_macos(monkeypatch, [window(5, 70, None, 10, 20, 300, 200)], front_pid=70)
    assert active_window() == (Box(10, 20, 300, 200), "Mail", 5)


def test_our_own_window_or_none_is_one_clear_line(monkeypatch):
    from captioner_gui.app.capture import CaptureError, active_window, take

    fake_macos(monkeypatch, [window(1, os.getpid(), "Captioner")], front_pid=os.getpid())
    with pytest.raises(CaptureError, match="Captioner itself is the active window"):
        active_window()
    with pytest.raises(CaptureError, match="Captioner itself"):
        take("window")

    fake_macos(monkeypatch, [window(1, 50, "Notes")], front_pid=70)
    with pytest.raises(CaptureError, match="shows no window; describe the screen"):
        active_window()
