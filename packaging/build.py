"""Builds the app bundle for this operating system and packs it for people who have never used pip.

    python packaging/build.py [--models DIR] [--no-installer]

- PyInstaller (build.spec) makes the folder `dist/captioner/` (macOS: `dist/Captioner.app`).
- Linux: `dist/captioner-VERSION-linux-ARCH.tar.gz`.
- macOS: `dist/captioner-VERSION-macos-ARCH.dmg` (hdiutil).
- Windows: `dist/captioner-VERSION-windows-setup.exe` with Inno Setup's compiler (iscc), and a .zip of the folder.
- `--models DIR` makes an offline bundle that carries that models folder.

It prints the size of the folder, of what it is made of, and of the package.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DIST = ROOT / "dist"
sys.path.insert(0, str(ROOT))
from captioner_gui import __version__  # noqa: E402

CPU_TORCH = "pip install torch torchvision --index-url https://download.pytorch.org/whl/cpu"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", type=Path, help="a models folder to put in the bundle (an offline bundle)")
    parser.add_argument("--no-installer", action="store_true", help="build the folder only, do not pack it")
    args = parser.parse_args(argv)

    problem = check_tools(args.models)
    if problem:
        print(f"build: {problem}", file=sys.stderr)
        return 1
    folder = run_pyinstaller(args.models)
    report_size(folder)
    if args.no_installer:
        return 0
    for package in pack(folder):
        print(f"{package.relative_to(ROOT)}: {megabytes(package.stat().st_size)}")
    return 0


def check_tools(models: Path | None) -> str | None:
    try:
        import PyInstaller  # noqa: F401
        import torch
    except ImportError as exc:
        return f"{exc.name} is missing: pip install -e . pyinstaller"
    if models and not any(models.glob("*/manifest.json")):
        return f"{models} holds no model (no */manifest.json): download one first with captioner models download coco"
    if torch.version.cuda:
        print(f"build: this torch is a CUDA build ({torch.__version__}); the bundle will carry CUDA's libraries "
              f"(several GB). For the small CPU bundle, first: {CPU_TORCH}", file=sys.stderr)
    return None


def run_pyinstaller(models: Path | None) -> Path:
    env = dict(os.environ)
    env.pop("CAPTIONER_BUNDLE_MODELS", None)
    if models:
        env["CAPTIONER_BUNDLE_MODELS"] = str(models.resolve())
    subprocess.run([sys.executable, "-m", "PyInstaller", "--noconfirm", "--log-level", "WARN",
                    "--distpath", str(DIST), "--workpath", str(ROOT / "build"), str(ROOT / "build.spec")],
                   check=True, env=env, cwd=ROOT)
    return DIST / "captioner"


def pack(folder: Path) -> list[Path]:
    arch = platform.machine().lower().replace("amd64", "x86_64")
    if sys.platform.startswith("linux"):
        return [pack_tar(folder, DIST / f"captioner-{__version__}-linux-{arch}.tar.gz")]
    if sys.platform == "darwin":
        dmg = DIST / f"captioner-{__version__}-macos-{arch}.dmg"
        dmg.unlink(missing_ok=True)
        subprocess.run(["hdiutil", "create", "-volname", "Captioner", "-srcfolder", str(DIST / "Captioner.app"),
                        "-format", "UDZO", str(dmg)], check=True)
        return [dmg]
    packages = [Path(shutil.make_archive(str(DIST / f"captioner-{__version__}-windows-{arch}"), "zip",
                                         DIST, folder.name))]
    iscc = shutil.which("iscc") or shutil.which(r"C:\Program Files (x86)\Inno Setup 6\ISCC.exe")
    if not iscc:
        print("build: Inno Setup's compiler (iscc) was not found, so no setup.exe was made: "
              "install Inno Setup 6 (https://jrsoftware.org/isinfo.php) or: choco install innosetup", file=sys.stderr)
        return packages
    subprocess.run([iscc, f"/DAppVersion={__version__}", f"/DSourceDir={folder}", f"/O{DIST}",
                    str(ROOT / "packaging" / "windows" / "captioner.iss")], check=True)
    return packages + [DIST / f"captioner-{__version__}-windows-setup.exe"]


def pack_tar(folder: Path, archive: Path) -> Path:
    """A tar.gz whose one top folder is `captioner/` (at the gzip program's own default level, 6)."""
    with tarfile.open(archive, "w:gz", compresslevel=6) as tar:
        tar.add(folder, arcname=folder.name)
    return archive


def report_size(folder: Path) -> None:
    parts: dict[str, int] = {}
    for path in folder.rglob("*"):
        if path.is_file() and not path.is_symlink():
            relative = path.relative_to(folder).parts
            top = relative[1] if relative[0] == "_internal" and len(relative) > 1 else relative[0]
            parts[top] = parts.get(top, 0) + path.stat().st_size
    print(f"{folder.relative_to(ROOT)}: {megabytes(sum(parts.values()))}")
    for name, size in sorted(parts.items(), key=lambda item: -item[1])[:8]:
        print(f"  {name:<28} {megabytes(size)}")


def megabytes(size: int) -> str:
    return f"{size / 1e6:,.0f} MB"


if __name__ == "__main__":
    raise SystemExit(main())
