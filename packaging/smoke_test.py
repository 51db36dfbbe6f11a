"""Smoke test of the Linux bundle, as a user without Python would meet it. Takes several minutes; not part of CI.

    python packaging/smoke_test.py [--no-build]

1. Builds the bundle (packaging/build.py) unless --no-build, and unpacks the tar.gz into a temporary folder.
2. Writes a tiny model (random weights, the released layout) with the tests' own builders.
3. Runs the unpacked bundle with this machine's Python hidden (root only: a private mount namespace with an empty
   folder mounted over every Python installation), a bare environment, and the working folder outside the project:
   - `captioner --version`;
   - `captioner caption IMAGE --model TINY --decoding greedy --json`: the same caption as the engine run from source;
   - `captioner describe PAGE --text-only --json` of a generated page of text: the text the engine reads from source
     (the text reader's models and onnxruntime are in the bundle);
   - `captioner-gui IMAGE --model TINY` on Qt's offscreen platform: the description appears in the history, as the
     engine words it, and is spoken to a WAV file.
Prints each check and exits 1 at the first that fails.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import shlex
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
from captioner_gui import __version__  # noqa: E402
from screens import text_page  # noqa: E402 (the tests' generated screens)
from x11 import wait_for  # noqa: E402 (the tests' helper)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--no-build", action="store_true", help="test the tar.gz already in dist/")
    args = parser.parse_args(argv)
    if not sys.platform.startswith("linux"):
        print("smoke test: Linux only (it tests the tar.gz bundle)", file=sys.stderr)
        return 1
    if not args.no_build:
        subprocess.run([sys.executable, str(ROOT / "packaging" / "build.py")], check=True)
    archives = sorted((ROOT / "dist").glob(f"captioner-{__version__}-linux-*.tar.gz"))
    if not archives:
        print("smoke test: no bundle in dist/: run python packaging/build.py first", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="captioner-smoke-") as scratch:
        try:
            run_checks(archives[-1], Path(scratch))
        except CheckFailed as failure:
            print(f"FAILED: {failure}", file=sys.stderr)
            return 1
    print("smoke test passed")
    return 0


class CheckFailed(Exception):
    pass


def run_checks(archive: Path, scratch: Path) -> None:
    started = time.monotonic()
    with tarfile.open(archive) as tar:
        tar.extractall(scratch / "unpacked", filter="tar")
    bundle = scratch / "unpacked" / "captioner"
    print(f"unpacked {archive.name} in {time.monotonic() - started:.0f} s")

    model_folder, image = write_tiny_model(scratch)
    greedy, spoken = expected_results(model_folder, image)
    home = scratch / "home"
    home.mkdir()

    version = run_bundled([bundle / "captioner", "--version"], home)
    check(version.stdout.strip() == f"captioner {__version__}", f"captioner --version printed {version.stdout!r}")

    caption = run_bundled([bundle / "captioner", "caption", image, "--model", model_folder,
                           "--decoding", "greedy", "--json"], home)
    [result] = json.loads(caption.stdout)
    check(result.get("caption") == greedy, f"the bundle captioned {result!r}, the engine from source {greedy!r}")

    page = scratch / "page.png"
    text_page(16, lines=6, seed=5).image.save(page)
    described = run_bundled([bundle / "captioner", "describe", page, "--model", model_folder, "--text-only",
                             "--json"], home)
    [result], expected = json.loads(described.stdout), read_from_source(model_folder, page)
    check(bool(result["text"]), "the bundle's text reader read nothing (its models missing?)")
    check(result["text"] == expected, f"the bundle read {result['text']!r}, the engine from source {expected!r}")

    data, speech = scratch / "data", scratch / "speech"
    gui = start_bundled([bundle / "captioner-gui", image, "--model", model_folder], home,
                        {"QT_QPA_PLATFORM": "offscreen", "CAPTIONER_DATA": str(data),
                         "CAPTIONER_SPEECH_DIR": str(speech)})
    try:
        entry = wait_for_history(data / "history.jsonl", gui, timeout=180)
        check(entry["text"] == spoken, f"the app said {entry['text']!r}, the engine from source {spoken!r}")
        try:
            wav = wait_for(lambda: sorted(speech.glob("*.wav")), 30, "speech")[0]
        except TimeoutError:
            raise CheckFailed("the app spoke nothing (no WAV file)") from None
        time.sleep(0.5)  # the speech thread may still be writing it
        check(wav.stat().st_size > 10_000, f"the app's speech is nearly empty ({wav.stat().st_size} bytes)")
        print(f"ok: captioner-gui described the image: {entry['text']!r}, spoken to {wav.name}")
    finally:
        gui.terminate()
        gui.wait(timeout=30)


def write_tiny_model(scratch: Path) -> tuple[Path, Path]:
    from PIL import Image

    from builders import build_model_folder

    model_folder = build_model_folder(scratch / "tiny-model").folder
    image = scratch / "picture.png"
    Image.open(ROOT / "resources" / "examples" / "red-circle-above-blue-square.png").save(image)
    return model_folder, image


def expected_results(model_folder: Path, image: Path) -> tuple[str, str]:
    """The greedy caption, and the app's description (beam search, one line per line), from the engine run from
    source."""
    from captioner_gui.engine import DecodeOptions, load_image, load_model
    from captioner_gui.engine.describe import Describer

    model = load_model(str(model_folder), device="cpu")
    picture = load_image(image)
    [greedy] = model.caption([picture], DecodeOptions(method="greedy"))
    described = Describer(model).describe(picture, str(image), options=DecodeOptions(method="beam"))
    return greedy.text, "\n".join(described.lines())


def read_from_source(model_folder: Path, page: Path) -> str:
    """The text the engine run from source reads on a page."""
    from captioner_gui.engine import load_image, load_model
    from captioner_gui.engine.describe import Describer

    return Describer(load_model(str(model_folder), device="cpu")).describe(load_image(page), text_only=True).text


def python_hidden(command: list[str]) -> list[str]:
    """The command in a private mount namespace where every Python installation on this machine is an empty
    folder, so the bundle can use only what it carries. Needs root and unshare; otherwise the command as it is."""
    if os.geteuid() != 0 or not shutil.which("unshare"):
        return command
    hidden = {Path(sys.base_prefix), Path(sys.prefix), *map(Path, glob.glob("/usr/lib/python3*")),
              *map(Path, glob.glob("/usr/local/lib/python3*"))}
    hidden = sorted(str(path) for path in hidden if path.is_dir() and not ROOT.is_relative_to(path))
    mounts = " && ".join(f"mount -t tmpfs none {shlex.quote(path)}" for path in hidden)
    return ["unshare", "--mount", "sh", "-c", f'{mounts} && exec "$@"', "sh", *command]


def bare_environment(home: Path, extra: dict | None = None) -> dict:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(home), "LANG": "C.UTF-8", "XDG_RUNTIME_DIR": str(home)}
    return env | (extra or {})


def run_bundled(command: list, home: Path) -> subprocess.CompletedProcess:
    command = [str(part) for part in command]
    started = time.monotonic()
    done = subprocess.run(python_hidden(command), cwd=home, env=bare_environment(home), capture_output=True,
                          text=True, timeout=600)
    shown = " ".join([Path(command[0]).name, *command[1:2]])
    check(done.returncode == 0, f"{shown} exited {done.returncode}: {done.stderr.strip()[-2000:]}")
    print(f"ok: {shown} ({time.monotonic() - started:.1f} s): {done.stdout.strip()[:200]}")
    return done


def start_bundled(command: list, home: Path, extra: dict) -> subprocess.Popen:
    command = [str(part) for part in command]
    return subprocess.Popen(python_hidden(command), cwd=home, env=bare_environment(home, extra),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def wait_for_history(path: Path, process: subprocess.Popen, timeout: float) -> dict:
    def first_entry():
        if process.poll() is not None:
            raise CheckFailed(f"captioner-gui exited {process.returncode}: {process.stdout.read()[-2000:]}")
        lines = path.read_text(encoding="utf-8").splitlines() if path.is_file() else []
        return json.loads(lines[0]) if lines else None

    try:
        return wait_for(first_entry, timeout, "the app's description")
    except TimeoutError:
        process.terminate()
        raise CheckFailed(f"captioner-gui wrote no history in {timeout:.0f} s: {process.communicate()[0][-2000:]}")


def check(condition: bool, failure: str) -> None:
    if not condition:
        raise CheckFailed(failure)


if __name__ == "__main__":
    raise SystemExit(main())
