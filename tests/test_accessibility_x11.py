"""The app as a screen-reader user and a low-vision user meet it: a real X server with a window manager (openbox),
and the accessibility bus read as Orca reads it (AT-SPI: the tree of names, roles, states and text, and the events).

One app start serves several checks, since each start loads a model."""

import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from PIL import Image

from atspi import AccessibilityBus, events, nodes, showing
from builders import noise_image
from test_app_x11 import history, quit_gui
from test_screen_x11 import picture_file, show_picture
from x11 import ARTIFACTS, Xvfb, gui_command, wait_for

SCREEN = (1280, 800)
DRAG_SOURCE = Path(__file__).parent / "drag_source.py"
ROLES_WITHOUT_NAME = {"filler", "scroll pane", "viewport", "panel", "status bar", "menu bar", "separator",
                      "scroll bar", "popup menu", "unknown"}


@pytest.fixture
def desktop(tmp_path):
    """Xvfb with openbox and a private accessibility bus; yields (xserver, bus)."""
    if shutil.which("openbox") is None:
        raise RuntimeError("openbox is missing: install it (see .ci/run).")
    xserver = Xvfb(*SCREEN)
    window_manager = subprocess.Popen(["openbox", "--sm-disable"], env=xserver.env(), stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL)
    time.sleep(1)  # openbox has taken the screen
    runtime = Path(tempfile.mkdtemp(prefix="cap-a11y-"))  # short: a socket's path has a length limit
    bus = AccessibilityBus(xserver.env(XDG_CONFIG_HOME=str(tmp_path / "config"), CAPTIONER_DATA=str(tmp_path / "data"),
                                       CAPTIONER_SPEECH_DIR=str(tmp_path / "speech"), XDG_RUNTIME_DIR=str(runtime),
                                       CAPTIONER_PLAYER="true"))
    try:
        yield xserver, bus
    finally:
        bus.close()
        window_manager.terminate()
        window_manager.wait(10)
        xserver.close()
        shutil.rmtree(runtime, ignore_errors=True)


def start(bus, xserver, *args, **env):
    gui = subprocess.Popen([*gui_command(), *map(str, args)], env={**bus.env, **env}, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True)
    try:
        return gui, xserver.wait_for_window("^Captioner$")
    except TimeoutError:
        gui.kill()
        raise AssertionError(f"no window appeared; the app said: {gui.communicate()[0][-2000:]}") from None


def active_window(xserver) -> int:
    value = xserver.run("xprop", "-root", "_NET_ACTIVE_WINDOW")
    return int(re.search(r"0x[0-9a-f]+", value).group(0), 16)


def status_text(tree) -> str:
    [bar] = [node for node in nodes(tree) if node["role"] == "status bar" and "showing" in node["states"]]
    return " ".join(node["name"] for node in nodes(bar) if node["role"] == "label" and node["name"])


def announcements(log) -> list[dict]:
    return [event for event in events(log) if event["type"] == "object:announcement"]


def test_a_screen_reader_hears_every_state_and_the_focus_stays_in_the_users_program(desktop, tmp_path, tiny_mlp):
    xserver, bus = desktop
    log = tmp_path / "events.jsonl"
    bus.watch("captioner", log)  # before the app starts: "Ready" comes early
    gui, window = start(bus, xserver, "--model", tiny_mlp.folder)
    try:
        # The status can be read at any time, and "Ready" was announced.
        tree = wait_for(lambda: (lambda t: t if "Ready" in status_text(t) else None)(bus.tree("captioner")), 60,
                        "Ready in the status bar")
        assert any(e["value"].startswith("Ready") for e in announcements(log)), announcements(log)

        # Every control a user reaches has a name and a role a screen reader presents.
        for node in showing(tree):
            if "focusable" in node["states"]:
                assert node["name"].strip(), node
                assert node["role"] not in ("filler", "unknown", "panel"), node

        # A second `captioner-gui` with three images hands them over: all three are described, announced one
        # after the other (the later ones politely, so none cuts another off), and focus lands on the description.
        photos = []
        for seed in range(3):
            photos.append(tmp_path / f"photo{seed}.png")
            noise_image(seed, (160, 120)).save(photos[-1])
        second = subprocess.run([*gui_command(), *map(str, photos)], env=bus.env, capture_output=True, text=True,
                                timeout=60)
        assert second.returncode == 0, second.stderr
        entries = wait_for(lambda: (lambda h: h if len(h) == 3 else None)(history(tmp_path)), 60, "3 descriptions")
        assert [entry["source"] for entry in entries] == [str(p) for p in photos]
        said = wait_for(lambda: [e for e in announcements(log) if "photo" in e["value"]] if len(
            [e for e in announcements(log) if "photo" in e["value"]]) == 3 else None, 20, "3 announcements")
        assert [e["detail1"] for e in said] == [2, 1, 1], said  # AT-SPI: 2 assertive, 1 polite
        assert any(e["type"].startswith("focus") or e["type"].endswith("focused") and e["name"] == "Description"
                   for e in events(log))

        # A hotkey from the user's program: described, and the focus stays in that program.
        picture = picture_file(tmp_path, "screen.png", (400, 300), seed=1)
        viewer, viewer_window = show_picture(xserver, picture, 600, 300)
        try:
            xserver.run("xdotool", "windowactivate", "--sync", viewer_window)
            time.sleep(0.5)
            before = active_window(xserver)
            assert before == int(viewer_window)
            for number, key in enumerate(("ctrl+alt+shift+s", "ctrl+alt+shift+w"), start=4):
                xserver.run("xdotool", "key", key)
                wait_for(lambda: len(history(tmp_path)) >= number, 60, f"the description after {key}")
                time.sleep(1.5)  # the window is shown again, quietly
                assert active_window(xserver) == before, f"{key} took the focus from the user's program"
            assert "Captioner" not in history(tmp_path)[-1]["text"]  # the active window was the user's
        finally:
            viewer.terminate()

        # An error is announced too (this X server's clipboard is empty).
        xserver.keys(window, "ctrl+v")
        wait_for(lambda: [e for e in announcements(log) if "clipboard holds no image" in e["value"]], 20,
                 "the error announced")

        # Settings: each hotkey field is named by its action and says its key; each combo box is named by its
        # label; and once closed, the dialog is gone from the tree.
        xserver.keys(window, "ctrl+comma")
        xserver.wait_for_window("^Settings$")
        time.sleep(1)
        tree = bus.tree("captioner")
        fields = {node["name"]: node["text"] for node in nodes(tree) if node["role"] == "text"}
        assert fields.get("Describe the screen") == "Ctrl+Alt+Shift+S", fields
        assert fields.get("Describe the active window") == "Ctrl+Alt+Shift+W", fields
        # (On Linux Qt gives a combo box its value as its name; Orca says the label from the labelled-by relation
        # first: "Device: combo box, Automatic".)
        combos = {node["name"]: node["labelled_by"] for node in nodes(tree) if node["role"] == "combo box"}
        assert "Device:" in combos["Automatic"] and "Theme:" in combos["Follow the system"], combos
        xserver.keys(xserver.wait_for_window("^Settings$"), "Escape")
        time.sleep(1)
        dialogs = [node for node in nodes(bus.tree("captioner")) if node["role"] == "dialog"]
        assert dialogs == [], dialogs
    finally:
        quit_gui(xserver, window, gui)


def focused(tree):
    """The control with the keyboard focus (the window around it is "focused" too)."""
    return [node for node in nodes(tree) if {"focused", "focusable"} <= set(node["states"])][-1:]


def inside_screen(extents) -> bool:
    x, y, width, height = extents
    return x >= 0 and y >= 0 and x + width <= SCREEN[0] and y + height <= SCREEN[1]


def test_at_200_percent_every_control_is_on_screen_and_a_drop_anywhere_is_described(desktop, tmp_path, tiny_mlp):
    xserver, bus = desktop
    gui, window = start(bus, xserver, "--model", tiny_mlp.folder, QT_SCALE_FACTOR="2")
    try:
        wait_for(lambda: "Ready" in status_text(bus.tree("captioner")), 60, "Ready")
        frame = [n for n in nodes(bus.tree("captioner")) if n["role"] == "frame" and n["name"] == "Captioner"]
        assert inside_screen(frame[0]["extents"]), frame[0]["extents"]
        shot = xserver.screenshot(None, tmp_path / "screen-200.png")
        ARTIFACTS.mkdir(exist_ok=True)
        Image.open(shot).save(ARTIFACTS / "app-window-200-percent.png", optimize=True)

        # Tab through every control: each one, when it has the focus, is inside the screen.
        names = []
        xserver.keys(window, "Tab")
        for _ in range(12):
            [node] = wait_for(lambda: focused(bus.tree("captioner")) or None, 10, "a focused control")
            assert inside_screen(node["extents"]), node
            if node["name"] in names:
                break
            names.append(node["name"])
            xserver.keys(window, "Tab")
        assert {"Drop area", "Description", "Copy description", "History", "Clear history"} <= set(names), names

        # A real drag from another program, dropped on the description field, is described.
        photo = tmp_path / "dragged.png"
        noise_image(7, (160, 120)).save(photo)
        [field] = [n for n in nodes(bus.tree("captioner")) if n["role"] == "text" and n["name"] == "Description"]
        source = subprocess.Popen([sys.executable, str(DRAG_SOURCE), str(photo), "0", "0"], env=xserver.env(),
                                  stdout=subprocess.PIPE, text=True)
        try:
            source_window = xserver.wait_for_window("^drag source$")
            time.sleep(1)
            geometry = dict(line.split("=") for line in xserver.run("xdotool", "getwindowgeometry", "--shell",
                                                                    source_window).split())
            start_x, start_y = int(geometry["X"]) + 50, int(geometry["Y"]) + 50
            x, y, width, height = field["extents"]
            target_x, target_y = x + width // 2, y + height // 2
            xserver.run("xdotool", "mousemove", str(start_x), str(start_y), "mousedown", "1", "sleep", "0.3",
                        "mousemove", str(start_x + 20), str(start_y + 20), "sleep", "0.5",
                        "mousemove", str(target_x), str(target_y), "sleep", "0.5",
                        "mousemove", str(target_x + 5), str(target_y + 5), "sleep", "0.5", "mouseup", "1")
            [entry] = wait_for(lambda: history(tmp_path), 60, "the dropped image's description")
            assert entry["source"] == str(photo)
        finally:
            source.terminate()

        # Ctrl+Plus makes the text larger, and it is remembered.
        xserver.keys(window, "ctrl+plus")
        settings_file = tmp_path / "config" / "captioner" / "captioner.conf"
        wait_for(lambda: "text_size=110" in settings_file.read_text(), 10, "the text size kept")
    finally:
        quit_gui(xserver, window, gui)
