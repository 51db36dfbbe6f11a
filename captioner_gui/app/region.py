"""Choosing a region of the screen: a full-screen overlay over a still picture of the screen, where a rectangle is
drawn with the mouse, or moved and sized with the arrow keys by people who cannot use a mouse well."""

from __future__ import annotations

from PySide6.QtCore import QPoint, QRect, Qt, Signal
from PySide6.QtGui import QColor, QFont, QImage, QPainter, QPen, QPixmap
from PySide6.QtWidgets import QDialog

from captioner_gui.i18n import N_, _

INSTRUCTIONS = N_("Choose a region. Arrow keys move the rectangle, Shift with the arrow keys changes its size, "
                  "Control makes the steps small. Enter describes the region, Escape cancels. Or drag with the "
                  "mouse.")
STEP, FINE_STEP = 40, 4
# Translators: shown large over the picture of the screen, in two lines.
SHOWN_INSTRUCTIONS = N_("Arrow keys: move.  Shift+arrows: size.  Ctrl: small steps.\n"
                        "Enter: describe.  Escape: cancel.  Or drag with the mouse.")


def pixmap_from_pil(image) -> QPixmap:
    rgb = image.convert("RGB")
    data = rgb.tobytes("raw", "RGB")
    return QPixmap.fromImage(QImage(data, rgb.width, rgb.height, 3 * rgb.width, QImage.Format.Format_RGB888).copy())


class RegionPicker(QDialog):
    """Shows `screenshot` (of the monitor at `origin`) full screen; `chosen` gives the region in the screenshot's
    pixels. The rectangle starts in the middle, half the screen's width and height. A dialog, so that a screen
    reader presents it as one (name and instructions), with the instructions shown large at the top."""

    chosen = Signal(QRect)
    cancelled = Signal()

    def __init__(self, screenshot, origin: QPoint):
        super().__init__(None, Qt.WindowType.FramelessWindowHint | Qt.WindowType.WindowStaysOnTopHint
                         | Qt.WindowType.Tool)
        self.setWindowTitle(_("Choose a region"))
        self.setAccessibleName(_("Choose a region"))
        self.setAccessibleDescription(_(INSTRUCTIONS))
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setCursor(Qt.CursorShape.CrossCursor)
        self.picture = pixmap_from_pil(screenshot)
        width, height = self.picture.width(), self.picture.height()
        self.selection = QRect(width // 4, height // 4, width // 2, height // 2)
        self._dragging_from: QPoint | None = None
        self.setGeometry(QRect(origin, self.picture.size()))

    def paintEvent(self, event):
        painter = QPainter(self)
        painter.drawPixmap(0, 0, self.picture)
        painter.fillRect(self.rect(), QColor(0, 0, 0, 110))
        painter.drawPixmap(self.selection, self.picture, self.selection)
        painter.setPen(QPen(QColor(255, 200, 0), 3))
        painter.drawRect(self.selection.adjusted(-2, -2, 1, 1))
        self._paint_instructions(painter)

    def _paint_instructions(self, painter: QPainter) -> None:
        """The keys, large, white on black with a yellow edge, at the top (or the bottom while the rectangle is
        there, so they never hide it)."""
        font = QFont(self.font())
        font.setPixelSize(max(18, self.height() // 28))
        font.setBold(True)
        painter.setFont(font)
        flags = Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap
        area = self.rect().adjusted(16, 16, -16, -16)
        shown = _(SHOWN_INSTRUCTIONS)
        needed = painter.boundingRect(area, flags, shown).adjusted(-16, -12, 16, 12)
        box = QRect(area.left(), area.top(), area.width(), needed.height())
        if box.intersects(self.selection):
            box.moveBottom(area.bottom())
        painter.fillRect(box, QColor(0, 0, 0))
        painter.setPen(QPen(QColor(255, 255, 0), 3))
        painter.drawRect(box)
        painter.setPen(QColor(255, 255, 255))
        painter.drawText(box, flags, shown)

    def keyPressEvent(self, event):
        key, modifiers = event.key(), event.modifiers()
        step = FINE_STEP if modifiers & Qt.KeyboardModifier.ControlModifier else STEP
        moves = {Qt.Key.Key_Left: (-step, 0), Qt.Key.Key_Right: (step, 0), Qt.Key.Key_Up: (0, -step),
                 Qt.Key.Key_Down: (0, step)}
        if key in moves:
            dx, dy = moves[key]
            if modifiers & Qt.KeyboardModifier.ShiftModifier:
                self.selection.setWidth(max(16, self.selection.width() + dx))
                self.selection.setHeight(max(16, self.selection.height() + dy))
            else:
                self.selection.translate(dx, dy)
            self.selection = self.selection.intersected(self.rect())
            self.update()
        elif key in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
            self._finish()
        elif key == Qt.Key.Key_Escape:
            self.close()
            self.cancelled.emit()
        else:
            super().keyPressEvent(event)

    def mousePressEvent(self, event):
        self._dragging_from = event.position().toPoint()

    def mouseMoveEvent(self, event):
        if self._dragging_from is not None:
            self.selection = QRect(self._dragging_from, event.position().toPoint()).normalized()
            self.update()

    def mouseReleaseEvent(self, event):
        if self._dragging_from is not None:
            self._dragging_from = None
            if self.selection.width() >= 8 and self.selection.height() >= 8:
                self._finish()

    def _finish(self) -> None:
        self.close()
        self.chosen.emit(QRect(self.selection))
