"""Reading order: lines of text grouped into blocks (paragraphs, list items, labels), and blocks put in the order a
person reads them: top to bottom, and a page of columns column by column.

The order is a recursive XY cut (Nagy and Seth, 1984): a set of blocks is split where a gap runs right across it,
between columns first, then between rows. A split into columns is refused where the two sides are rows of single
lines that face each other (a form's labels and values), which are read row by row.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from .errors import stop_if_cancelled
from .ocr import Line, language_of

Box = tuple[int, int, int, int]  # x, y, width, height


@dataclass
class Block:
    """Lines that belong together, top to bottom."""

    lines: list[Line]

    @property
    def box(self) -> Box:
        return union([line.box for line in self.lines])

    @property
    def text(self) -> str:
        return "\n".join(line.text for line in self.lines)

    @property
    def language(self) -> str:
        return language_of(self.text)


def union(boxes: list[Box]) -> Box:
    left, top = min(b[0] for b in boxes), min(b[1] for b in boxes)
    right, bottom = max(b[0] + b[2] for b in boxes), max(b[1] + b[3] for b in boxes)
    return left, top, right - left, bottom - top


def _same_block(upper: Line, lower: Line) -> bool:
    """Whether `lower` continues the block of `upper`: just below it, of about the same size, and under it."""
    (ux, uy, uw, uh), (lx, ly, lw, lh) = upper.box, lower.box
    size = max(uh, lh)
    if max(uh, lh) > 1.5 * min(uh, lh):  # a heading and its text are separate blocks
        return False
    gap = ly - (uy + uh)
    if gap < -0.5 * size or gap > 0.8 * size:
        return False
    overlap = min(ux + uw, lx + lw) - max(ux, lx)
    return overlap > 0.3 * min(uw, lw) or abs(ux - lx) < size


def group_lines(lines: list[Line], cancel: threading.Event | None = None) -> list[Block]:
    """Blocks of lines: each line joins the block of the nearest line above it that it continues. (Each line is
    compared with every line above it, a second for 2,000 labels: `cancel` is looked at line by line.)"""
    blocks: list[Block] = []
    owner: dict[int, Block] = {}
    ordered = sorted(lines, key=lambda line: (line.box[1], line.box[0]))
    for index, line in enumerate(ordered):
        stop_if_cancelled(cancel)
        above = [i for i in range(index) if _same_block(ordered[i], line) and owner[i].lines[-1] is ordered[i]]
        if above:
            nearest = max(above, key=lambda i: ordered[i].box[1] + ordered[i].box[3])
            owner[index] = owner[nearest]
            owner[index].lines.append(line)
        else:
            owner[index] = Block([line])
            blocks.append(owner[index])
    return blocks


def _split(blocks: list[Block], axis: int, min_gap: float) -> list[list[Block]]:
    """Groups of blocks separated by gaps of at least `min_gap` pixels that run right across, along x (0) or y (1)."""
    spans = sorted(((b.box[axis], b.box[axis] + b.box[axis + 2], b) for b in blocks), key=lambda s: s[0])
    groups: list[list[Block]] = [[spans[0][2]]]
    reach = spans[0][1]
    for start, end, block in spans[1:]:
        if start - reach >= min_gap:
            groups.append([])
        groups[-1].append(block)
        reach = max(reach, end)
    return groups


def _rows_of_pairs(columns: list[list[Block]]) -> bool:
    """True where the columns are single lines facing each other row by row (labels and values, a table)."""
    single = [b for column in columns for b in column if len(b.lines) == 1]
    if len(single) < 0.6 * sum(len(column) for column in columns):
        return False
    first, rest = columns[0], [b for column in columns[1:] for b in column]
    facing = 0
    for block in first:
        x, y, w, h = block.box
        centre = y + h / 2
        facing += any(abs(centre - (b.box[1] + b.box[3] / 2)) < 0.6 * h for b in rest)
    return facing >= 0.5 * len(first)


def reading_order(blocks: list[Block]) -> list[Block]:
    """Blocks in the order a person reads them (see the module's docstring)."""
    if len(blocks) <= 1:
        return list(blocks)
    heights = sorted(line.height for block in blocks for line in block.lines)
    size = heights[len(heights) // 2]
    columns = _split(blocks, 0, max(8.0, 1.0 * size))
    if len(columns) > 1 and not _rows_of_pairs(columns):
        return [b for column in columns for b in reading_order(column)]
    rows = _split(blocks, 1, 1.0)
    if len(rows) > 1:
        return [b for row in rows for b in reading_order(row)]
    if len(columns) > 1:
        return [b for column in columns for b in reading_order(column)]
    return sorted(blocks, key=lambda b: (b.box[1], b.box[0]))


def read_in_order(lines: list[Line], cancel: threading.Event | None = None) -> list[Block]:
    """The lines grouped in blocks, in reading order; raises Cancelled once `cancel` is set."""
    return reading_order(group_lines(lines, cancel))
