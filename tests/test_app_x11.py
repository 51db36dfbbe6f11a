"""`captioner-gui` in a real X server, driven only by the keyboard as a blind user would drive it."""

import json
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from app_helpers import expected_caption, loudness
from builders import noise_image
from hub_server import HubServer
from test_download import hub_files, online, pins_for
from x11 import ARTIFACTS, Xvfb, gui_command, wait_for


@pytest.fixture
def xserver():
    server = Xvfb()
    yield server
    server.close()


def start_gui(xserver, tmp_path, *args, **env):
    """Starts `captioner-gui` with its settings, history and speech in the test's folder; returns (process,
    window id)."""
    environment = xserver.env(XDG_CONFIG_HOME=str(tmp_path / "config"), CAPTIONER_DATA=str(tmp_path / "data"),
                              CAPTIONER_SPEECH_DIR=str(tmp_path / "speech"), **env)
    gui = subprocess.Popen([*gui_command(), *map(str, args)], env=environment, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True)
    try:
        return gui, xserver.wait_for_window("^Captioner$")
    except TimeoutError:
        gui.kill()
        raise AssertionError(f"no window appeared; the app said: {gui.communicate()[0][-2000:]}") from None


def history(tmp_path):
    path = tmp_path / "data" / "history.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []


def quit_gui(xserver, window, process):
    xserver.keys(window, "ctrl+q")
    try:
        assert process.wait(20) == 0, process.stdout.read()
    finally:
        if process.poll() is None:
            process.kill()


def test_open_an_image_with_the_keyboard_and_hear_it(xserver, tmp_path, tiny_mlp):
    photo = tmp_path / "beach photo.png"
    noise_image(3, (320, 240)).save(photo)
    gui, window = start_gui(xserver, tmp_path, "--model", tiny_mlp.folder)
    try:
        xserver.keys(window, "ctrl+o")
        dialog = xserver.wait_for_window("^Open images$")
        xserver.type(dialog, str(photo))
        xserver.keys(dialog, "Return")
        [entry] = wait_for(lambda: history(tmp_path), 90, "the description in the history file")
        assert entry["text"] == expected_caption(tiny_mlp.folder, photo)
        assert entry["source"] == str(photo)

        # The text field shows it: Copy (Ctrl+Shift+C) copies the field's text.
        xserver.keys(window, "ctrl+shift+c")
        assert wait_for(lambda: xserver.clipboard() == entry["text"], 10, "the description on the clipboard")
        shot = xserver.screenshot(window, tmp_path / "window.png")
        ARTIFACTS.mkdir(exist_ok=True)
        shutil.copy(shot, ARTIFACTS / "app-window.png")

        spoken = wait_for(lambda: sorted((tmp_path / "speech").glob("*.wav")), 30, "speech")
        seconds, rms = loudness(spoken[-1])
        assert seconds > 0.5 and rms > 300
    finally:
        quit_gui(xserver, window, gui)


def test_first_run_downloads_the_model_then_describes(xserver, tmp_path, full_mlp):
    photo = tmp_path / "photo.png"
    noise_image(4, (320, 240)).save(photo)
    models = tmp_path / "models"
    pins = pins_for(hub_files(full_mlp), tmp_path / "pins.json")
    with HubServer(hub_files(full_mlp)) as hub:
        gui, window = start_gui(xserver, tmp_path, "--models-dir", models, photo, **online(hub.url, pins))
        try:
            dialog = xserver.wait_for_window("^Get the model$", timeout=120)
            # The sizes come from the pinned table: the Hub hears nothing until Download (the default button).
            time.sleep(1)
            assert hub.requests == []
            xserver.keys(dialog, "Return")
            [entry] = wait_for(lambda: history(tmp_path), 240, "the description after the download")
        finally:
            quit_gui(xserver, window, gui)
    assert json.loads((models / "coco" / "manifest.json").read_text())["name"] == "coco"
    assert (models / "coco" / "coco_weights.pt").read_bytes() == full_mlp.weights.read_bytes()
    assert entry["source"] == str(photo) and entry["model"] == "coco" and entry["text"]


@pytest.mark.parametrize("signal_number", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_quits_cleanly_and_leaves_no_socket_and_no_speech(xserver, tmp_path, tiny_mlp, signal_number):
    """A logout's SIGTERM (or Ctrl+C's SIGINT) while a description is being spoken: the app quits with 0, its
    socket is gone and no spoken words stay in the temporary folder."""
    photo = tmp_path / "photo.png"
    noise_image(5, (320, 240)).save(photo)
    runtime = Path(tempfile.mkdtemp(prefix="cap-run-"))  # short: a socket's path has a length limit
    temporary = tmp_path / "temporary"
    temporary.mkdir()
    slow_player = f"{sys.executable} -c 'import time; time.sleep(60)'"  # still speaking when the signal comes
    try:
        gui, window = start_gui(xserver, tmp_path, "--model", tiny_mlp.folder, photo, XDG_RUNTIME_DIR=str(runtime),
                                TMPDIR=str(temporary), CAPTIONER_PLAYER=slow_player)
        try:
            wait_for(lambda: history(tmp_path), 90, "the description")
            assert wait_for(lambda: list(runtime.glob("captioner*.socket")), 10, "the app's socket")
            assert wait_for(lambda: list(temporary.rglob("*.wav")), 30, "the sound being played")
            gui.send_signal(signal_number)
            assert gui.wait(30) == 0, gui.stdout.read()
        finally:
            if gui.poll() is None:
                gui.kill()
        assert list(runtime.glob("captioner*")) == []  # (the audio system may keep a folder of its own there)
        assert list(temporary.rglob("*.wav")) == [] and list(temporary.glob("captioner-speech-*")) == []
    finally:
        shutil.rmtree(runtime, ignore_errors=True)
