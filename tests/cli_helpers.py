"""Running the `captioner` command as a user would, in a child process."""

import os
import subprocess
import sys


def run_captioner(*args, env=None, timeout=600, cwd=None):
    environment = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "captioner_gui", *map(str, args)], capture_output=True, text=True,
                          env=environment, timeout=timeout, cwd=cwd)
