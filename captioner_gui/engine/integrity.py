"""Is an installed file still the file that was installed? Sizes and SHA-256 digests, against the pinned table
(pins.py) or, for files without a pin, against the digest recorded in their folder when they were installed."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from captioner_gui.i18n import _

from .errors import CaptionerError
from .pins import Pin

CHECKSUMS_NAME = "checksums.json"  # in a folder: {file name: {"size": bytes, "sha256": hex}}


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def recorded(path: Path) -> Pin | None:
    """The size and digest recorded for a file when it was installed, if any."""
    entry = _read_records(path.parent).get(path.name)
    if not isinstance(entry, dict):
        return None
    return Pin("", entry.get("size"), entry.get("sha256"))


def record(paths: list[Path]) -> None:
    """Records the size and digest of files (in their folders' checksums.json), for `models verify`."""
    by_folder: dict[Path, list[Path]] = {}
    for path in paths:
        by_folder.setdefault(path.parent, []).append(path)
    for folder, files in by_folder.items():
        records = _read_records(folder)
        for path in files:
            records[path.name] = {"size": path.stat().st_size, "sha256": file_sha256(path)}
        tmp = folder / (CHECKSUMS_NAME + ".tmp")
        tmp.write_text(json.dumps(records, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        os.replace(tmp, folder / CHECKSUMS_NAME)


def _read_records(folder: Path) -> dict:
    try:
        data = json.loads((folder / CHECKSUMS_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def problem_with(path: Path, expected: Pin | None, hash_it: bool = True) -> str:
    """What is wrong with an installed file ('' when nothing is): its size or digest differs from what is
    expected, or, for a safetensors file, its header does not fit the file. Without `hash_it`, only the cheap
    checks run (size and header)."""
    size = path.stat().st_size
    if expected is not None and expected.size is not None and size != expected.size:
        return _("{file} has {size} bytes instead of {expected}").format(file=path.name, size=f"{size:,}",
                                                                          expected=f"{expected.size:,}")
    if path.suffix == ".safetensors":
        from .checkpoint import read_safetensors_header

        try:
            read_safetensors_header(path)
        except CaptionerError:
            return _("{file} is cut short or altered (its safetensors header does not fit the file)").format(
                file=path.name)
    if hash_it and expected is not None and expected.sha256 and file_sha256(path) != expected.sha256:
        return _("{file} does not have the SHA-256 it was installed with").format(file=path.name)
    return ""
