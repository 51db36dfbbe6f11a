"""Describing the screen on Wayland: the picture comes from the desktop portal's Screenshot interface, here a
stand-in (fake_portal.py) on a private D-Bus session bus, reached exactly as the real portal is."""

import json
import os
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from app_helpers import expected_caption, expected_description, same_description, start_app, stop_app
from test_app import isolated_settings  # noqa: F401 (autouse: the app's settings in the test's folder)

FAKE_PORTAL = Path(__file__).parent / "fake_portal.py"


@pytest.fixture
def session_bus():
    daemon = subprocess.Popen(["dbus-daemon", "--session", "--nofork", "--print-address=1"],
                              stdout=subprocess.PIPE, text=True)
    address = daemon.stdout.readline().strip()
    yield address
    daemon.terminate()
    daemon.wait(10)


@pytest.fixture
def desktop(tmp_path):
    """What is on the (pretend) Wayland screen."""
    rng = np.random.default_rng(7)
    pixels = rng.integers(0, 256, (600, 800, 3), dtype=np.uint8)
    pixels[:300, :400] = (20, 160, 40)
    path = tmp_path / "desktop.png"
    Image.fromarray(pixels).save(path)
    return path


def start_portal(session_bus, picture, answer, *options):
    portal = subprocess.Popen([sys.executable, str(FAKE_PORTAL), str(picture), answer, *options], stdout=subprocess.PIPE,
                              text=True, env={**os.environ, "DBUS_SESSION_BUS_ADDRESS": session_bus})
    assert portal.stdout.readline().strip() == "ready"
    return portal


@contextmanager
def app_on_wayland(qtbot, monkeypatch, session_bus, tmp_path, model_folder, desktop, *portal_options):
    """The app's window in a Wayland session whose portal (the stand-in, given `portal_options`) shows `desktop`;
    yields (app, portal) and stops both afterwards."""
    from captioner_gui.app.settings import Settings

    monkeypatch.setenv("XDG_SESSION_TYPE", "wayland")
    monkeypatch.setenv("DBUS_SESSION_BUS_ADDRESS", session_bus)
    portal = start_portal(session_bus, desktop, "allow", *portal_options)
    app = start_app(qtbot, Settings(model=str(model_folder)), tmp_path / "data", tmp_path / "speech")
    try:
        yield app, portal
    finally:
        stop_app(app)
        portal.kill()


def describe_screen_on_wayland(session_bus, tmp_path, *args):
    """`captioner describe-screen` in a Wayland session: no X display, the session bus given."""
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "QT_QPA_PLATFORM")}
    env |= {"WAYLAND_DISPLAY": "wayland-test", "XDG_SESSION_TYPE": "wayland", "DBUS_SESSION_BUS_ADDRESS": session_bus,
            "XDG_CONFIG_HOME": str(tmp_path / "config"), "XDG_RUNTIME_DIR": str(tmp_path)}
    return subprocess.run([sys.executable, "-m", "captioner_gui", "describe-screen", "--no-speech", *map(str, args)],
                          capture_output=True, text=True, env=env, timeout=300)


def test_the_screen_comes_from_the_portal(session_bus, tmp_path, desktop, tiny_mlp):
    portal = start_portal(session_bus, desktop, "allow")
    try:
        whole = describe_screen_on_wayland(session_bus, tmp_path, "--json", "--model", tiny_mlp.folder)
        answered = portal.stdout.readline().split()
        region = describe_screen_on_wayland(session_bus, tmp_path, "--region", "300,200,300,200",
                                            "--model", tiny_mlp.folder)
    finally:
        portal.kill()
    assert whole.returncode == 0, whole.stderr
    answer = json.loads(whole.stdout)
    expected = expected_description(tiny_mlp.folder, desktop, source="screen")
    assert answer["what"] == "screen" and answer["title"] is None and same_description(answer, expected)
    assert answered[:2] == ["answered", "allow"]
    assert not Path(answered[2].removeprefix("file://")).exists()  # the portal's file is not left behind

    Image.open(desktop).crop((300, 200, 600, 400)).save(tmp_path / "region.png")
    assert region.returncode == 0, region.stderr
    expected = expected_description(tiny_mlp.folder, tmp_path / "region.png", source="region")
    assert region.stdout.split(":")[0] == expected.spoken.split(":")[0]  # the kind (see same_description)


def test_a_refused_screenshot_is_one_clear_line(session_bus, tmp_path, desktop, tiny_mlp):
    portal = start_portal(session_bus, desktop, "deny")
    try:
        result = describe_screen_on_wayland(session_bus, tmp_path, "--model", tiny_mlp.folder)
    finally:
        portal.kill()
    assert result.returncode == 1
    assert "did not allow the screenshot" in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_without_a_portal_or_a_window_the_user_is_told_what_to_do(session_bus, tmp_path, tiny_mlp):
    missing = describe_screen_on_wayland(session_bus, tmp_path, "--model", tiny_mlp.folder)
    window = describe_screen_on_wayland(session_bus, tmp_path, "--window", "--model", tiny_mlp.folder)
    assert missing.returncode == 1 and "install xdg-desktop-portal" in missing.stderr
    assert "paste it (Ctrl+V)" in missing.stderr and len(missing.stderr.strip().splitlines()) == 1
    assert window.returncode == 1 and "cannot find the active window" in window.stderr


def test_the_apps_screen_and_region_come_from_the_portal(qtbot, session_bus, tmp_path, desktop, tiny_mlp,
                                                          monkeypatch):
    """The window's Describe screen and its region overlay on Wayland: the overlay shows the portal's picture,
    and Enter takes its middle (where the rectangle starts)."""
    from PySide6.QtCore import Qt

    with app_on_wayland(qtbot, monkeypatch, session_bus, tmp_path, tiny_mlp.folder, desktop) as (app, _):
        app.window.describe_capture("screen")
        [screen] = app.described(qtbot)
        app.window.describe_capture("region")
        qtbot.waitUntil(lambda: getattr(app.window, "_picker", None) is not None and app.window._picker.isVisible())
        qtbot.keyClick(app.window._picker, Qt.Key.Key_Return)
        [region] = app.described(qtbot)
    assert not screen.error and screen.text == expected_caption(tiny_mlp.folder, desktop, source="screen")
    Image.open(desktop).crop((200, 150, 600, 450)).save(tmp_path / "middle.png")
    assert not region.error and region.text == expected_caption(tiny_mlp.folder, tmp_path / "middle.png",
                                                                        source="region")


def test_the_window_keeps_answering_while_the_desktop_asks(qtbot, session_bus, tmp_path, desktop, tiny_mlp,
                                                            monkeypatch):
    """The portal may wait for the user to allow the screenshot (here 1.5 s): meanwhile the event loop turns,
    a second press is told to wait, and the description comes once the desktop answers."""
    import time

    from PySide6.QtCore import QTimer

    ticks, second = [], []
    timer = QTimer()
    timer.timeout.connect(lambda: ticks.append(time.perf_counter()))
    with app_on_wayland(qtbot, monkeypatch, session_bus, tmp_path, tiny_mlp.folder, desktop,
                        "--delay", "1.5") as (app, _):
        timer.start(10)
        started = time.perf_counter()
        app.window.describe_capture("screen")
        qtbot.wait(600)
        app.window.describe_capture("screen", on_done=second.append)
        [screen] = app.described(qtbot)
        finished = time.perf_counter()
        timer.stop()
    assert finished - started > 1.5  # the desktop's answer was waited for ...
    gaps = [b - a for a, b in zip(ticks, ticks[1:])]
    assert max(gaps) < 0.25, f"the window froze for {max(gaps):.2f} s"  # ... without freezing the window
    assert second and "Still taking the last picture" in second[0]["error"]
    assert not screen.error and screen.text == expected_caption(tiny_mlp.folder, desktop, source="screen")


@pytest.mark.parametrize("desktop_has_shortcuts", [True, False])
def test_the_desktop_binds_the_hotkeys_and_a_press_describes_the_screen(qtbot, session_bus, tmp_path, desktop,
                                                                         tiny_mlp, monkeypatch, desktop_has_shortcuts):
    """On Wayland the desktop's global shortcuts portal binds the hotkeys (those of Settings, as its preferred
    triggers; the active window's is left out, as it cannot work there), and its press describes the screen. A
    desktop without that portal gets one line that says what to do instead."""
    from captioner_gui.app.hotkeys import Hotkeys
    from captioner_gui.app.settings import Settings

    hotkeys, problems = Hotkeys(), []
    hotkeys.problem.connect(problems.append)
    with app_on_wayland(qtbot, monkeypatch, session_bus, tmp_path, tiny_mlp.folder, desktop,
                        *(["--press", "screen"] if desktop_has_shortcuts else ["--no-shortcuts"])) as (app, portal):
        hotkeys.pressed.connect(app.window.on_hotkey)
        try:
            assert hotkeys.register(Settings().hotkeys) == []  # bound on a thread: the desktop may ask the user
            if desktop_has_shortcuts:
                [screen] = app.described(qtbot)
                said = [portal.stdout.readline().strip() for _ in range(3)]
            else:
                qtbot.waitUntil(lambda: bool(problems), timeout=10000)
        finally:
            hotkeys.unregister()
    if desktop_has_shortcuts:
        assert said[:2] == ["registered io.github.captioner.Captioner",
                            "bound screen=CTRL+ALT+SHIFT+s region=CTRL+ALT+SHIFT+r clipboard=CTRL+ALT+SHIFT+v "
                            "text=CTRL+ALT+SHIFT+t"]
        assert said[2].startswith("answered allow")
        assert not problems
        assert not screen.error and screen.text == expected_caption(tiny_mlp.folder, desktop, source="screen")
    else:
        [problem] = problems
        assert "no global shortcuts portal" in problem and "captioner describe-screen" in problem
