"""Past descriptions, kept between runs as JSON lines (one object per description) that other programs can read.

Thumbnails are small PNG files in a folder beside the history file, named in each line. Only the user can read
any of it (folders 0700, files 0600): descriptions of the screen can hold mail, banking, passwords. The file is
trimmed to a limit, oldest first, by writing a new file and renaming it over the old one, so that a process killed
at any moment leaves a history the next start reads.

Nothing is written, re-permissioned or deleted through a symbolic link: a link where the history file or the
thumbnails folder should be (to another file, to a folder of photos) stops the history, which says so (LinkInTheWay)
and leaves the link and what it points at alone. An entry's text is bounded (MAX_TEXT), when written and when read,
and the file is read one line at a time: one huge entry never holds the app up. No Qt here."""

from __future__ import annotations

import json
import os
import stat
import uuid
from collections import deque
from collections.abc import Iterator
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from captioner_gui.engine.names import json_text
from captioner_gui.i18n import _

DEFAULT_LIMIT = 1000  # entries kept on disk, unless Settings say otherwise
_PRIVATE_FILE = 0o600
_PRIVATE_FOLDER = 0o700
MAX_TEXT = 20_000  # characters of an entry's text kept (a screen of text is 2,000-5,000); the rest is cut
MAX_LINE = 8 * MAX_TEXT  # characters of a line that surely holds more text than MAX_TEXT (an escape takes 6)
_NO_FOLLOW = getattr(os, "O_NOFOLLOW", 0)  # not on Windows, where making a link takes an administrator


class LinkInTheWay(OSError):
    """A symbolic link where the history's file or thumbnails folder should be: the history is not kept, and the
    link is left as it is."""

    def __init__(self, path: Path):
        super().__init__(_("{path} is a link to somewhere else, not the history's own file: the history is not kept "
                           "and the link is left alone. Remove it to keep a history again.").format(path=path))
        self.path = path

    def __str__(self) -> str:
        return self.args[0]


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
    values["text"] = bounded(values["text"])
    return HistoryEntry(**values)


def bounded(text: str) -> str:
    """The text, cut after MAX_TEXT characters with a line that says so."""
    if len(text) <= MAX_TEXT:
        return text
    return text[:MAX_TEXT] + "\n" + _("(Cut here: the history keeps the first {count} characters of a "
                                       "description.)").format(count=f"{MAX_TEXT:,}")


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
        self._count: int | None = None  # readable entries in the file, once it has been read through

    def entries(self, newest: int | None = None) -> list[HistoryEntry]:
        """Oldest first; only the `newest` ones where given (the others are read and let go, one at a time).
        Raises LinkInTheWay where the file is a link, OSError where it cannot be read."""
        kept: deque[HistoryEntry] = deque(maxlen=newest)
        count = 0
        for line in self._lines():
            entry = _entry_or_none(line)
            if entry is not None:
                kept.append(entry)
                count += 1
        self._count = count
        return list(kept)

    def add(self, entry: HistoryEntry, thumbnail_png: bytes | None = None) -> HistoryEntry:
        """Appends one entry (its text bounded, and its thumbnail written); returns it with the thumbnail's name
        filled in. Drops the oldest entries beyond the limit. Raises LinkInTheWay where the file or the thumbnails
        folder is a link, OSError when the disk refuses (full, no permission)."""
        self._make_folder(self.folder)
        self._refuse_links()
        entry.text = bounded(entry.text)
        if thumbnail_png:
            entry.thumbnail = f"{uuid.uuid4().hex}.png"
            self._make_folder(self.thumbnails)
            _make_private(self.thumbnails, _PRIVATE_FOLDER)  # one made by an older version may be readable
            with _new_private(self.thumbnails / entry.thumbnail) as file:
                file.write(thumbnail_png)
        line = json_text(asdict(entry)) + "\n"  # UTF-8 whatever a file name holds (names.py)
        descriptor = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT | _NO_FOLLOW, _PRIVATE_FILE)
        try:
            _make_private(self.path, _PRIVATE_FILE, descriptor)  # a file from an older version may be readable
            if _ends_torn(descriptor):
                line = "\n" + line  # a line torn by a killed process stays apart from this one
            os.write(descriptor, line.encode("utf-8"))
        finally:
            os.close(descriptor)
        if self._count is not None:
            self._count += 1
        self.trim()
        return entry

    def trim(self) -> None:
        """Keeps the newest `limit` entries (and the damaged lines among them); deletes the thumbnails no kept line
        names (those of the dropped lines, and any a killed process left behind). Atomic: a new file replaces the
        old one. Nothing is read where the file is known to hold no more than the limit; else it is read through
        (one line at a time) to count, then to copy: a kept line over MAX_LINE (written by an older version) is
        written again with its text cut."""
        self._refuse_links()
        for stale in self.folder.glob(f".{self.path.name}.*.tmp"):  # left by a process killed while trimming
            stale.unlink(missing_ok=True)  # a link of that name is removed, never what it points at
        if self._count is None or self._count > self.limit:  # counted again before dropping: never too many
            self.entries(newest=0)
        if self._count <= self.limit:
            return
        drop, kept, named = self._count - self.limit, False, set()
        temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        try:
            with _new_private(temporary) as out:
                for line in self._lines():
                    entry = _entry_or_none(line)
                    if entry is not None and drop > 0:
                        drop -= 1
                        continue
                    kept = kept or entry is not None  # damaged lines before the first kept entry go too
                    if not kept:
                        continue
                    if entry is not None:
                        named.add(entry.thumbnail)
                        if len(line) > MAX_LINE:
                            line = json_text(asdict(entry))
                    out.write(line.encode("utf-8") + b"\n")
                out.flush()
                os.fsync(out.fileno())
            os.replace(temporary, self.path)
        finally:
            temporary.unlink(missing_ok=True)
        self._count = self.limit
        self._delete_unnamed_thumbnails(named)

    def thumbnail_path(self, entry: HistoryEntry) -> Path | None:
        """The thumbnail's file, where it is one (never a link)."""
        if not is_thumbnail_name(entry.thumbnail) or self.thumbnails.is_symlink():
            return None
        path = self.thumbnails / entry.thumbnail
        try:
            return path if stat.S_ISREG(path.lstat().st_mode) else None
        except OSError:
            return None

    def clear(self) -> None:
        """Deletes the file and the thumbnails; a link in their place is left as it is, and what it points at."""
        self._count = None
        if not self.path.is_symlink():
            self.path.unlink(missing_ok=True)
        if self.thumbnails.is_dir() and not self.thumbnails.is_symlink():
            self._delete_unnamed_thumbnails(named=set())
            try:
                self.thumbnails.rmdir()
            except OSError:
                pass  # something else of the user's is in it: it stays

    def _refuse_links(self) -> None:
        for path in (self.path, self.thumbnails):
            if path.is_symlink():
                raise LinkInTheWay(path)

    def _open_history(self):
        """The history file for reading, never through a link."""
        try:
            descriptor = os.open(self.path, os.O_RDONLY | _NO_FOLLOW)
        except OSError:
            if self.path.is_symlink():
                raise LinkInTheWay(self.path) from None
            raise
        return open(descriptor, "rb")

    def _lines(self) -> Iterator[str]:
        """Each line that is not blank, without its newline; one at a time."""
        if not self.path.exists() and not self.path.is_symlink():
            return
        with self._open_history() as file:
            for raw in file:
                line = raw.decode("utf-8", errors="replace").rstrip("\n")
                if line.strip():
                    yield line

    def _delete_unnamed_thumbnails(self, named: set[str]) -> None:
        """Deletes the PNG files in the thumbnails folder that are not `named`."""
        if self.thumbnails.is_symlink() or not self.thumbnails.is_dir():  # a link to a folder of photos: never
            return
        for path in self.thumbnails.iterdir():
            if path.suffix == ".png" and path.name not in named:
                path.unlink(missing_ok=True)  # a link there is removed itself, never what it points at

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


def _ends_torn(descriptor: int) -> bool:
    """Whether the open file ends inside a line (a write cut off by a killed process)."""
    if os.lseek(descriptor, 0, os.SEEK_END) == 0:
        return False
    os.lseek(descriptor, -1, os.SEEK_END)
    return os.read(descriptor, 1) != b"\n"


def _new_private(path: Path):
    """A new file, open for writing, that only the user can read. Never through a link: a name that is taken is
    an error."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NO_FOLLOW, _PRIVATE_FILE)
    _make_private(path, _PRIVATE_FILE, descriptor)  # the umask may have taken from the mode: be exact
    return open(descriptor, "wb")


def _make_private(path: Path, mode: int, descriptor: int | None = None) -> None:
    """Gives the file (through its open descriptor where there is one) or folder `mode`; never through a link."""
    if descriptor is not None and hasattr(os, "fchmod"):
        os.fchmod(descriptor, mode)
    elif path.is_symlink():
        raise LinkInTheWay(path)
    else:
        os.chmod(path, mode)
