"""Past descriptions, kept between runs as JSON lines (one object per description) that other programs can read.

Thumbnails are small PNG files in a folder beside the history file, named in each line. Only the user can read
any of it (folders 0700, files 0600): descriptions of the screen can hold mail, banking, passwords. The file is
trimmed to a limit, oldest first, by writing a new file and renaming it over the old one, so that a process killed
at any moment leaves a history the next start reads. No Qt here."""

from __future__ import annotations

import json
import os
import shutil
import uuid
from dataclasses import asdict, dataclass, fields
from pathlib import Path

DEFAULT_LIMIT = 1000  # entries kept on disk, unless Settings say otherwise
_PRIVATE_FILE = 0o600
_PRIVATE_FOLDER = 0o700


def data_dir() -> Path:
    """CAPTIONER_DATA, else the user's data folder (history lives there; models have their own folder)."""
    if os.environ.get("CAPTIONER_DATA"):
        return Path(os.environ["CAPTIONER_DATA"]).expanduser()
    from platformdirs import user_data_path

    return user_data_path("captioner", appauthor=False)


@dataclass
class HistoryEntry:
    time: str  # ISO 8601, local time with its offset
    text: str
    source: str  # what was described: a file path, or a Target ("clipboard", "screen", ...)
    model: str = ""
    seconds: float = 0.0
    thumbnail: str = ""  # a file name in the thumbnails folder; empty when there is none


def entry_from_record(record: object) -> HistoryEntry | None:
    """The entry a history line holds, or None when it is not one (wrong types, missing text). A thumbnail that is
    not a bare file name ("../", an absolute path) is dropped: the entry stays, without a picture."""
    if not isinstance(record, dict):
        return None
    values = {}
    for field in fields(HistoryEntry):
        if field.name not in record:
            continue
        value = record[field.name]
        if field.name == "seconds":
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                return None
            value = float(value)
        elif not isinstance(value, str):
            return None
        values[field.name] = value
    if not {"time", "text", "source"} <= values.keys():
        return None
    if not is_thumbnail_name(values.get("thumbnail", "")):
        values["thumbnail"] = ""
    return HistoryEntry(**values)


def is_thumbnail_name(name: str) -> bool:
    """A bare file name: nothing that leads out of the thumbnails folder (no "../", no absolute path)."""
    return (bool(name) and name not in (".", "..") and not any(c in name for c in "/\\:\0")
            and Path(name).name == name)


class History:
    """The history file and its thumbnails. A damaged line is skipped, never a reason to lose the others."""

    def __init__(self, folder: Path | None = None, limit: int = DEFAULT_LIMIT):
        self.folder = folder or data_dir()
        self.path = self.folder / "history.jsonl"
        self.thumbnails = self.folder / "thumbnails"
        self.limit = limit

    def entries(self) -> list[HistoryEntry]:
        """Oldest first."""
        entries = []
        for line in self._lines():
            try:
                entry = entry_from_record(json.loads(line))
            except ValueError:  # a damaged line (a torn write, a hand edit)
                continue
            if entry is not None:
                entries.append(entry)
        return entries

    def add(self, entry: HistoryEntry, thumbnail_png: bytes | None = None) -> HistoryEntry:
        """Appends one entry (and writes its thumbnail); returns it with the thumbnail's name filled in. Drops the
        oldest entries beyond the limit. Raises OSError when the disk refuses (full, no permission)."""
        self._make_folder(self.folder)
        if thumbnail_png:
            self._make_folder(self.thumbnails)
            os.chmod(self.thumbnails, _PRIVATE_FOLDER)  # one made by an older version may be readable by others
            entry.thumbnail = f"{uuid.uuid4().hex}.png"
            _write_private(self.thumbnails / entry.thumbnail, thumbnail_png)
        line = json.dumps(asdict(entry), ensure_ascii=False) + "\n"
        descriptor = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, _PRIVATE_FILE)
        with open(descriptor, "ab") as file:
            if file.tell() > 0 and not _ends_with_newline(self.path):
                line = "\n" + line  # a line torn by a killed process stays apart from this one
            file.write(line.encode("utf-8", errors="replace"))  # a file name may hold undecodable bytes
        os.chmod(self.path, _PRIVATE_FILE)  # a file from an older version may be readable by others
        self.trim()
        return entry

    def trim(self) -> None:
        """Keeps the newest `limit` entries (and the damaged lines among them); deletes the thumbnails no kept line
        names (those of the dropped lines, and any a killed process left behind). Atomic: a new file replaces the
        old one."""
        for stale in self.folder.glob(f".{self.path.name}.*.tmp"):  # left by a process killed while trimming
            stale.unlink(missing_ok=True)
        lines = self._lines()
        readable = [number for number, line in enumerate(lines) if _entry_or_none(line) is not None]
        if len(readable) <= self.limit:
            return
        kept = lines[readable[len(readable) - self.limit]:] if self.limit > 0 else []
        temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        try:
            _write_private(temporary, "".join(line + "\n" for line in kept).encode("utf-8"), sync=True)
            os.replace(temporary, self.path)
        finally:
            temporary.unlink(missing_ok=True)
        self._delete_unnamed_thumbnails(kept)

    def thumbnail_path(self, entry: HistoryEntry) -> Path | None:
        if not is_thumbnail_name(entry.thumbnail):
            return None
        path = self.thumbnails / entry.thumbnail
        return path if path.is_file() else None

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)
        shutil.rmtree(self.thumbnails, ignore_errors=True)

    def _lines(self) -> list[str]:
        if not self.path.is_file():
            return []
        text = self.path.read_text(encoding="utf-8", errors="replace")
        return [line for line in text.splitlines() if line.strip()]

    def _delete_unnamed_thumbnails(self, kept_lines: list[str]) -> None:
        named = {entry.thumbnail for line in kept_lines for entry in [_entry_or_none(line)] if entry is not None}
        if not self.thumbnails.is_dir():
            return
        for path in self.thumbnails.iterdir():
            if path.suffix == ".png" and path.name not in named:
                path.unlink(missing_ok=True)

    @staticmethod
    def _make_folder(folder: Path) -> None:
        """Creates the folder (and its parents) readable by the user only."""
        if not folder.is_dir():
            folder.mkdir(mode=_PRIVATE_FOLDER, parents=True, exist_ok=True)
            os.chmod(folder, _PRIVATE_FOLDER)  # mkdir's mode is reduced by the umask; be exact


def _entry_or_none(line: str) -> HistoryEntry | None:
    try:
        return entry_from_record(json.loads(line))
    except ValueError:
        return None


def _ends_with_newline(path: Path) -> bool:
    with path.open("rb") as file:
        file.seek(-1, os.SEEK_END)
        return file.read(1) == b"\n"


def _write_private(path: Path, data: bytes, sync: bool = False) -> None:
    """Writes a new file that only the user can read."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, _PRIVATE_FILE)
    with open(descriptor, "wb") as file:
        file.write(data)
        if sync:
            file.flush()
            os.fsync(file.fileno())
    os.chmod(path, _PRIVATE_FILE)
