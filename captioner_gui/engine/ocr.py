"""Reading the text in a picture, offline: RapidOCR's PP-OCRv6 models (inside its wheel, run by onnxruntime).

Why RapidOCR (measured on a 2-core CPU, README "Reading the screen"): its wheel carries the detection and recognition
models, so nothing is downloaded at run time and the bundles need no extra data files; one recognition model reads
Chinese, English and other Latin scripts together, and it is far more accurate on screens than Tesseract (which
also needs language files that no Windows package ships). The text-angle classifier is left off: screens are
upright, and it cost a third of the time.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

import numpy as np
from PIL import Image

from captioner_gui.i18n import _

from .errors import CaptionerError, Cancelled, first_line, stop_if_cancelled
from .language import CHINESE, ENGLISH, HAN

MIN_SCORE = 0.5  # recognition confidence under which a line is dropped (noise, icons read as letters)
LARGEST_SIDE = 2560  # larger pictures (4K, 8K screens, which scale their text up) are read at a whole fraction
# Detection sees each tile at this size: 0.7 found every line of 9-24 px text on the test screens (English and
# Chinese, light and dark) as full size did, in half the time; 0.6 lost lines of 9 and 10 px text.
DETECTION_SCALE = 0.7
# Lines read one at a time: a batch is as wide as its widest line, and batches of 6 (RapidOCR's default) took 440 MB
# more at their peak on a screen of text and were no faster on a 2-core CPU.
RECOGNITION_BATCH = 1
# Lines read between two looks at whether the user asked for something else (about 0.1 s on a 2-core CPU): a
# screen of 2,000 small labels takes half a minute to read, and Stop, Escape or a new request ends it within this.
RECOGNITION_PIECE = 8


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
    han = len(HAN.findall(text))
    letters = sum(1 for c in text if c.isalpha())
    return CHINESE if letters and han / letters >= 0.3 else ENGLISH


class TextReader:
    """Finds and reads the lines of text in a picture. Loading takes about a second; keep one per process.

    Finding (`find`) and reading (`recognize`) are apart so that the lines a description says first can be read
    before the rest (reading is about 0.1 s a line on a 2-core CPU). `read` does both.

    Detection looks at most a 1366x800 tile at a time, reduced to DETECTION_SCALE: on larger pictures the detector
    misses sparse text (measured here: one short line on an empty 1920x1080 screen is lost). Lines cut by a tile's
    edge are joined again, and each line is then read from the whole picture at full size."""

    def __init__(self):
        try:
            from rapidocr import RapidOCR
            from rapidocr.ch_ppocr_rec.typings import TextRecInput
        except ImportError as exc:
            raise OCRError(_("The text reader is not installed ({reason}): pip install rapidocr onnxruntime.").format(
                reason=exc)) from None
        for name in ("RapidOCR", "rapidocr"):  # it logs every call at INFO level
            logging.getLogger(name).setLevel(logging.ERROR)
        try:
            # The detector takes each tile at the size it is given (we reduce it ourselves; RapidOCR's default
            # would enlarge it again to 736 pixels on its short side).
            engine = RapidOCR(params={"Global.use_cls": False, "Global.log_level": "error",
                                      "Global.text_score": MIN_SCORE, "Det.limit_type": "max",
                                      "Det.limit_side_len": 1 << 16, "Rec.rec_batch_num": RECOGNITION_BATCH})
            # Its two models, loaded now (RapidOCR loads them at the first call); they are called one by one
            # because detection runs tile by tile (pyproject pins the 3.x releases that have these methods).
            self._detect, self._recognize = engine._load_det_model(), engine._load_rec_model()
        except Exception as exc:  # a damaged installation: its models missing or unreadable
            raise OCRError(_("The text reader could not start ({reason}); reinstall rapidocr.").format(
                reason=first_line(exc))) from None
        self._batch = TextRecInput
        self.timings: dict[str, float] = {}

    def read(self, image: Image.Image) -> list[Line]:
        """The lines of text, in no particular order (see layout.py for reading order). Sets `timings`."""
        page = self.find(image)
        return self.recognize(page, page.boxes)

    def find(self, image: Image.Image, cancel: threading.Event | None = None) -> Page:
        """Where the lines of text are (not yet read). Resets `timings`. Raises Cancelled between two tiles once
        `cancel` is set."""
        started = time.perf_counter()
        scale = max(1, -(-max(image.size) // LARGEST_SIDE))
        picture = image.convert("RGB")
        if scale > 1:
            picture = picture.reduce(scale)
        pixels = np.ascontiguousarray(np.asarray(picture)[:, :, ::-1])  # the reader takes OpenCV's BGR order
        try:
            boxes = self._find_lines(pixels, cancel)
        except Cancelled:
            raise
        except Exception as exc:
            raise OCRError(_("The text could not be read ({reason}).").format(reason=first_line(exc))) from None
        page = Page(pixels, scale, [(x * scale, y * scale, w * scale, h * scale) for x, y, w, h in boxes])
        self.timings = {"ocr_detection": time.perf_counter() - started, "ocr_recognition": 0.0}
        return page

    def recognize(self, page: Page, boxes: list[tuple[int, int, int, int]],
                  cancel: threading.Event | None = None) -> list[Line]:
        """The lines in these boxes (some of `page.boxes`), in their order; those that are not text are left out.
        Read RECOGNITION_PIECE lines at a time; raises Cancelled between two pieces once `cancel` is set. Adds its
        time to `timings`."""
        lines = []
        for start in range(0, len(boxes), RECOGNITION_PIECE):
            stop_if_cancelled(cancel)
            lines += self._recognize_piece(page, boxes[start:start + RECOGNITION_PIECE])
        return lines

    def _recognize_piece(self, page: Page, boxes: list[tuple[int, int, int, int]]) -> list[Line]:
        started = time.perf_counter()
        scale = page.scale
        crops = [page.pixels[y // scale:(y + h) // scale, x // scale:(x + w) // scale] for x, y, w, h in boxes]
        try:
            read = self._recognize(self._batch(img=crops)) if crops else None
        except Exception as exc:
            raise OCRError(_("The text could not be read ({reason}).").format(reason=first_line(exc))) from None
        finally:
            self.timings["ocr_recognition"] = self.timings.get("ocr_recognition", 0.0) + time.perf_counter() - started
        if read is None or read.txts is None:
            return []
        lines = []
        for (x, y, w, h), text, score in zip(boxes, read.txts, read.scores):
            text = " ".join(text.split())
            if text and score >= MIN_SCORE and _shaped_like(text, w // scale, h // scale):
                lines.append(Line((x, y, w, h), text, round(float(score), 4)))
        return lines

    def _find_lines(self, pixels: np.ndarray, cancel: threading.Event | None) -> list[tuple[int, int, int, int]]:
        """The boxes of the lines of text, tile by tile, joined where a tile's edge cut them."""
        import cv2  # RapidOCR's own dependency

        height, width = pixels.shape[:2]
        boxes, cut = [], []
        for left, top, right, bottom in tiles(width, height):
            stop_if_cancelled(cancel)
            tile = pixels[top:bottom, left:right]
            size = (max(32, round(tile.shape[1] * DETECTION_SCALE)), max(32, round(tile.shape[0] * DETECTION_SCALE)))
            found = self._detect(cv2.resize(tile, size, interpolation=cv2.INTER_AREA))
            for corners in found.boxes if found.boxes is not None else []:
                xs, ys = corners[:, 0] * tile.shape[1] / size[0], corners[:, 1] * tile.shape[0] / size[1]
                x0, y0 = max(0, int(xs.min()) + left), max(0, int(ys.min()) + top)
                x1, y1 = min(width, int(np.ceil(xs.max())) + left), min(height, int(np.ceil(ys.max())) + top)
                if x1 - x0 >= 2 and y1 - y0 >= 2:
                    boxes.append((x0, y0, x1 - x0, y1 - y0))
                    # reaching an edge of the tile inside the picture: the rest of the line is in the next tile
                    cut.append((left > 0 and x0 <= left + EDGE) or (top > 0 and y0 <= top + EDGE)
                               or (right < width and x1 >= right - EDGE) or (bottom < height and y1 >= bottom - EDGE))
        return join_pieces(boxes, cut, cancel)


@dataclass
class Page:
    """A picture prepared for reading, and the boxes of its lines in the picture's own pixels."""

    pixels: np.ndarray  # BGR, reduced by `scale`
    scale: int
    boxes: list[tuple[int, int, int, int]]


TILE = (1366, 800)
TILE_OVERLAP = 96  # pixels shared by neighbouring tiles: a line cut by one tile is whole, or joined, in the other
EDGE = 2  # a box this close to a tile's edge inside the picture was cut by it


def tiles(width: int, height: int) -> list[tuple[int, int, int, int]]:
    """(left, top, right, bottom) of the tiles that cover a picture: as few as TILE allows, each only as large as
    that count needs, overlapping by TILE_OVERLAP (a 1920x1080 screen: four tiles of 1008x588, half the pixels of
    four 1366x800 tiles, read in half the time and no line lost on the test screens)."""
    def spans(length: int, tile: int) -> list[tuple[int, int]]:
        if length <= tile:
            return [(0, length)]
        count = -(-(length - TILE_OVERLAP) // (tile - TILE_OVERLAP))
        size = -(-(length + (count - 1) * TILE_OVERLAP) // count)
        starts = [min(i * (size - TILE_OVERLAP), length - size) for i in range(count)]
        return [(start, start + size) for start in starts]

    return [(x0, y0, x1, y1) for y0, y1 in spans(height, TILE[1]) for x0, x1 in spans(width, TILE[0])]


def join_pieces(boxes: list[tuple[int, int, int, int]], cut: list[bool] | None = None,
                cancel: threading.Event | None = None) -> list[tuple[int, int, int, int]]:
    """Boxes found twice (in two tiles' overlap) or cut in two by a tile's edge, joined into one per line: two boxes
    are one line where they share most of their height and overlap or touch side by side. A box `cut` by a tile's
    edge is also joined with a box it overlaps side by side where one's height lies within the other's: the part of
    a line that a tile's edge cuts through its letters is found lower than the line, at any ratio (12 against 25
    px), and only the tiles' edges tell it from a line of text over a photo. (Each box is compared with every line
    so far, two seconds for 2,000 labels: `cancel` is looked at box by box.)"""
    cut = cut or [False] * len(boxes)
    joined: list[list] = []
    for (x, y, w, h), piece in sorted(zip(boxes, cut)):
        stop_if_cancelled(cancel)
        for other in joined:
            ox, oy, ow, oh, other_piece = other
            shared = min(y + h, oy + oh) - max(y, oy)
            alike = max(h, oh) <= 1.5 * min(h, oh)  # a line is never joined with a block the detector misread
            touching = alike and shared >= 0.6 * min(h, oh) and x <= ox + ow + 0.3 * min(h, oh) and ox <= x + w
            overlapping = min(x + w, ox + ow) - max(x, ox) >= min(h, oh) and shared >= min(h, oh) - 2
            if touching or ((piece or other_piece) and overlapping):
                right, bottom = max(ox + ow, x + w), max(oy + oh, y + h)
                other[0], other[1] = min(ox, x), min(oy, y)
                other[2], other[3] = right - other[0], bottom - other[1]
                other[4] = piece or other_piece
                break
        else:
            joined.append([x, y, w, h, piece])
    return [tuple(box[:4]) for box in joined]


def _shaped_like(text: str, width: int, height: int) -> bool:
    """Whether a box can hold this text on one line: a glyph is at most about twice as wide as the line is high,
    and one or two glyphs in a box over 96 pixels each way are a photo that the detector took for text (it reads
    as "8" or "0")."""
    if len(text) <= 2 and min(width, height) > 96:
        return False
    return width <= 2.5 * height * max(1, len(text)) and height <= 2.5 * width
