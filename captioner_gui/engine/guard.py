"""The guard: honest about what the model sees, before the caption is written.

ClipCap was trained on photos. A blank or nearly uniform picture (a screen curtain, a locked or black screen) is
reported as blank and never captioned.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

BLANK_SPREAD = 6.0  # grey levels: the standard deviation of a blank picture's brightness stays under this,
STANDING_OUT = 32  # and hardly any pixel differs from the usual brightness by more than this many levels:
MARKS = 20  # fewer pixels than this, at any screen size (the word "OK" in a small font has about 60)


def is_blank(image: Image.Image) -> bool:
    """True for a picture of one colour, or one colour with faint noise (a screen curtain, a black screen).

    One short word on an empty page is not blank: its pixels stand out from the page, where noise does not."""
    grey = image.convert("L")
    values = np.asarray(grey, dtype=np.float32)
    if values.size == 0:
        return True
    if float(values.std()) >= BLANK_SPREAD:
        return False
    usual = float(np.median(values))
    return int(np.count_nonzero(np.abs(values - usual) > STANDING_OUT)) < MARKS


def blank_message(source: str) -> str:
    """What to say about a blank picture, by where it came from."""
    what = {"screen": "screen", "window": "window", "region": "region"}.get(source, "image")
    return f"The {what} is blank."
