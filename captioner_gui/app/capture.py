"""Screen capture with mss: the monitor the mouse pointer is on. No Qt here."""

from __future__ import annotations

from PIL import Image


class CaptureError(Exception):
    """The screen could not be captured; the message says why, in one line."""


def grab_screen(x: int | None = None, y: int | None = None) -> Image.Image:
    """The monitor that holds the point (x, y) (the first monitor when it is None), as an RGB image."""
    try:
        import mss

        with getattr(mss, "MSS", mss.mss)() as screens:  # mss 10 renamed mss.mss to mss.MSS
            monitors = screens.monitors[1:] or screens.monitors[:1]
            chosen = monitors[0]
            if x is not None and y is not None:
                for monitor in monitors:
                    if (monitor["left"] <= x < monitor["left"] + monitor["width"]
                            and monitor["top"] <= y < monitor["top"] + monitor["height"]):
                        chosen = monitor
                        break
            shot = screens.grab(chosen)
            return Image.frombytes("RGB", shot.size, shot.bgra, "raw", "BGRX")
    except Exception as exc:  # mss raises its own ScreenShotError, or OSError without a display
        raise CaptureError(f"The screen could not be captured ({str(exc).splitlines()[0] if str(exc) else exc!r}). "
                           "On Wayland, use your desktop's screenshot tool and paste the image.") from None
