"""How the app looks for people with low vision: the text size the user chose, a thick focus ring in a colour that
stands out on every control, and a true high-contrast theme (white on black, yellow focus) chosen in Settings or
followed from the system (Windows' high contrast, a desktop's high-contrast preference).

Everything is one application style sheet, so the Settings and first-run dialogs and message boxes follow it too."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QApplication

from .settings import Settings
TEXT_STEP = 10  # percent, for Ctrl+Plus and Ctrl+Minus
DESCRIPTION_SCALE = 1.5  # the description is larger than the rest of the window
DROP_AREA_SCALE = 1.3
FOCUS_WIDTH = 3  # pixels of the focus ring (the usual 1 px one is hard to see)

# Controls that take the focus, as the style sheet names them.
FOCUSABLE = ("QPushButton", "QPlainTextEdit", "QListWidget", "QComboBox", "QSpinBox", "QLineEdit", "QCheckBox",
             "QSlider", "QProgressBar", "QKeySequenceEdit")


def system_wants_high_contrast() -> bool:
    """The system's own high-contrast setting (Windows' high contrast themes, or a desktop's contrast preference)."""
    hints = QGuiApplication.styleHints()
    accessibility = hints.accessibility() if hasattr(hints, "accessibility") else None
    return accessibility is not None and accessibility.contrastPreference() == Qt.ContrastPreference.HighContrast


def uses_high_contrast(theme: str) -> bool:
    return theme == "high_contrast" or (theme == "system" and system_wants_high_contrast())


def _dark_scheme() -> bool:
    return QGuiApplication.styleHints().colorScheme() == Qt.ColorScheme.Dark


def style_sheet(theme: str, text_size: int, base_points: float) -> str:
    """The application's style sheet: text `text_size` percent of `base_points`, and the theme's colours."""
    points = base_points * text_size / 100
    if uses_high_contrast(theme):
        colours = {"text": "#ffffff", "back": "#000000", "edge": "#ffffff", "focus": "#ffff00",
                   "chosen_back": "#ffff00", "chosen_text": "#000000", "off": "#c0c0c0"}
    elif _dark_scheme():
        colours = {"text": "palette(text)", "back": "palette(base)", "edge": "palette(mid)", "focus": "#ffd700",
                   "chosen_back": "palette(highlight)", "chosen_text": "palette(highlighted-text)",
                   "off": "palette(mid)"}
    else:
        colours = {"text": "palette(text)", "back": "palette(base)", "edge": "palette(dark)", "focus": "#0b3d91",
                   "chosen_back": "#0b3d91", "chosen_text": "#ffffff", "off": "palette(mid)"}
    focusable = ", ".join(FOCUSABLE)
    focused = ", ".join(f"{name}:focus" for name in FOCUSABLE)
    # Every control keeps room for the ring (a 1 px edge plus a margin), so nothing moves when the focus comes.
    sheet = f"""
        * {{ font-size: {points:.1f}pt; }}
        #description {{ font-size: {points * DESCRIPTION_SCALE:.1f}pt; }}
        #dropArea {{ font-size: {points * DROP_AREA_SCALE:.1f}pt; }}
        {focusable} {{ border: 1px solid {colours['edge']}; margin: {FOCUS_WIDTH - 1}px; padding: 4px; }}
        {focused} {{ border: {FOCUS_WIDTH}px solid {colours['focus']}; margin: 0px; }}
        QListWidget::item:selected {{ background: {colours['chosen_back']}; color: {colours['chosen_text']}; }}
        QCheckBox::indicator {{ width: {points * 1.4:.0f}pt; height: {points * 1.4:.0f}pt; }}
    """
    if uses_high_contrast(theme):
        sheet += f"""
            QWidget {{ background: {colours['back']}; color: {colours['text']}; }}
            QMenuBar::item:selected, QMenu::item:selected {{ background: {colours['chosen_back']};
                color: {colours['chosen_text']}; }}
            QCheckBox::indicator {{ border: 2px solid {colours['edge']}; background: {colours['back']}; }}
            QCheckBox::indicator:checked {{ background: {colours['focus']}; }}
            *:disabled {{ color: {colours['off']}; }}
            QPlainTextEdit, QLineEdit, QListWidget {{ selection-background-color: {colours['chosen_back']};
                selection-color: {colours['chosen_text']}; }}
        """
    return sheet


def apply(theme: str, text_size: int) -> None:
    """Applies the theme and text size to the whole application."""
    app = QApplication.instance()
    if app is None:
        return
    if not hasattr(app, "_captioner_base_points"):  # the system's own size, before any of ours
        app._captioner_base_points = QApplication.font().pointSizeF() if QApplication.font().pointSizeF() > 0 else 10
    app.setStyleSheet(style_sheet(theme, text_size, app._captioner_base_points))


def clamp_text_size(percent: int) -> int:
    low, high = Settings.range_of("text_size")
    return min(max(int(percent), low), high)
