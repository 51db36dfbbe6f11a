"""Reading the text in a picture, offline: RapidOCR's PP-OCRv6 models (inside its wheel, run by onnxruntime).

Why RapidOCR (measured on a 2-core CPU, README "Reading the screen"): its wheel carries the detection and recognition
models, so nothing is downloaded at run time and the bundles need no extra data files; one recognition model reads
Chinese, English and other Latin scripts together, and it is far more accurate on screens than Tesseract (which
also needs language files that no Windows package ships). The text-angle classifier is left off: screens are
upright, and it cost a third of the time.
"""

from __future__ import annotations

import logging
import time
import unicodedata
from dataclasses import dataclass

import numpy as np
from PIL import Image

from .errors import CaptionerError, first_line

MIN_SCORE = 0.5  # recognition confidence under which a line is dropped (noise, icons read as letters)


class OCRError(CaptionerError):
    """The text reader could not start or failed on a picture; the caption is still given."""


@dataclass(frozen=True)
class Line:
    """One line of text as the reader found it: its box in the picture's pixels and its words."""

    box: tuple[int, int, int, int]  # x, y, width, height
    text: str
    score: float

    @property
    def height(self) -> int:
        return self.box[3]


def language_of(text: str) -> str:
    """'zh' for text that is mostly Chinese characters, else 'en' (the reader knows these two, and Latin)."""
    han = sum(1 for c in text if "CJK" in unicodedata.name(c, ""))
    letters = sum(1 for c in text if c.isalpha())
    return "zh" if letters and han / letters >= 0.3 else "en"


class TextReader:
    """Finds and reads the lines of text in a picture. Loading takes about a second; keep one per process."""

    def __init__(self):
        try:
            from rapidocr import RapidOCR
        except ImportError as exc:
            raise OCRError(f"The text reader is not installed ({exc}): pip install rapidocr onnxruntime.") from None
        for name in ("RapidOCR", "rapidocr"):  # it logs every call at INFO level
            logging.getLogger(name).setLevel(logging.ERROR)
        try:
            self._engine = RapidOCR(params={"Global.use_cls": False, "Global.log_level": "error",
                                            "Global.text_score": MIN_SCORE})
        except Exception as exc:  # a damaged installation: its models missing or unreadable
            raise OCRError(f"The text reader could not start ({first_line(exc)}); reinstall rapidocr.") from None
        self.timings: dict[str, float] = {}

    def read(self, image: Image.Image) -> list[Line]:
        """The lines of text, in no particular order (see layout.py for reading order). Sets `timings`."""
        started = time.perf_counter()
        pixels = np.asarray(image.convert("RGB"))[:, :, ::-1]  # the reader takes OpenCV's BGR order
        try:
            found = self._engine(pixels)
        except Exception as exc:
            raise OCRError(f"The text could not be read ({first_line(exc)}).") from None
        elapsed = list(getattr(found, "elapse_list", None) or [])
        detection = float(elapsed[0] or 0.0) if elapsed else 0.0
        self.timings = {"ocr_detection": detection,
                        "ocr_recognition": max(0.0, time.perf_counter() - started - detection)}
        if found.boxes is None or found.txts is None:
            return []
        lines = []
        for corners, text, score in zip(found.boxes, found.txts, found.scores):
            text = " ".join(text.split())
            if not text or score < MIN_SCORE:
                continue
            xs, ys = [float(p[0]) for p in corners], [float(p[1]) for p in corners]
            left, top = int(round(min(xs))), int(round(min(ys)))
            box = (left, top, max(1, int(round(max(xs))) - left), max(1, int(round(max(ys))) - top))
            lines.append(Line(box, text, round(float(score), 4)))
        return lines
