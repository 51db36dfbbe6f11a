"""Running the `captioner` command as a user would, in a child process."""

import os
import subprocess
import sys


def run_captioner(*args, env=None, timeout=600, cwd=None):
    environment = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "captioner_gui", *map(str, args)], capture_output=True, text=True,
                          env=environment, timeout=timeout, cwd=cwd)


def one_line_error(result) -> str:
    """The message of a command that failed as a user's mistake should: exit status 1 and one line, no
    traceback."""
    assert result.returncode == 1, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]
