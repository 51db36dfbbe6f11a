"""Where loading keeps what it makes from a model's files: the `.safetensors` copy of a released `.pt`, and the CPU
form (`onnx/`).

First the model's own folder. Where that cannot be written (a system-wide install, a read-only share, a full
disk), the user's cache folder, in a folder named by the digest of the model's files, so that a changed file
never meets what was made from the old one. Nothing else is ever written: a manifest's paths reach the shared
files of the models folder at most, and those are only read.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path

from .manifest import Manifest
from .staging import remove_stale, staged
from .tokenizer import TOKENIZER_FILES

DIGESTS = "digests.json"  # in the cache: {file: [size, mtime_ns, sha256]}, so that a file is hashed only once
CPU_FORM_WORK = ".onnx-"  # the start of the temporary folder's name that a CPU form is written into
# The CPU form's and the weights copy's temporary names, and the copy's of earlier captioners (which took no lock).
STAGING_PATTERNS = (f"{CPU_FORM_WORK}*", ".*.safetensors-*", "*.safetensors.tmp")


def cache_root() -> Path:
    """CAPTIONER_CACHE, else the models' part of the user's cache folder (~/.cache/captioner/models on Linux)."""
    if os.environ.get("CAPTIONER_CACHE"):
        return Path(os.environ["CAPTIONER_CACHE"]).expanduser()
    from platformdirs import user_cache_path

    return user_cache_path("captioner", appauthor=False) / "models"


class Places:
    """The folders where a derived file is looked for and written, in order: a folder of the model's own (when
    it has one for that file), then the model's folder in the cache, which is named only when it is needed (that
    hashes the model's files, once for each version of them)."""

    def __init__(self, manifest: Manifest, own: Path | None):
        self.manifest, self.own = manifest, own
        self._cache_folder: Path | None = None

    def __iter__(self) -> Iterator[Path]:
        """Where to write, in order."""
        if self.own is not None:
            yield self.own
        yield self.cache_folder()

    def holding(self) -> Iterator[Path]:
        """Where to look for what was written: the cache only when there is one (most users never need it, and
        their models' files are then not hashed)."""
        if self.own is not None:
            yield self.own
        if cache_root().is_dir():
            yield self.cache_folder()

    def cache_folder(self) -> Path:
        if self._cache_folder is None:
            self._cache_folder = cache_root() / model_digest(self.manifest)[:32]
        return self._cache_folder


def cpu_form_places(manifest: Manifest) -> Places:
    """Where the CPU form's folder goes: the model's folder, else the cache."""
    return Places(manifest, manifest.folder)


def weights_copy_places(manifest: Manifest) -> Places:
    """Where the .safetensors copy of released weights goes: beside them when they are in the model's own folder,
    else (weights shared in the models folder) only in the cache."""
    weights = manifest.weights_path
    return Places(manifest, weights.parent if weights.parent.is_relative_to(manifest.folder) else None)


def source_files(manifest: Manifest) -> list[Path]:
    """The model's files that its derived files are made from."""
    files = [manifest.weights_path, manifest.clip_weights_path, manifest.clip_model_path]
    files += [manifest.tokenizer_path / name for name in TOKENIZER_FILES]
    return [path for path in files if path is not None]


def model_digest(manifest: Manifest) -> str:
    """SHA-256 over the manifest and the SHA-256 of each of the model's files (those that exist)."""
    digest = hashlib.sha256(manifest.path.read_bytes())
    known = _read_digests()
    learned = {}
    for path in source_files(manifest):
        try:
            stat = path.stat()
        except OSError:
            continue
        stamp = [stat.st_size, stat.st_mtime_ns]
        entry = known.get(str(path))
        if not (isinstance(entry, list) and entry[:2] == stamp and len(entry) == 3):
            from .integrity import file_sha256

            entry = stamp + [file_sha256(path)]
            learned[str(path)] = entry
        digest.update(f"{path.name}\0{entry[2]}\0".encode())
    if learned:
        _write_digests(known | learned)
    return digest.hexdigest()


def _read_digests() -> dict:
    try:
        data = json.loads((cache_root() / DIGESTS).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_digests(digests: dict) -> None:
    root = cache_root()
    try:
        root.mkdir(parents=True, exist_ok=True)
        with staged(root, f".{DIGESTS}-") as tmp:
            tmp.write_text(json.dumps(digests), encoding="utf-8")
            os.replace(tmp, root / DIGESTS)
    except OSError:
        pass  # no cache: the files are hashed again next time


def remove_leftovers(manifest: Manifest) -> None:
    """Removes what writers stopped half-way left in the model's folder and in the cache: the temporary names that
    no running process holds."""
    folders = [manifest.folder]
    if manifest.weights_path.parent.is_relative_to(manifest.folder):
        folders.append(manifest.weights_path.parent)
    root = cache_root()
    folders += [root, *_subfolders(root)]
    for folder in dict.fromkeys(folders):
        for pattern in STAGING_PATTERNS + (f".{DIGESTS}-*",):
            remove_stale(folder, pattern)


def _subfolders(root: Path) -> list[Path]:
    try:
        return [path for path in root.iterdir() if path.is_dir() and not path.name.startswith(".")]
    except OSError:
        return []
