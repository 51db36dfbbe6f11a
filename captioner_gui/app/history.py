"""Past descriptions, kept between runs as JSON lines (one object per description) that other programs can read.

Thumbnails are small PNG files in a folder beside the history file, named in each line. No Qt here."""

from __future__ import annotations

import json
import os
import shutil
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path


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
    source: str  # what was described: a file path, "clipboard" or "screen"
    model: str = ""
    seconds: float = 0.0
    thumbnail: str = ""  # a file name in the thumbnails folder; empty when there is none


class History:
    """The history file and its thumbnails. A damaged line is skipped, never a reason to lose the others."""

    def __init__(self, folder: Path | None = None):
        self.folder = folder or data_dir()
        self.path = self.folder / "history.jsonl"
        self.thumbnails = self.folder / "thumbnails"

    def entries(self) -> list[HistoryEntry]:
        """Oldest first."""
        if not self.path.is_file():
            return []
        entries = []
        for line in self.path.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                record = json.loads(line)
                entries.append(HistoryEntry(**{k: record[k] for k in HistoryEntry.__dataclass_fields__
                                               if k in record}))
            except (ValueError, TypeError, KeyError):
                continue
        return entries

    def add(self, entry: HistoryEntry, thumbnail_png: bytes | None = None) -> HistoryEntry:
        """Appends one entry (and writes its thumbnail); returns it with the thumbnail's name filled in."""
        self.folder.mkdir(parents=True, exist_ok=True)
        if thumbnail_png:
            self.thumbnails.mkdir(exist_ok=True)
            entry.thumbnail = f"{uuid.uuid4().hex}.png"
            (self.thumbnails / entry.thumbnail).write_bytes(thumbnail_png)
        with self.path.open("a", encoding="utf-8") as file:
            file.write(json.dumps(asdict(entry), ensure_ascii=False) + "\n")
        return entry

    def thumbnail_path(self, entry: HistoryEntry) -> Path | None:
        path = self.thumbnails / entry.thumbnail if entry.thumbnail else None
        return path if path is not None and path.is_file() else None

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)
        shutil.rmtree(self.thumbnails, ignore_errors=True)
