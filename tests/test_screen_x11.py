"""Describing the screen in a real X server: global hotkeys pressed with xdotool, the screen, the active window
and a region captured, the blank guard, `captioner describe-screen` and the single instance."""

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from app_helpers import expected_caption, expected_description, loudness, same_description
from cli_helpers import run_captioner
from test_app_x11 import history, quit_gui, start_gui
from x11 import Xvfb, wait_for

SCREEN = (1280, 800)
SHOW_PICTURE = Path(__file__).parent / "show_picture.py"


@pytest.fixture
def xserver():
    server = Xvfb(*SCREEN)
    yield server
    server.close()


def said_of_screen(model_folder, picture) -> set[str]:
    """What the app shows for a capture of the screen that shows `picture`, with or without the title of the
    window that has the focus (without a window manager, the picture's viewer may or may not have it)."""
    return {expected_caption(model_folder, picture, source="screen", title=title) for title in (None, "picture")}


def picture_file(tmp_path, name, size, seed):
    """A picture with large shapes and noise: every part of it differs from every other."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    pixels[: size[1] // 2, : size[0] // 3] = (200, 30, 30)
    path = tmp_path / name
    Image.fromarray(pixels).save(path)
    return path


def show_picture(xserver, path, x=0, y=0):
    process = subprocess.Popen([sys.executable, str(SHOW_PICTURE), str(path), str(x), str(y)], env=xserver.env())
    window = xserver.wait_for_window("^picture$")
    time.sleep(0.5)  # drawn
    return process, window


@pytest.fixture
def app(xserver, tmp_path, tiny_mlp):
    gui, window = start_gui(xserver, tmp_path, "--model", tiny_mlp.folder)
    time.sleep(1.5)  # the hotkeys are grabbed once the window is up
    yield window
    quit_gui(xserver, window, gui)


@pytest.fixture
def app_keeping_screen_text(xserver, tmp_path, tiny_mlp):
    """The app with "Keep text read from the screen in the history" on (it is off at first), so that the tests can
    read what was read in the history file."""
    settings = tmp_path / "config" / "captioner" / "captioner.conf"
    settings.parent.mkdir(parents=True)
    settings.write_text("[General]\nkeep_screen_text=true\n")
    gui, window = start_gui(xserver, tmp_path, "--model", tiny_mlp.folder)
    time.sleep(1.5)
    yield window
    quit_gui(xserver, window, gui)


def test_the_screen_hotkey_describes_what_is_shown_and_not_our_window(xserver, app, tmp_path, tiny_mlp):
    picture = picture_file(tmp_path, "screen.png", SCREEN, seed=1)
    viewer, _ = show_picture(xserver, picture)
    try:
        xserver.run("xdotool", "key", "ctrl+alt+shift+s")
        [entry] = wait_for(lambda: history(tmp_path), 60, "the screen's description")
    finally:
        viewer.kill()
    assert entry["source"] == "screen"
    # The picture taken is exactly what was on the screen: our own window was hidden while it was taken.
    assert entry["text"] in said_of_screen(tiny_mlp.folder, picture)


def test_started_in_the_background_the_hotkeys_work_at_once(xserver, tmp_path, tiny_mlp):
    """`captioner-gui --background` (the installer's start at sign-in): the window out of the way, the hotkeys
    ready. This X server has no tray, so the window asks to start minimized; a window manager would honour that,
    and there is none here, so a picture shown on top stands for the user's other work."""
    from Xlib import Xutil, display

    gui, window = start_gui(xserver, tmp_path, "--background", "--model", tiny_mlp.folder)
    picture = picture_file(tmp_path, "screen.png", SCREEN, seed=6)
    viewer = None
    try:
        connection = display.Display(xserver.display)
        hints = connection.create_resource_object("window", int(window)).get_wm_hints()
        connection.close()
        assert hints.flags & Xutil.StateHint and hints.initial_state == Xutil.IconicState
        viewer, _ = show_picture(xserver, picture)
        time.sleep(1.5)  # the hotkeys are grabbed once the app is up
        xserver.run("xdotool", "key", "ctrl+alt+shift+s")
        [entry] = wait_for(lambda: history(tmp_path), 60, "the screen's description")
    finally:
        if viewer is not None:
            viewer.kill()
        gui.terminate()
        gui.wait(20)
    assert entry["source"] == "screen" and entry["text"] in said_of_screen(tiny_mlp.folder, picture)


def test_a_black_screen_is_reported_blank(xserver, app, tmp_path):
    xserver.run("xdotool", "key", "ctrl+alt+shift+s")
    [entry] = wait_for(lambda: history(tmp_path), 60, "the screen's description")
    assert entry["text"] == "The screen is blank."
    spoken = wait_for(lambda: sorted((tmp_path / "speech").glob("*.wav")), 30, "speech")
    assert loudness(spoken[-1])[1] > 300


def test_the_window_hotkey_describes_the_active_window(xserver, app, tmp_path, tiny_mlp):
    picture = picture_file(tmp_path, "window.png", (320, 240), seed=2)
    viewer, window = show_picture(xserver, picture, 200, 150)
    try:
        xserver.keys(window, "ctrl+alt+shift+w")
        [entry] = wait_for(lambda: history(tmp_path), 60, "the window's description")
    finally:
        viewer.kill()
    assert entry["source"] == "window"
    assert entry["text"] == expected_caption(tiny_mlp.folder, picture, source="window", title="picture")
    assert entry["text"].startswith("Photo in picture")  # the window's title, from _NET_WM_NAME


def test_the_read_the_text_hotkey_reads_the_active_windows_text(xserver, app_keeping_screen_text, tmp_path):
    """Ctrl+Alt+Shift+T over a window of text: its title, then its lines, and nothing else (no caption)."""
    from screens import text_page

    page = text_page(16, "light", screen=(640, 260), lines=5, seed=9)
    page.image.save(tmp_path / "notes.png")
    viewer, window = show_picture(xserver, tmp_path / "notes.png", 100, 100)
    try:
        xserver.run("xdotool", "windowfocus", "--sync", window)
        xserver.keys(window, "ctrl+alt+shift+t")
        [entry] = wait_for(lambda: history(tmp_path), 60, "the window's text")
    finally:
        viewer.kill()
    lines = entry["text"].splitlines()
    assert entry["source"] == "window" and lines[0] == "picture: 5 lines."
    assert lines[1:] == page.lines


def test_a_new_user_hears_a_mail_a_web_page_a_scanned_page_and_a_photo(xserver, app_keeping_screen_text, tmp_path):
    """The issue's walk: the screen hotkey over each of them. A mail: the window and its text. A web page: its
    pictures with captions, then its text. A scanned page: its text. A photo: its caption, and no text."""
    from screens import photo, scanned_page, text_page, web_page

    mail = text_page(15, "light", screen=SCREEN, lines=12, seed=21)
    web = web_page(screen=SCREEN)
    scan = scanned_page(screen=SCREEN)
    pictures = {"mail": (mail.image, mail.lines), "web": (web.image, web.lines), "scan": (scan.image, scan.lines),
                "photo": (photo("astronaut.png").resize(SCREEN), [])}
    entries = {}
    for name, (image, _) in pictures.items():
        image.save(tmp_path / f"{name}.png")
        viewer, _ = show_picture(xserver, tmp_path / f"{name}.png")
        try:
            xserver.run("xdotool", "key", "ctrl+alt+shift+s")
            entries[name] = wait_for(lambda: history(tmp_path)[len(entries):], 90, f"the {name}'s description")[0]
        finally:
            viewer.kill()
        time.sleep(0.5)
    heard = {name: entry["text"].splitlines() for name, entry in entries.items()}
    for name in ("mail", "scan"):  # the window (or the page), how much text, then every line in order
        summary, *lines = heard[name]
        assert summary.startswith(("Screenshot of picture:", "Page of text in picture,", "Screenshot:",
                                   "Page of text,")) and f"{len(pictures[name][1])} lines" in summary, summary
        assert lines == pictures[name][1]
    summary, first, second, *lines = heard["web"]
    assert "2 pictures" in summary  # each said with its place, before the text (its kind: the tiny CLIP's guess)
    assert [said.split(":")[0].split(".")[0].split(" at ")[1] for said in (first, second)] == ["top left", "left"]
    assert lines == web.lines
    assert heard["photo"][0].startswith(("Photo in picture", "Photo"))  # the caption first (then what the reader
    assert len(heard["photo"]) <= 2  # saw on the astronaut's suit, if anything)
    spoken = sorted((tmp_path / "speech").glob("*.wav"))
    assert len(spoken) >= 4 and all(loudness(path)[0] > 0.5 for path in spoken)


def test_a_region_chosen_with_the_arrow_keys(xserver, app, tmp_path, tiny_mlp):
    picture = picture_file(tmp_path, "screen.png", SCREEN, seed=3)
    viewer, _ = show_picture(xserver, picture)
    try:
        xserver.run("xdotool", "key", "ctrl+alt+shift+r")
        overlay = xserver.wait_for_window("^Choose a region$")
        time.sleep(0.5)
        xserver.keys(overlay, "Right", "Down", "shift+Left", "Return")  # move 40 right, 40 down; 40 narrower
        [entry] = wait_for(lambda: history(tmp_path), 60, "the region's description")
    finally:
        viewer.kill()
    width, height = SCREEN
    left, top = width // 4 + 40, height // 4 + 40
    region = Image.open(picture).crop((left, top, left + width // 2 - 40, top + height // 2))
    region.save(tmp_path / "region.png")
    assert entry["source"] == "region"
    assert entry["text"] == expected_caption(tiny_mlp.folder, tmp_path / "region.png", source="region")


def test_describe_screen_reaches_the_running_app(xserver, app, tmp_path, tiny_mlp):
    picture = picture_file(tmp_path, "screen.png", SCREEN, seed=4)
    viewer, _ = show_picture(xserver, picture)
    try:
        result = run_captioner("describe-screen", "--json", env=xserver.env(XDG_CONFIG_HOME=str(tmp_path / "config")))
    finally:
        viewer.kill()
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert answer["by"] == "app" and answer["what"] == "screen" and answer["title"] in (None, "picture")
    expected = expected_description(tiny_mlp.folder, picture, source="screen", title=answer["title"])
    assert same_description(answer, expected)
    assert [e["text"].splitlines()[0] for e in history(tmp_path)] == [answer["spoken"]]  # the app kept it

    second = subprocess.run([sys.executable, "-m", "captioner_gui.app.main"], env=xserver.env(), capture_output=True,
                            text=True, timeout=60)
    assert second.returncode == 0 and "already running" in second.stderr  # no second model was loaded


def test_describe_screen_by_itself_when_no_app_runs(xserver, tmp_path, tiny_mlp):
    picture = picture_file(tmp_path, "window.png", (400, 300), seed=5)
    viewer, window = show_picture(xserver, picture, 50, 60)
    try:
        xserver.run("xdotool", "windowfocus", "--sync", window)
        result = run_captioner("describe-screen", "--window", "--json", "--model", tiny_mlp.folder,
                               env=xserver.env(CAPTIONER_SPEECH_DIR=str(tmp_path / "speech"),
                                               XDG_CONFIG_HOME=str(tmp_path / "config")))
        region = run_captioner("describe-screen", "--region", "50,60,400,300", "--no-speech", "--model",
                               tiny_mlp.folder, env=xserver.env(XDG_CONFIG_HOME=str(tmp_path / "config")))
    finally:
        viewer.kill()
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    expected = expected_description(tiny_mlp.folder, picture, source="window", title="picture")
    assert answer["by"] == "itself" and answer["title"] == "picture" and same_description(answer, expected)
    [spoken] = (tmp_path / "speech").glob("*.wav")
    assert loudness(spoken)[1] > 300
    assert region.returncode == 0 and region.stdout.startswith("Photo")  # the picture fills the region


def test_the_first_run_reads_the_screen_before_any_download(xserver, tmp_path):
    """No caption model installed: the app offers the download, and meanwhile "Read the text" and "Describe the
    screen" work: the text read, the picture found, and how to get captions said once."""
    message = Path(__file__).resolve().parent.parent / "resources" / "examples" / "message-with-a-photo.png"
    gui, window = start_gui(xserver, tmp_path, "--models-dir", tmp_path / "no-models")
    viewer = None
    try:
        dialog = xserver.wait_for_window("^Get the model$", timeout=60)
        xserver.keys(dialog, "Escape")  # "Not now"
        viewer, shown = show_picture(xserver, message, 100, 100)
        xserver.run("xdotool", "windowfocus", "--sync", shown)
        env = xserver.env(XDG_CONFIG_HOME=str(tmp_path / "config"))
        text = run_captioner("describe-screen", "--text", "--json", env=env)
        screen = run_captioner("describe-screen", "--json", env=env)
    finally:
        if viewer is not None:
            viewer.kill()
        quit_gui(xserver, window, gui)
    assert text.returncode == 0, text.stderr
    read = json.loads(text.stdout)
    assert read["by"] == "app" and "Hi Sam! This is Chelsea, our new cat." in read["text"] and not read["notes"]
    assert screen.returncode == 0, screen.stderr
    described = json.loads(screen.stdout)
    assert described["by"] == "app" and "Photos from the weekend" in described["text"]
    assert len(described["pictures"]) == 1 and described["pictures"][0]["caption"] == ""
    assert described["notes"] == ["Pictures are not captioned until a caption model is installed: choose Get the "
                                  "model in the File menu (Alt+F, G)."]


@pytest.mark.parametrize("command_is_ctrl", [False, True])
def test_the_macos_hotkeys_backend_runs_on_pynputs_x11_listener(xserver, monkeypatch, command_is_ctrl):
    """macOS's hotkeys come from pynput, whose X11 listener runs here: Settings' key names become pynput's
    hotkeys, a press reaches its action and other keys do not, and close stops listening. As on macOS (where Qt
    calls the Command key "Ctrl"), command_is_ctrl makes "Ctrl" the Command key: Super on X11."""
    monkeypatch.setenv("DISPLAY", xserver.display)
    from captioner_gui.app.hotkeys import PynputHotkeys, parse_hotkey

    pressed = []
    hotkeys = PynputHotkeys(pressed.append, command_is_ctrl=command_is_ctrl)
    for action, text in {"screen": "Ctrl+Alt+Shift+S", "window": "Ctrl+Alt+Shift+F7"}.items():
        hotkeys.grab(action, *parse_hotkey(text))
    with pytest.raises(ValueError, match="unknown key"):
        hotkeys.grab("region", *parse_hotkey("Ctrl+Alt+Shift+NoSuchKey"))
    ctrl = "super" if command_is_ctrl else "ctrl"
    assert hotkeys.start() is None
    try:
        xserver.run("xdotool", "key", "--delay", "60", f"{ctrl}+alt+shift+s")
        xserver.run("xdotool", "key", "--delay", "60", f"{ctrl}+alt+s")  # no hotkey: Shift is missing
        xserver.run("xdotool", "key", "--delay", "60", f"{ctrl}+alt+shift+F7")
        wait_for(lambda: len(pressed) >= 2, 10, "two hotkeys")
        time.sleep(0.5)
        assert pressed == ["screen", "window"]
    finally:
        hotkeys.close()
    xserver.run("xdotool", "key", "--delay", "60", f"{ctrl}+alt+shift+s")
    time.sleep(0.5)
    assert pressed == ["screen", "window"]  # closed: heard no more
