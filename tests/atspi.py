"""The accessibility bus as Orca uses it (AT-SPI), private to a test: a D-Bus session bus of its own, the AT-SPI bus
launcher with accessibility switched on, and a reader in Debian's python3 (which has pyatspi) for the tree and the
events of an app."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

READER = Path(__file__).resolve().parent / "atspi_reader.py"
SYSTEM_PYTHON = "/usr/bin/python3"  # pyatspi is Debian's python3-pyatspi, for the system's Python
BUS_LAUNCHER = "/usr/libexec/at-spi-bus-launcher"


class AccessibilityBus:
    def __init__(self, env: dict):
        for program in (BUS_LAUNCHER, "dbus-daemon", "gdbus"):
            if shutil.which(program) is None:
                raise RuntimeError(f"{program} is missing: install at-spi2-core and dbus-daemon (see .ci/run).")
        read, write = os.pipe()
        self.daemon = subprocess.Popen(["dbus-daemon", "--session", "--nofork", f"--print-address={write}"],
                                       pass_fds=(write,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(write)
        with os.fdopen(read) as pipe:
            address = pipe.readline().strip()
        self.env = {**env, "DBUS_SESSION_BUS_ADDRESS": address, "QT_LINUX_ACCESSIBILITY_ALWAYS_ON": "1",
                    "NO_AT_BRIDGE": "0"}
        self.launcher = subprocess.Popen([BUS_LAUNCHER, "--launch-immediately"], env=self.env,
                                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self._wait_for_launcher()
        self.watchers: list[subprocess.Popen] = []

    def _wait_for_launcher(self) -> None:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            done = subprocess.run(["gdbus", "call", "--session", "--dest", "org.a11y.Bus", "--object-path",
                                   "/org/a11y/bus", "--method", "org.freedesktop.DBus.Properties.Set",
                                   "org.a11y.Status", "IsEnabled", "<true>"], env=self.env, capture_output=True)
            if done.returncode == 0:
                return
            time.sleep(0.2)
        raise RuntimeError("the AT-SPI bus launcher did not start")

    def tree(self, app: str, timeout: float = 30) -> dict:
        """The app's accessible tree (see atspi_reader.py), once the app is on the bus."""
        deadline = time.monotonic() + timeout
        while True:
            done = subprocess.run([SYSTEM_PYTHON, str(READER), "tree", app], env=self.env, capture_output=True,
                                  text=True, timeout=60)
            tree = json.loads(done.stdout) if done.returncode == 0 and done.stdout.strip() else None
            if tree is not None or time.monotonic() > deadline:
                if tree is None:
                    raise AssertionError(f"{app} is not on the accessibility bus: {done.stderr[-2000:]}")
                return tree
            time.sleep(0.5)

    def watch(self, app: str, path: Path) -> None:
        """Starts writing the app's events to `path` (see atspi_reader.py); returns once it listens."""
        path.unlink(missing_ok=True)
        self.watchers.append(subprocess.Popen([SYSTEM_PYTHON, str(READER), "events", app, str(path)], env=self.env,
                                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        deadline = time.monotonic() + 20
        while not (path.is_file() and "listening" in path.read_text()):
            if time.monotonic() > deadline:
                raise RuntimeError("the AT-SPI event reader did not start")
            time.sleep(0.1)

    def close(self) -> None:
        for process in (*self.watchers, self.launcher, self.daemon):
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()


def events(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.is_file() else []


def nodes(tree: dict):
    """Every node of a tree, depth first."""
    waiting = [tree]
    while waiting:
        node = waiting.pop()
        yield node
        waiting.extend(reversed(node["children"]))


def showing(tree: dict):
    """The nodes a user can reach: those showing on the screen."""
    return [node for node in nodes(tree) if "showing" in node["states"]]
