"""Errors a user can cause. Each carries a one-line message that says what to do."""

from __future__ import annotations

import threading


class CaptionerError(Exception):
    """A problem the user can fix; its message is shown as it is, without a traceback."""


class ModelFilesMissing(CaptionerError):
    """A file a model needs is not where the manifest says."""


class ManifestError(CaptionerError):
    """A manifest with a missing, unknown or ill-typed field, or weights that do not fit it."""


class ImageError(CaptionerError):
    """An image that cannot be read or used."""


class GPUOutOfMemory(CaptionerError):
    """The GPU had too little memory for the model or the pictures (torch's OutOfMemoryError, said in one line)."""


class DownloadError(CaptionerError):
    """A download that failed (offline, server error, bad file)."""


class DownloadCancelled(DownloadError):
    """The user stopped a download; what arrived so far is kept, and the next try resumes it."""


class Cancelled(Exception):
    """The user asked for something else (Stop, Escape, a new request, quitting): long work stops between two of
    its pieces. Not a CaptionerError: nothing went wrong, and there is nothing to tell the user."""


def stop_if_cancelled(cancel: threading.Event | None) -> None:
    """Raises Cancelled where `cancel` is set: called between the pieces of long work (a tile, a few lines, a
    caption). `None` is work that nobody stops (the command line)."""
    if cancel is not None and cancel.is_set():
        raise Cancelled


def first_line(exc: BaseException) -> str:
    """An exception's message reduced to its first line (or its class name), for one-line reports."""
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def telling_line(exc: BaseException) -> str:
    """The line of an error that says what is wrong: a load_state_dict error's second line names the tensor (its
    first only says that loading failed); else the first line."""
    lines = [line.strip() for line in str(exc).strip("'\"").splitlines() if line.strip()]
    return lines[1] if len(lines) > 1 else lines[0] if lines else type(exc).__name__
