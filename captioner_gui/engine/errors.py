"""Errors a user can cause. Each carries a one-line message that says what to do."""


class CaptionerError(Exception):
    """A problem the user can fix; its message is shown as it is, without a traceback."""


class ModelFilesMissing(CaptionerError):
    """A file a model needs is not where the manifest says."""


class ManifestError(CaptionerError):
    """A manifest with a missing, unknown or ill-typed field, or weights that do not fit it."""


class ImageError(CaptionerError):
    """An image that cannot be read or used."""


class DownloadError(CaptionerError):
    """A download that failed (offline, server error, bad file)."""


class DownloadCancelled(DownloadError):
    """The user stopped a download; what arrived so far is kept, and the next try resumes it."""


def first_line(exc: BaseException) -> str:
    """An exception's message reduced to its first line (or its class name), for one-line reports."""
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
