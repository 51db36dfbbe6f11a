"""Finding the photos and pictures inside a screenshot or a page: regions that are neither text nor flat interface.

The picture is cut into cells of 8x8 pixels. Interface is drawn in solid colours: most pixels of its cells have
exactly the same colour, a border or a line through them included. A photo's pixels differ, even in a smooth sky
(a camera's noise, JPEG's rounding). So a cell is busy when no one colour holds most of its pixels and it holds
more than a few colours (an edge between two flat areas holds two); text is masked out with the boxes the text
reader found. Busy cells that touch form regions; a region that, its holes filled, fills most of its bounding box
and is at least 64 pixels each way is a picture (smaller ones are icons), unless it is mostly lines of text (a
scanned page, whose paper is grainy). Its edges are then moved to the exact pixel where the picture meets the flat
interface around it.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from captioner_gui.i18n import N_

Box = tuple[int, int, int, int]  # x, y, width, height

CELL = 8
MIN_SIDE = 64  # pixels: smaller regions are icons
FLAT_SHARE = 0.75  # a cell whose commonest colour holds this share of its pixels is flat interface,
MIN_COLOURS = 6  # and so is one of fewer distinct colours (an edge between two flat areas, a gradient's step)
MIN_FILL = 0.6  # the share of a region's bounding box that its busy cells must fill
MAX_SIDE_RATIO = 8  # a region longer than this many times its width is a rule or a toolbar, not a picture
WORKING_SIDE = 2048  # larger pictures are searched on a reduced copy
TEXT_LINES_INSIDE, TEXT_SHARE_INSIDE = 3, 0.12  # a region holding this many lines covering this share is a page


def find_pictures(image: Image.Image, text_boxes: list[Box] = ()) -> list[Box]:
    """Boxes of the pictures inside `image`, in its pixels, top to bottom and left to right."""
    import cv2

    scale = max(1, -(-max(image.size) // WORKING_SIDE))  # a whole factor, so that cells stay square
    small = image.convert("RGB")
    if scale > 1:
        small = small.reduce(scale)
    rgb = np.asarray(small)
    busy = _busy_cells(rgb)
    for x, y, w, h in text_boxes:
        x0, y0 = x // scale // CELL, y // scale // CELL
        x1, y1 = -(-(x + w) // scale // CELL), -(-(y + h) // scale // CELL)
        busy[y0:y1, x0:x1] = False
    joined = cv2.morphologyEx(busy.astype(np.uint8), cv2.MORPH_CLOSE, np.ones((3, 3), np.uint8))
    count, labels, stats, _ = cv2.connectedComponentsWithStats(joined, connectivity=8)
    found = []
    for label in range(1, count):
        cx, cy, cw, ch, _ = (int(v) for v in stats[label])
        region = (labels[cy:cy + ch, cx:cx + cw] == label).astype(np.uint8)
        if _filled(region) < MIN_FILL * cw * ch or max(cw, ch) > MAX_SIDE_RATIO * min(cw, ch):
            continue
        box = _refine(rgb, (cx * CELL, cy * CELL, cw * CELL, ch * CELL))
        box = tuple(v * scale for v in box)
        if min(box[2], box[3]) >= MIN_SIDE and not _mostly_text(box, text_boxes):
            found.append(box)
    return sorted(found, key=lambda b: (b[1] // max(1, MIN_SIDE), b[0]))


def _mostly_text(box: Box, text_boxes: list[Box]) -> bool:
    """Whether a region is a page of text on a grainy ground (a scan, a photo of a letter: every cell of its paper
    is busy) rather than a picture: several lines of text lie inside it and cover much of it. A photo with a sign or
    a caption in it has a line or two."""
    x, y, w, h = box
    inside = [b for b in text_boxes if x <= b[0] + b[2] / 2 <= x + w and y <= b[1] + b[3] / 2 <= y + h]
    return len(inside) >= TEXT_LINES_INSIDE and sum(b[2] * b[3] for b in inside) >= TEXT_SHARE_INSIDE * w * h


def _filled(region: np.ndarray) -> int:
    """The cells of a region with its holes filled: a photo's flat parts (a white wall, a blue sky in a drawing)
    are holes inside it, not outside it."""
    import cv2

    outside = np.pad(region, 1)
    cv2.floodFill(outside, None, (0, 0), 2)
    return int(np.count_nonzero(outside[1:-1, 1:-1] != 2))


def _colour_codes(rgb: np.ndarray) -> np.ndarray:
    pixels = rgb.astype(np.int32)
    return (pixels[..., 0] << 16) | (pixels[..., 1] << 8) | pixels[..., 2]


def _busy_cells(rgb: np.ndarray) -> np.ndarray:
    """(rows, columns) of cells: True where no single colour holds most of a cell's pixels."""
    rows, columns = rgb.shape[0] // CELL, rgb.shape[1] // CELL
    codes = _colour_codes(rgb[:rows * CELL, :columns * CELL])
    cells = np.sort(codes.reshape(rows, CELL, columns, CELL).transpose(0, 2, 1, 3).reshape(-1, CELL * CELL), axis=1)
    # The longest run of one value in each sorted cell is its commonest colour's count.
    position = np.arange(CELL * CELL)
    starts = np.ones(cells.shape, dtype=bool)
    starts[:, 1:] = cells[:, 1:] != cells[:, :-1]
    run_start = np.maximum.accumulate(np.where(starts, position, 0), axis=1)
    commonest = (position - run_start + 1).max(axis=1)
    colours = starts.sum(axis=1)  # an edge between two flat areas has two or three, a photo's cell dozens
    return ((commonest < FLAT_SHARE * CELL * CELL) & (colours >= MIN_COLOURS)).reshape(rows, columns)


def _varied(strip: np.ndarray) -> bool:
    """Whether a row or column of pixels belongs to a picture rather than to flat interface."""
    if strip.size == 0:
        return False
    return len(np.unique(_colour_codes(strip))) > max(3, strip.shape[0] // 16)


def _refine(rgb: np.ndarray, box: Box) -> Box:
    """Moves each edge of a cell-aligned box to the pixel where the picture begins: inwards over flat rows and
    columns, outwards over varied ones (at most a cell each way)."""
    height, width = rgb.shape[:2]
    left, top, right, bottom = box[0], box[1], min(width, box[0] + box[2]), min(height, box[1] + box[3])
    for _ in range(CELL):
        if bottom - top > 1 and not _varied(rgb[top, left:right]):
            top += 1
        if bottom - top > 1 and not _varied(rgb[bottom - 1, left:right]):
            bottom -= 1
        if right - left > 1 and not _varied(rgb[top:bottom, left]):
            left += 1
        if right - left > 1 and not _varied(rgb[top:bottom, right - 1]):
            right -= 1
    for _ in range(CELL):
        if top > 0 and _varied(rgb[top - 1, left:right]):
            top -= 1
        if bottom < height and _varied(rgb[bottom, left:right]):
            bottom += 1
        if left > 0 and _varied(rgb[top:bottom, left - 1]):
            left -= 1
        if right < width and _varied(rgb[top:bottom, right]):
            right += 1
    return left, top, right - left, bottom - top


# The places `where` names, row by row (translated where they are said).
PLACES = (N_("top left"), N_("top"), N_("top right"), N_("left"), N_("centre"), N_("right"), N_("bottom left"),
          N_("bottom"), N_("bottom right"))


def where(box: Box, size: tuple[int, int]) -> str:
    """Where a box's centre lies in a picture of `size`: "top left", "top", ..., "centre", ..., "bottom right"."""
    column = min(2, int(3 * (box[0] + box[2] / 2) / size[0]))
    row = min(2, int(3 * (box[1] + box[3] / 2) / size[1]))
    return PLACES[3 * row + column]
