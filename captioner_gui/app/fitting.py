"""Layouts that fit large text (200%) or a long translation on a laptop's screen: what does not fit scrolls down,
never sideways, where the start of a label or a button would be out of view."""

from __future__ import annotations

from PySide6.QtCore import QPoint, QRect, QSize, Qt
from PySide6.QtWidgets import QApplication, QFrame, QLayout, QLayoutItem, QScrollArea, QSizePolicy, QWidget


class ScrollingPane(QScrollArea):
    """Holds words and controls that large text (200%) or a long translation can make taller than the screen: they
    scroll rather than being cut. The focused control is always scrolled into view, however the focus came there
    (Tab, an Alt+letter shortcut, a screen reader), so a low-vision user sees what has it. Frameless, and never
    focused itself."""

    def __init__(self, layout: QLayout):
        super().__init__()
        self.setWidgetResizable(True)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.setWidget(_Content(layout))
        QApplication.instance().focusChanged.connect(self._show_focused)  # undone when the pane is deleted

    def _show_focused(self, _old: QWidget | None, new: QWidget | None) -> None:
        if new is not None and self.widget().isAncestorOf(new):
            around = new.parentWidget()  # a control that hands its focus to a part of it (a hotkey field): all of it
            self.ensureWidgetVisible(around if around is not None and around.focusProxy() is new else new, 8, 8)


class _Content(QWidget):
    """A pane's content. Where its rows wrap (a FlowLayout, a form whose fields go below their labels), the scroll
    area asks it for its height at a width: that is the height the content can shrink to, so that text boxes and
    lists get shorter before anything scrolls (a QWidget would answer with the height it would like)."""

    def __init__(self, layout: QLayout):
        super().__init__()
        self.setLayout(layout)

    def heightForWidth(self, width: int) -> int:
        return self.layout().totalMinimumHeightForWidth(width)


class FlowLayout(QLayout):
    """A row of buttons that wraps onto more rows where the width is short, as words wrap. Each row is stretched to
    the full width when `justify` (as a QHBoxLayout's buttons are); the tab order is not changed."""

    def __init__(self, justify: bool = False):
        super().__init__()
        self.justify = justify
        self._items: list[QLayoutItem] = []

    def addItem(self, item: QLayoutItem) -> None:
        self._items.append(item)

    def count(self) -> int:
        return len(self._items)

    def itemAt(self, index: int) -> QLayoutItem | None:
        return self._items[index] if 0 <= index < len(self._items) else None

    def takeAt(self, index: int) -> QLayoutItem | None:
        return self._items.pop(index) if 0 <= index < len(self._items) else None

    def expandingDirections(self) -> Qt.Orientation:
        return Qt.Orientation(0)

    def hasHeightForWidth(self) -> bool:
        return True

    def heightForWidth(self, width: int) -> int:
        return self._arrange(QRect(0, 0, width, 0), move=False)

    def setGeometry(self, rect: QRect) -> None:
        super().setGeometry(rect)
        self._arrange(rect, move=True)

    def sizeHint(self) -> QSize:
        """All on one row."""
        shown = self._shown()
        width = sum(item.sizeHint().width() for item in shown) + self._space() * max(len(shown) - 1, 0)
        height = max((item.sizeHint().height() for item in shown), default=0)
        left, top, right, bottom = self.getContentsMargins()
        return QSize(width + left + right, height + top + bottom)

    def minimumSize(self) -> QSize:
        """As narrow as the widest button; heightForWidth says how tall the rows are at a width."""
        shown = self._shown()
        left, top, right, bottom = self.getContentsMargins()
        return QSize(max((item.sizeHint().width() for item in shown), default=0) + left + right,
                     max((item.sizeHint().height() for item in shown), default=0) + top + bottom)

    def _shown(self) -> list[QLayoutItem]:
        return [item for item in self._items if not item.isEmpty()]  # a hidden button takes no room

    def _space(self, orientation: Qt.Orientation = Qt.Orientation.Horizontal) -> int:
        if self.spacing() >= 0:
            return self.spacing()
        widget = self.parentWidget()
        style = widget.style() if widget is not None else QApplication.style()
        return style.layoutSpacing(QSizePolicy.ControlType.PushButton, QSizePolicy.ControlType.PushButton,
                                   orientation)

    def _arrange(self, rect: QRect, move: bool) -> int:
        """Places the items in rows within `rect` (when `move`); returns the height they take."""
        left, top, right, bottom = self.getContentsMargins()
        area = rect.adjusted(left, top, -right, -bottom)
        space = self._space()
        rows: list[list[QLayoutItem]] = [[]]
        used = 0
        for item in self._shown():
            width = item.sizeHint().width()
            if rows[-1] and used + space + width > area.width():
                rows.append([])
                used = 0
            used += (space if rows[-1] else 0) + width
            rows[-1].append(item)
        y, between_rows = area.y(), self._space(Qt.Orientation.Vertical)
        for row in filter(None, rows):
            height = max(item.sizeHint().height() for item in row)
            spare = area.width() - sum(item.sizeHint().width() for item in row) - space * (len(row) - 1)
            shares = [spare // len(row) + (index < spare % len(row)) if self.justify and spare > 0 else 0
                      for index in range(len(row))]
            x = area.x()
            for item, share in zip(row, shares):
                width = item.sizeHint().width() + share
                if move:
                    item.setGeometry(QRect(QPoint(x, y), QSize(width, height)))
                x += width + space
            y += height + between_rows
        return max(y - between_rows - area.y(), 0) + top + bottom
