"""Files and folders that are written under a temporary name and then put in place, and what a writer that was
killed (kill -9, a crash, an app quit while a model loaded) leaves of them.

A writer holds a lock on `NAME.lock` beside its temporary NAME (fcntl's flock, or msvcrt's lock on Windows) from
before NAME exists until NAME is renamed or removed: the system releases the lock when the writer's process ends,
however it ends. So a temporary NAME whose lock can be taken, or that has no lock file, belongs to no running
process and can go (`remove_stale`); one whose lock is held is being written and is kept, however old it is.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

LOCK_SUFFIX = ".lock"

if sys.platform == "win32":
    import msvcrt

    def _lock(fd: int, wait: bool) -> bool:
        try:
            msvcrt.locking(fd, msvcrt.LK_LOCK if wait else msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True
else:
    import fcntl

    def _lock(fd: int, wait: bool) -> bool:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except OSError:
            return False
        return True


def _lock_of(path: Path) -> Path:
    return path.with_name(path.name + LOCK_SUFFIX)


@contextmanager
def staged(parent: Path, prefix: str) -> Iterator[Path]:
    """A free temporary name in `parent` (starting with `prefix`), locked for as long as the block runs. The caller
    makes a file or a folder there and renames it into place; whatever is left under the name at the end (the
    block failed) is removed. Raises OSError when `parent` cannot be written."""
    while True:
        fd, lock_name = tempfile.mkstemp(prefix=prefix, suffix=LOCK_SUFFIX, dir=parent)
        _lock(fd, wait=True)
        try:
            still_ours = os.path.samestat(os.fstat(fd), os.stat(lock_name))
        except FileNotFoundError:  # taken for stale and removed between its creation and the lock
            still_ours = False
        if still_ours:
            break
        os.close(fd)
    path = Path(lock_name[:-len(LOCK_SUFFIX)])
    try:
        _remove(path)  # a name left by a writer of an older captioner, which took no lock
        yield path
    finally:
        _remove(path)
        _unlock_and_remove(fd, Path(lock_name))


@contextmanager
def held(path: Path, wait: bool = True) -> Iterator[bool]:
    """Holds the lock of a temporary name that is fixed (an import's staging folder) for as long as the block
    runs, waiting for another writer of the same name to finish first; without `wait`, gives False at once when
    another holds it. Raises OSError when the lock file cannot be made."""
    lock = _lock_of(path)
    while True:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        if not _lock(fd, wait):
            os.close(fd)
            yield False
            return
        try:
            if os.path.samestat(os.fstat(fd), os.stat(lock)):
                break
        except FileNotFoundError:
            pass
        os.close(fd)
    try:
        yield True
    finally:
        _unlock_and_remove(fd, lock)


def remove_stale(parent: Path, pattern: str) -> None:
    """Removes the temporary names matching `pattern` in `parent` that no running process holds, with their lock
    files. One that cannot be removed (a read-only folder) is left as it is."""
    try:
        names = sorted(parent.glob(pattern))
    except OSError:
        return
    for path in names:
        if path.name.endswith(LOCK_SUFFIX):
            path = path.with_name(path.name[:-len(LOCK_SUFFIX)])
        _remove_if_stale(path)


def _remove_if_stale(path: Path) -> None:
    lock = _lock_of(path)
    try:
        fd = os.open(lock, os.O_RDWR)
    except FileNotFoundError:  # a writer takes its lock before it makes the name: none was ever taken for it
        _remove(path)
        return
    except OSError:
        return
    if not _lock(fd, wait=False):
        os.close(fd)
        return
    _remove(path)
    _unlock_and_remove(fd, lock)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        try:
            path.unlink(missing_ok=True)
        except OSError:
            pass


def _unlock_and_remove(fd: int, lock: Path) -> None:
    """The lock file goes while it is still locked (a writer that opens it after this sees that it is gone), then
    the lock is released. Windows cannot remove an open file: there it goes after."""
    if sys.platform == "win32":
        os.close(fd)
        try:
            lock.unlink(missing_ok=True)
        except OSError:
            pass
        return
    try:
        lock.unlink(missing_ok=True)
    except OSError:
        pass
    os.close(fd)
