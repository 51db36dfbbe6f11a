"""The language, for real: `captioner-gui` in an X server, switched to Simplified Chinese from its Settings with the
keyboard, starts again in Chinese, and its Chinese words are drawn (not as empty boxes)."""

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from builders import noise_image
from captioner_gui import i18n
from x11 import ARTIFACTS, Xvfb, gui_command, wait_for


@pytest.fixture
def xserver():
    server = Xvfb()
    yield server
    server.close()


def start(xserver, tmp_path, *args, log: str = "gui.log") -> subprocess.Popen:
    """`captioner-gui` with its settings, history and fonts' cache in the test's folder. Its output goes to a file:
    the app it restarts inherits it, and would keep a pipe open."""
    environment = xserver.env(XDG_CONFIG_HOME=str(tmp_path / "config"), XDG_CACHE_HOME=str(tmp_path / "cache"),
                              CAPTIONER_DATA=str(tmp_path / "data"), CAPTIONER_PLAYER="true")
    with open(tmp_path / log, "w") as output:
        return subprocess.Popen([*gui_command(), *map(str, args)], env=environment, stdout=output,
                                stderr=subprocess.STDOUT)


def window_pid(xserver, window: str) -> int:
    return int(xserver.run("xdotool", "getwindowpid", window).strip())


def quit_app(xserver, window: str, pid: int) -> None:
    """Ctrl+Q, as a user quits; an app that is still there after that is ended (it is this test's own)."""
    try:
        xserver.keys(window, "ctrl+q")
        wait_for(lambda: not alive(pid), 30, "the app to quit")
    finally:
        if alive(pid):
            os.kill(pid, signal.SIGTERM)


def alive(pid: int) -> bool:
    """Whether the process runs (a zombie, left to a parent that does not wait for it, does not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def without_fonts_for(text: str, config: Path) -> None:
    """A fontconfig file in the app's own configuration folder that hides every font with a glyph for any
    character of `text`: the app then draws what a machine without Chinese fonts would (boxes)."""
    files = set()
    for character in {c for c in text if ord(c) > 0x2e80}:
        listed = subprocess.run(["fc-list", f":charset={ord(character):x}", "file"], capture_output=True, text=True,
                                check=True).stdout
        files |= {line.strip().rstrip(":") for line in listed.splitlines() if line.strip()}
    assert files, "no Chinese font to hide: install fonts-wqy-zenhei"
    globs = "".join(f"<glob>{name}</glob>" for name in sorted(files))
    folder = config / "fontconfig"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "fonts.conf").write_text('<?xml version="1.0"?><!DOCTYPE fontconfig SYSTEM "fonts.dtd">'
                                       f"<fontconfig><selectfont><rejectfont>{globs}</rejectfont></selectfont>"
                                       "</fontconfig>\n", encoding="utf-8")


def top(path: Path) -> np.ndarray:
    """The top third of a screenshot of the window: menus, the drop area and the first row of buttons, which look
    the same whatever the app is doing (the status bar below does not)."""
    picture = np.asarray(Image.open(path).convert("L"))
    return picture[: picture.shape[0] // 3]


def differing(first: np.ndarray, second: np.ndarray) -> float:
    """The share of pixels that differ (over the part both pictures have)."""
    height, width = min(first.shape[0], second.shape[0]), min(first.shape[1], second.shape[1])
    return float(np.mean(first[:height, :width] != second[:height, :width]))


def history(tmp_path) -> list[dict]:
    path = tmp_path / "data" / "history.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []


def test_choosing_chinese_in_settings_restarts_the_app_in_chinese(xserver, tmp_path, tiny_mlp):
    i18n.use("zh_CN")
    title = i18n._("Captioner")  # conftest puts English back
    drop_words = i18n._("Drop images here\nor press Enter to open one")
    chinese_window = f"^{re.escape(title)}$"
    photos = [tmp_path / "photo.png", tmp_path / "另一张照片.png"]
    for seed, photo in enumerate(photos):
        noise_image(seed, (320, 240)).save(photo)
    pids = []
    try:
        gui = start(xserver, tmp_path, "--model", tiny_mlp.folder, photos[0])
        window = xserver.wait_for_window("^Captioner$")
        wait_for(lambda: history(tmp_path), 90, "the first photo's description")
        english = xserver.screenshot(window, tmp_path / "english.png")

        # Settings (Ctrl+Comma), Language (Alt+U), the last language (End: 简体中文), OK (Enter); then the question
        # "Start it again now?", whose default answer is Restart now (Enter).
        xserver.keys(window, "ctrl+comma")
        xserver.keys(xserver.wait_for_window("^Settings$"), "alt+u", "End", "Return")
        xserver.keys(xserver.wait_for_window("^Language$"), "Return")
        assert gui.wait(60) == 0, (tmp_path / "gui.log").read_text()

        # A new app, started by the old one once it had let go of its socket and hotkeys, speaks Chinese; the
        # settings and the history are kept, and the photo given at the first start is not described again.
        try:
            window = xserver.wait_for_window(chinese_window, timeout=120)
        except TimeoutError as exc:  # what the app that was to start again said
            raise AssertionError(f"{exc}\n{(tmp_path / 'gui.log').read_text()}") from None
        pids.append(window_pid(xserver, window))
        assert pids[0] != gui.pid
        settings = (tmp_path / "config" / "captioner" / "captioner.conf").read_text(encoding="utf-8")
        assert "language=zh_CN" in settings
        time.sleep(2)
        chinese = xserver.screenshot(window, tmp_path / "chinese.png")
        handed = start(xserver, tmp_path, photos[1], log="second.log")  # a second captioner-gui hands it over
        assert handed.wait(60) == 0
        wait_for(lambda: history(tmp_path)[1:], 90, "the second photo's description")
        assert [entry["source"] for entry in history(tmp_path)] == [str(photo) for photo in photos]
        assert "已在运行" in (tmp_path / "second.log").read_text(encoding="utf-8")
        time.sleep(1)
        shown = xserver.screenshot(window, tmp_path / "chinese-described.png")
        ARTIFACTS.mkdir(exist_ok=True)
        Image.open(shown).save(ARTIFACTS / "app-window-zh.png", optimize=True)
        quit_app(xserver, window, pids[0])

        # The same window where no font has Chinese glyphs: its words are boxes.
        without_fonts_for(drop_words + title, tmp_path / "config")
        start(xserver, tmp_path, log="boxes.log")
        window = xserver.wait_for_window(chinese_window, timeout=120)
        pids.append(window_pid(xserver, window))
        time.sleep(2)
        boxes = xserver.screenshot(window, tmp_path / "boxes.png")
        quit_app(xserver, window, pids[1])
    finally:
        for pid in pids:
            if alive(pid):
                os.kill(pid, signal.SIGTERM)

    # The menus, the drop area and the buttons changed their words, and those words are drawn as Chinese glyphs: a
    # window drawn with boxes for them would look the same as the one without Chinese fonts.
    assert differing(top(chinese), top(english)) > 0.02
    assert differing(top(chinese), top(boxes)) > 0.02
