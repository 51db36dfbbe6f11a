"""A real X server (Xvfb) for the app's end-to-end tests, and the xdotool / xclip moves a user's keyboard makes."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"  # screenshots kept for people to look at


class Xvfb:
    def __init__(self, width: int = 1280, height: int = 800):
        for tool in ("Xvfb", "xdotool", "xclip"):
            if shutil.which(tool) is None:
                raise RuntimeError(f"{tool} is missing: install xvfb, xdotool and xclip (see .ci/run).")
        read, write = os.pipe()
        self.process = subprocess.Popen(["Xvfb", "-displayfd", str(write), "-screen", "0", f"{width}x{height}x24",
                                         "-nolisten", "tcp"], pass_fds=(write,), stderr=subprocess.DEVNULL)
        os.close(write)
        with os.fdopen(read) as pipe:
            self.display = f":{pipe.readline().strip()}"

    def env(self, **extra) -> dict:
        """The environment of a program on this X server (and not on the desktop the tests may run in)."""
        outside = ("WAYLAND_DISPLAY", "XDG_SESSION_TYPE")
        kept = {k: v for k, v in os.environ.items() if k not in outside}
        return {**kept, "DISPLAY": self.display, "QT_QPA_PLATFORM": "xcb", **extra}

    def run(self, *args: str, timeout: float = 30) -> str:
        return subprocess.run(args, env=self.env(), capture_output=True, text=True, timeout=timeout,
                              check=True).stdout

    def wait_for_window(self, name: str, timeout: float = 90) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = subprocess.run(["xdotool", "search", "--onlyvisible", "--name", name], env=self.env(),
                                   capture_output=True, text=True)
            if found.stdout.strip():
                return found.stdout.split()[-1]
            time.sleep(0.2)
        raise TimeoutError(f"no window named {name!r} appeared; the windows shown: {self.window_names()}")

    def window_names(self) -> list[str]:
        """The names of the windows shown (for a test's message when the one it waits for is not there)."""
        found = subprocess.run(["xdotool", "search", "--onlyvisible", "--name", ""], env=self.env(),
                               capture_output=True, text=True)
        names = []
        for window in found.stdout.split():
            named = subprocess.run(["xdotool", "getwindowname", window], env=self.env(), capture_output=True,
                                   text=True)
            names.append(named.stdout.strip())
        return names

    def keys(self, window: str, *keys: str) -> None:
        self.run("xdotool", "windowfocus", "--sync", window)
        self.run("xdotool", "key", "--delay", "60", *keys)

    def type(self, window: str, text: str) -> None:
        self.run("xdotool", "windowfocus", "--sync", window)
        self.run("xdotool", "type", "--delay", "10", text)

    def clipboard(self) -> str:
        return self.run("xclip", "-o", "-selection", "clipboard")

    def screenshot(self, window: str | None, path: Path) -> Path:
        """The window's part of the screen (None: the whole screen), as a PNG."""
        import mss
        from PIL import Image

        if window is None:
            box = None
        else:
            geometry = dict(line.split("=") for line in self.run("xdotool", "getwindowgeometry", "--shell",
                                                                 window).split())
            box = {"left": int(geometry["X"]), "top": int(geometry["Y"]), "width": int(geometry["WIDTH"]),
                   "height": int(geometry["HEIGHT"])}
        previous = os.environ.get("DISPLAY")
        os.environ["DISPLAY"] = self.display
        try:
            with getattr(mss, "MSS", mss.mss)() as screen:
                shot = screen.grab(box or screen.monitors[0])
        finally:
            if previous is None:
                os.environ.pop("DISPLAY")
            else:
                os.environ["DISPLAY"] = previous
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.frombytes("RGB", shot.size, shot.bgra, "raw", "BGRX").save(path)
        return path

    def close(self) -> None:
        self.process.terminate()
        self.process.wait(10)


def gui_command() -> list[str]:
    """`captioner-gui` as installed beside this Python (the README's command), else the module."""
    script = Path(sys.executable).parent / "captioner-gui"
    return [str(script)] if script.is_file() else [sys.executable, "-m", "captioner_gui.app.main"]


def wait_for(condition, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise TimeoutError(f"timed out waiting for {what}")
