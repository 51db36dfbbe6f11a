"""The history file on its own: its limit, private files, damaged lines, and a process killed while writing it."""

import json
import os
import random
import signal
import subprocess
import sys
import time

import pytest

from captioner_gui.app.history import History, HistoryEntry

PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 64  # stands in for a thumbnail: the history never decodes it


def entry(number: int) -> HistoryEntry:
    return HistoryEntry(time=f"2025-01-01T10:{number // 60 % 60:02d}:{number % 60:02d}+00:00",
                        text=f"description {number}", source=f"/pictures/{number}.png", model="coco", seconds=0.5)


def texts(history: History) -> list[str]:
    return [e.text for e in history.entries()]


def mode(path) -> int:
    return path.stat().st_mode & 0o777


def test_the_oldest_entries_and_their_thumbnails_go_first_beyond_the_limit(tmp_path):
    history = History(tmp_path / "data", limit=5)
    for number in range(8):
        history.add(entry(number), PNG)
    assert texts(history) == [f"description {n}" for n in range(3, 8)]
    kept = {e.thumbnail for e in history.entries()}
    assert {p.name for p in history.thumbnails.iterdir()} == kept  # the dropped ones' thumbnails are deleted
    assert not list(history.folder.glob(".*tmp"))

    history.limit = 2  # the user lowers the limit in Settings
    history.trim()
    assert texts(history) == ["description 6", "description 7"]
    assert len(list(history.thumbnails.iterdir())) == 2


def test_history_files_are_private(tmp_path):
    previous = os.umask(0o022)  # a usual umask: files would be readable by everyone
    try:
        history = History(tmp_path / "data" / "captioner")
        added = history.add(entry(1), PNG)
    finally:
        os.umask(previous)
    assert mode(history.folder) == 0o700
    assert mode(history.thumbnails) == 0o700
    assert mode(history.path) == 0o600
    assert mode(history.thumbnails / added.thumbnail) == 0o600


def test_lines_of_wrong_types_and_thumbnails_outside_the_folder_are_ignored(tmp_path):
    history = History(tmp_path / "data", limit=3)
    history.folder.mkdir()
    outside = tmp_path / "precious.png"
    outside.write_bytes(PNG)
    good = {"time": "2025-01-01T10:00:00+00:00", "text": "a dog", "source": "screen", "model": "coco",
            "seconds": 1, "thumbnail": ""}
    lines = [
        {**good, "time": None},
        {**good, "text": 42},
        {**good, "seconds": "slow"},
        {**good, "text": "escapes", "thumbnail": "../../precious.png"},
        {**good, "text": "absolute", "thumbnail": str(outside)},
        ["not", "an", "object"],
        {**good, "text": "fine"},
    ]
    history.path.write_text("".join(json.dumps(line) + "\n" for line in lines) + "{broken\n")
    assert texts(history) == ["escapes", "absolute", "fine"]
    assert all(history.thumbnail_path(e) is None for e in history.entries())
    for number in range(6):  # trimming drops the lines that named files outside: those files stay
        history.add(entry(number))
    assert outside.read_bytes() == PNG


def test_a_line_torn_by_a_killed_process_does_not_spoil_the_next(tmp_path):
    history = History(tmp_path / "data")
    history.add(entry(1))
    with history.path.open("a") as file:
        file.write('{"time": "2025-01-01T10:00:00+00:00", "text": "torn')  # killed in the middle of a line
    history.add(entry(2))
    assert texts(History(tmp_path / "data")) == ["description 1", "description 2"]


WRITER = """
import sys
from captioner_gui.app.history import History, HistoryEntry
history = History(__import__("pathlib").Path(sys.argv[1]), limit=int(sys.argv[2]))
number = int(sys.argv[3])
while True:
    history.add(HistoryEntry(time="2025-01-01T10:00:00+00:00", text=f"description {number}", source="screen"),
                b"thumbnail" * 100)
    print(number, flush=True)
    number += 1
"""


@pytest.mark.parametrize("seed", [0, 1])
def test_killed_while_writing_and_trimming_the_history_stays_readable(tmp_path, seed):
    """A process that adds entries as fast as it can (every add beyond the limit rewrites the file) is killed with
    SIGKILL at random moments; every time, the next reader finds at least `limit` entries in order, each with its
    thumbnail. A trim that truncated the file before writing it would lose them."""
    limit, folder, start = 300, tmp_path / "data", 0
    rng = random.Random(seed)
    for _round in range(6):
        writer = subprocess.Popen([sys.executable, "-c", WRITER, str(folder), str(limit), str(start)],
                                  stdout=subprocess.PIPE, text=True)
        written = [int(writer.stdout.readline()) for _ in range(limit + 20 if start == 0 else 5)]
        time.sleep(rng.uniform(0, 0.3))
        os.kill(writer.pid, signal.SIGKILL)
        writer.wait()
        history = History(folder, limit=limit)
        numbers = [int(t.split()[1]) for t in texts(history)]
        assert len(numbers) >= limit, f"round {_round}: only {len(numbers)} entries left"
        assert numbers == list(range(numbers[0], numbers[0] + len(numbers)))  # in order, none lost in between
        assert numbers[-1] >= written[-1]
        assert all(history.thumbnail_path(e) is not None for e in history.entries())
        start = numbers[-1] + 1


def test_a_link_in_the_data_folder_is_never_written_re_permissioned_or_trimmed_through(tmp_path):
    """history.jsonl a link to another file, thumbnails/ a link to a folder of photos: the history refuses (one
    message naming the link) and the file, the folder and the photos in it stay as they were."""
    from captioner_gui.app.history import LinkInTheWay

    other = tmp_path / "notes.txt"
    other.write_text("mine\n")
    other.chmod(0o644)
    photos = tmp_path / "photos"
    photos.mkdir()
    photos.chmod(0o755)
    (photos / "holiday.png").write_bytes(PNG)

    linked_file = History(tmp_path / "one", limit=1)
    linked_file.folder.mkdir()
    linked_file.path.symlink_to(other)
    for attempt in (lambda: linked_file.add(entry(1)), linked_file.entries, linked_file.trim):
        with pytest.raises(LinkInTheWay, match="history.jsonl is a link"):
            attempt()
    linked_file.clear()
    assert linked_file.path.is_symlink() and other.read_text() == "mine\n" and mode(other) == 0o644

    linked_folder = History(tmp_path / "two", limit=1)
    for number in range(2):  # a history of an older version, from before the link
        linked_folder.add(entry(number), PNG)
    for thumbnail in linked_folder.thumbnails.iterdir():
        thumbnail.rename(photos / thumbnail.name)
    linked_folder.thumbnails.rmdir()
    linked_folder.thumbnails.symlink_to(photos)
    before = sorted(p.name for p in photos.iterdir())
    for attempt in (lambda: linked_folder.add(entry(2), PNG), linked_folder.trim):
        with pytest.raises(LinkInTheWay, match="thumbnails is a link"):
            attempt()
    linked_folder.clear()
    assert sorted(p.name for p in photos.iterdir()) == before and mode(photos) == 0o755
    assert linked_folder.thumbnails.is_symlink()

    history = History(tmp_path / "three")  # a thumbnail that is a link is not shown
    added = history.add(entry(1), PNG)
    (history.thumbnails / added.thumbnail).unlink()
    (history.thumbnails / added.thumbnail).symlink_to(photos / "holiday.png")
    assert history.thumbnail_path(history.entries()[0]) is None


def test_a_huge_entry_is_cut_and_never_read_whole_twice(tmp_path):
    """An entry holding megabytes of text (written by an older version, or by hand) is cut when read; a new one is
    cut when written; listing the newest and trimming read the file one line at a time."""
    import tracemalloc

    from captioner_gui.app.history import MAX_TEXT

    history = History(tmp_path / "data", limit=30)
    history.folder.mkdir()
    huge = HistoryEntry(time="2025-01-01T10:00:00+00:00", text="word " * 1_000_000, source="screen")
    with history.path.open("w") as file:  # 5 MB in one entry, then 29 entries of 200 KB
        for record in [huge] + [HistoryEntry(huge.time, f"{n} " + "x" * 200_000, "screen") for n in range(29)]:
            file.write(json.dumps(record.__dict__) + "\n")

    tracemalloc.start()
    try:
        newest = history.entries(newest=3)
        first = history.entries(newest=30)[0]
        history.add(HistoryEntry(huge.time, "y" * 1_000_000, "screen"))  # 31 entries: the huge one goes
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 20_000_000  # the file is 11 MB: read whole, and its lines, it took twice that at least
    assert [e.text.split()[0] for e in newest] == ["26", "27", "28"]
    assert first.text.startswith("word word") and len(first.text) < MAX_TEXT + 200 and "Cut here" in first.text
    entries = history.entries()
    assert len(entries) == 30 and entries[0].text.startswith("0 x")
    assert entries[-1].text.startswith("y" * MAX_TEXT + "\n(Cut here")
    assert max(len(line) for line in history.path.read_text().splitlines()) < MAX_TEXT + 200
