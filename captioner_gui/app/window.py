"""The main window: drop area, Open, Paste, the result, history, status bar, tray icon.

Everything works from the keyboard; every control has an accessible name and description; a new description takes
the focus and is announced, spoken (our voice or the user's screen reader) and kept in the history.
"""

from __future__ import annotations

import threading
import traceback
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from PySide6.QtCore import QBuffer, QByteArray, QIODevice, QPoint, QSettings, QSize, Qt, QTimer, Signal
from PySide6.QtGui import (QAccessible, QAccessibleAnnouncementEvent, QAction, QCursor, QGuiApplication, QIcon,
                           QImage, QKeySequence, QPixmap)
from PySide6.QtWidgets import (QFileDialog, QHBoxLayout, QLabel, QListWidget, QListWidgetItem, QMainWindow,
                               QMessageBox, QPlainTextEdit, QPushButton, QSystemTrayIcon, QVBoxLayout, QWidget)

from captioner_gui import i18n
from captioner_gui.engine import names
from captioner_gui.engine.describe import FIRST_LINES
from captioner_gui.engine.errors import first_line
from captioner_gui.engine.language import HAN
from captioner_gui.engine.options import CAPTURES, Target
from captioner_gui.i18n import N_, _, ngettext, pgettext

from . import appearance, language
from .capture import Box, CaptureError, grab_box, grab_screen, monitors, on_wayland, take
from .fitting import FlowLayout, ScrollingPane
from .history import History, HistoryEntry, LinkInTheWay
from .settings import Settings
from .settings_dialog import label_for
from .speech import Speaker, SpeechRoute, speakable
from .worker import Answer, CaptionWorker, Reply, Request

IMAGE_PATTERNS = "*.png *.jpg *.jpeg *.gif *.bmp *.webp *.tif *.tiff *.ico *.ppm *.pgm *.jfif *.avif"
DESCRIBING = N_("Describing...")  # said when the answer takes longer (latency.py listens for it)
DESCRIBING_AFTER_MS = 1000  # say "Describing..." only when the answer is not ready by then: said earlier, it came
# just before the answer and was cut off by it (the first words of a capture come within half a second)
HISTORY_SHOWN = 200  # newest entries in the window's list (the file keeps up to Settings' limit)
HISTORY_SAID = 1 + FIRST_LINES  # lines of a history entry said on Enter, as a description's summary and first lines
HISTORY_TIME_ROLE = Qt.ItemDataRole.UserRole + 1  # a history item's time, as its list shows it
MAX_OPENED = 1000  # image files one request from a second `captioner-gui` may hand over
# How the history list names what was described (a file is named by its file name).
# Translators: what a description in the history was made of, after its time ("2025-01-01 10:00, screen").
SOURCE_LABELS = {Target.SCREEN: N_("screen"), Target.WINDOW: N_("window"), Target.REGION: N_("region"),
                 Target.CLIPBOARD: N_("clipboard"), Target.TEXT: N_("text of the active window"),
                 "dropped image": N_("dropped image")}
# Translators: the name of a picture taken of the screen, in messages ("Screen: a photo of ...").
CAPTURE_NAMES = {Target.SCREEN: N_("Screen"), Target.WINDOW: N_("Window"), Target.REGION: N_("Region"),
                 Target.TEXT: N_("Text")}


def image_filter() -> str:
    """The file dialog's filter, in the user's language."""
    return "{images} ({patterns});;{all} (*)".format(images=_("Images"), patterns=IMAGE_PATTERNS, all=_("All files"))


def _name(widget: QWidget, name: str, description: str) -> QWidget:
    widget.setAccessibleName(name)
    widget.setAccessibleDescription(description)
    return widget


def _offers_images(mime) -> bool:
    return any(url.isLocalFile() for url in mime.urls()) or mime.hasImage()


def _take_drop(event, files_dropped, image_dropped) -> None:
    """Hands a drop on: its local files, else the image itself (a browser's image offers no file)."""
    mime = event.mimeData()
    paths = [url.toLocalFile() for url in mime.urls() if url.isLocalFile()]
    if paths:
        files_dropped.emit(paths)
    elif mime.hasImage():
        image_dropped.emit(image_to_png(QImage(mime.imageData())))
    event.acceptProposedAction()


class DropArea(QPushButton):
    """A large button: drop image files (or an image) on it, or press it to choose files. (The window takes drops
    anywhere else, the description field included.)"""

    files_dropped = Signal(list)  # paths
    image_dropped = Signal(bytes)  # an image dragged from a program that offers no file (a browser)

    def __init__(self):
        super().__init__(_("Drop images here\nor press Enter to open one"))
        self.setObjectName("dropArea")  # its font size in the style sheet
        self.setAcceptDrops(True)
        _name(self, _("Drop area"), _("Drop image files here to hear what they show, or press Enter or Space to "
                                      "choose image files."))

    def minimumSizeHint(self) -> QSize:
        """A large target (60 pixels tall) where there is room; never shorter than its words, however large the
        text or long the translation: where the screen is too small for that, the window scrolls."""
        return QSize(super().minimumSizeHint().width(), max(60, self.sizeHint().height()))

    def dragEnterEvent(self, event):
        if _offers_images(event.mimeData()):
            event.acceptProposedAction()

    def dragMoveEvent(self, event):
        event.acceptProposedAction()

    def dropEvent(self, event):
        _take_drop(event, self.files_dropped, self.image_dropped)


def image_to_png(image: QImage) -> bytes:
    data = QByteArray()
    buffer = QBuffer(data)
    buffer.open(QIODevice.OpenModeFlag.WriteOnly)
    image.save(buffer, "PNG")
    return bytes(data.data())


@dataclass
class Shown:
    """What the description field shows, and how it is said: at once and by F5 (`short`), then by F6 (`more`)."""

    text: str
    short: list[tuple[str, str]]
    more: list[tuple[str, str]] = field(default_factory=list)
    more_said: bool = False  # F6 pressed again says "Nothing more."


class HistoryList(QListWidget):
    """The history's list: reached with Alt+H or Tab, it selects its newest entry, so that a screen reader says
    an entry and the arrow keys start there."""

    def focusInEvent(self, event):
        if self.count() and not self.selectedItems():
            self.setCurrentRow(max(0, self.currentRow()))
        super().focusInEvent(event)


class MainWindow(QMainWindow):
    """The window; `worker` owns the model, `speaker` our own voice, `history` the history file."""

    model_missing = Signal(str)  # the engine's message; the app offers the first-run download
    settings_changed = Signal()  # after the user saved new settings (hotkeys are re-registered on it)
    restart_requested = Signal()  # the user chose a new language and to start again now (main.py does it)
    speech_problem = Signal(str)  # from the speech thread: speech cannot work (shown in the status bar)
    _run_on_gui_thread = Signal(object)  # a function from another thread (a finished capture), run here

    def __init__(self, settings: Settings, worker: CaptionWorker, speaker: Speaker, history: History,
                 models_dir: Path | None = None):
        super().__init__()
        self.settings, self.worker, self.speaker, self.history = settings, worker, speaker, history
        self.models_dir = models_dir
        self.history.limit = settings.history_limit
        self._history_failing = False  # a history write failed and the user was told; said again after a success
        self.pending: dict[int, Request] = {}
        self.spoken_early: set[int] = set()  # requests whose first words were said before the rest was read
        self.waiting_for_model: list[str] = []  # files to describe once a model is ready
        self.shown: Shown | None = None  # the description in the field, when it came from the worker or history
        self.ready_status = ""  # the status bar's words while the model waits for work
        self.model_ready = False
        self.reading_only = False  # no caption model after a failed load or "Not now": files are read at once
        self.voice = SpeechRoute(speaker, settings)
        self._capturing = False  # a picture is being taken (on Wayland, perhaps waiting for the user's leave)
        self._run_on_gui_thread.connect(lambda function: function(), Qt.ConnectionType.QueuedConnection)
        self.setWindowTitle(_("Captioner"))
        self.setWindowIcon(app_icon())
        self._spoken_problems: set[str] = set()  # speech problems already said (each once)
        self.setAcceptDrops(True)  # an image dropped anywhere on the window is described
        self._build_widgets()
        self._build_actions()
        self._build_tray()
        self._connect_worker()
        self.load_history()
        self.apply_appearance()
        self.resize(self._first_size())

    def _first_size(self) -> QSize:
        """The size the user left it at, or a comfortable one; never larger than the screen (at 200% a laptop's
        1280x800 screen is 640x400 of Qt's pixels)."""
        size = QSettings().value("window/size", QSize(720, 760))
        screen = self.screen().availableGeometry() if self.screen() is not None else None
        if not isinstance(size, QSize):
            size = QSize(720, 760)
        if screen is not None:
            size = size.boundedTo(QSize(screen.width() - 16, screen.height() - 48))
        return size

    # ------------------------------------------------------------------ building

    def _build_widgets(self) -> None:
        self.drop_area = DropArea()
        # Translators: buttons; the letter after & is pressed with Alt (in Chinese: "打开图像(&O)...").
        self.open_button = _name(QPushButton(_("&Open image...")), _("Open image"),
                                 _("Choose image files to describe. Shortcut: Control+O."))
        self.paste_button = _name(QPushButton(_("&Paste image")), _("Paste image"),
                                  _("Describe the image, or image file, on the clipboard. Shortcut: Control+V."))
        self.screen_button = _name(QPushButton(_("Describe scree&n")), _("Describe screen"),
                                   _("Describe what is on the screen now."))
        self.result_label = label_for(_("&Description:"))
        self.result = QPlainTextEdit()
        self.result.setReadOnly(True)
        self.result.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByKeyboard
                                            | Qt.TextInteractionFlag.TextSelectableByMouse)
        self.result.setTabChangesFocus(True)
        self.result.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.result.setPlaceholderText(_("The description appears here."))
        self.result.setMinimumHeight(60)
        self.result.setObjectName("description")  # larger text in the style sheet
        self.result.setAcceptDrops(False)  # its drops go to the window, which describes them
        self.result.viewport().setAcceptDrops(False)
        _name(self.result, _("Description"), _("The latest description. Read it word by word with the arrow keys."))
        self.result_label.setBuddy(self.result)
        # Translators: a button that copies the description.
        self.copy_button = _name(QPushButton(pgettext("button", "&Copy")), _("Copy description"),
                                 _("Copy the description to the clipboard. Shortcut: Control+Shift+C."))
        # Translators: a button (the Speech menu has an item of the same words).
        self.speak_button = _name(QPushButton(_("Speak &again")), _("Speak again"),
                                  _("Say the description once more. Shortcut: F5."))
        self.stop_button = _name(QPushButton(_("S&top speech")), _("Stop speech"),
                                 _("Stop speaking, and stop reading the picture. Shortcut: Escape."))
        self.history_label = label_for(_("&History:"))
        self.history_list = HistoryList()
        self.history_list.setIconSize(QPixmap(48, 48).size())
        self.history_list.setWordWrap(True)
        self.history_list.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        _name(self.history_list, _("History"), _("Past descriptions, newest first. Press Enter to hear one again."))
        self.history_label.setBuddy(self.history_list)
        self.clear_button = _name(QPushButton(_("C&lear history...")), _("Clear history"),
                                  _("Delete all past descriptions and their thumbnails."))
        self.settings_button = _name(QPushButton(_("Settin&gs...")), _("Settings"),
                                     _("Model, decoding, device, speech, language, history and hotkeys. Shortcut: "
                                       "Control+Comma."))

        # Rows of buttons that wrap where the window is narrow (200% on a laptop), rather than going out of view.
        sources = FlowLayout(justify=True)
        for button in (self.open_button, self.paste_button, self.screen_button, self.settings_button):
            sources.addWidget(button)
        result_buttons = FlowLayout()
        for button in (self.copy_button, self.speak_button, self.stop_button):
            result_buttons.addWidget(button)
        history_buttons = QHBoxLayout()
        history_buttons.addStretch()
        history_buttons.addWidget(self.clear_button)

        self.notice = QLabel("")  # a problem that stays until it is solved (speech that cannot be heard)
        self.notice.setWordWrap(True)
        self.notice.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByKeyboard
                                            | Qt.TextInteractionFlag.TextSelectableByMouse)
        self.notice.setVisible(False)

        layout = QVBoxLayout()
        layout.addWidget(self.notice)
        layout.addWidget(self.drop_area)
        layout.addLayout(sources)
        layout.addWidget(self.result_label)
        layout.addWidget(self.result)
        layout.addLayout(result_buttons)
        layout.addWidget(self.history_label)
        layout.addWidget(self.history_list, 1)
        layout.addLayout(history_buttons)
        self.setCentralWidget(ScrollingPane(layout))  # at 200% on a small screen the controls need more room

        order = [self.drop_area, self.open_button, self.paste_button, self.screen_button, self.settings_button,
                 self.result, self.copy_button, self.speak_button, self.stop_button, self.history_list,
                 self.clear_button]
        for first, second in zip(order, order[1:]):
            QWidget.setTabOrder(first, second)

        # No accessible names here: a label's name is what a screen reader reads, so it must be its text.
        self.status_label = QLabel(_("Starting..."))
        self.status_label.setAccessibleDescription(_("Status: what the app is doing."))
        self.device_label = QLabel("")
        self.device_label.setAccessibleDescription(_("Where the model runs: the CPU or a GPU."))
        self.statusBar().addWidget(self.status_label, 1)
        self.statusBar().addPermanentWidget(self.device_label)

        self.drop_area.clicked.connect(self.open_files)
        self.drop_area.files_dropped.connect(self.describe_files)
        self.drop_area.image_dropped.connect(lambda data: self.describe_bytes(data, _("Dropped image")))
        self.open_button.clicked.connect(self.open_files)
        self.paste_button.clicked.connect(lambda: self.paste())  # not `checked` as on_done
        self.screen_button.clicked.connect(self.describe_screen)
        self.copy_button.clicked.connect(self.copy_description)
        self.speak_button.clicked.connect(self.speak_again)
        self.stop_button.clicked.connect(self.stop_speech)
        self.clear_button.clicked.connect(self.clear_history)
        self.settings_button.clicked.connect(self.open_settings)
        self.history_list.itemActivated.connect(self._history_item_activated)

    def _action(self, menu, text: str, slot, shortcut=None) -> QAction:
        action = QAction(text, self)
        if shortcut is not None:
            action.setShortcut(QKeySequence(shortcut))
            action.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
        action.triggered.connect(slot)
        menu.addAction(action)
        return action

    def _build_actions(self) -> None:
        bar = self.menuBar()
        # Translators: the menus and their items; the letter after & opens or chooses it with Alt.
        file_menu = bar.addMenu(_("&File"))
        self.open_action = self._action(file_menu, _("&Open image..."), self.open_files,
                                        QKeySequence.StandardKey.Open)
        self.paste_action = self._action(file_menu, _("&Paste image"), lambda: self.paste(),
                                         QKeySequence.StandardKey.Paste)
        self.screen_action = self._action(file_menu, _("Describe &screen"), self.describe_screen)
        self.get_model_action = self._action(file_menu, _("&Get the model..."), self.get_model)
        self.get_model_action.setEnabled(False)  # until the model turns out to be missing
        file_menu.addSeparator()
        self._action(file_menu, _("&Quit"), self.close, QKeySequence.StandardKey.Quit)
        edit_menu = bar.addMenu(_("&Edit"))
        self.copy_action = self._action(edit_menu, _("&Copy description"), self.copy_description, "Ctrl+Shift+C")
        self._action(edit_menu, _("&Settings..."), self.open_settings, "Ctrl+,")
        self._action(edit_menu, _("C&lear history..."), self.clear_history)
        speech_menu = bar.addMenu(_("&Speech"))
        self._action(speech_menu, _("Speak &again"), self.speak_again, "F5")
        # Translators: a menu item: say the rest of the description.
        self.more_action = self._action(speech_menu, pgettext("menu", "&More"), self.speak_more, "F6")
        self.stop_action = self._action(speech_menu, _("&Stop speech"), self.stop_speech, "Escape")
        view_menu = bar.addMenu(_("&View"))
        self._action(view_menu, _("&Larger text"), lambda: self.change_text_size(appearance.TEXT_STEP),
                     QKeySequence.StandardKey.ZoomIn)
        self._action(view_menu, _("&Smaller text"), lambda: self.change_text_size(-appearance.TEXT_STEP),
                     QKeySequence.StandardKey.ZoomOut)
        self._action(view_menu, _("&Normal text size"), lambda: self.change_text_size(0), "Ctrl+0")

    def _build_tray(self) -> None:
        self.tray = None
        if not QSystemTrayIcon.isSystemTrayAvailable():
            return
        self.tray = QSystemTrayIcon(app_icon(), self)
        self.tray.setToolTip(_("Captioner"))
        from PySide6.QtWidgets import QMenu

        menu = QMenu(self)
        # Translators: the tray icon's menu.
        menu.addAction(_("Describe screen"), self.describe_screen)
        menu.addAction(_("Show window"), self.bring_to_front)
        menu.addAction(_("Quit"), self.close)
        self.tray.setContextMenu(menu)
        self.tray.activated.connect(lambda reason: self.bring_to_front()
                                    if reason == QSystemTrayIcon.ActivationReason.Trigger else None)
        self.tray.show()

    def _connect_worker(self) -> None:
        # Bound methods of this window, never lambdas: Qt then runs them in the GUI thread, not the worker's.
        self.worker.loading.connect(self._model_loading)
        self.worker.loading_note.connect(self._model_loading_note)
        self.worker.ready.connect(self._model_ready)
        self.worker.load_failed.connect(self._model_failed)
        self.worker.notice.connect(self.tell)
        self.worker.first_words.connect(self.say_first_words)
        self.worker.described.connect(self.show_description)
        self.worker.dropped.connect(self._request_dropped)
        self.speech_problem.connect(self._speech_problem)

    def _model_loading(self, model: str) -> None:
        self.set_status(_("Loading the model '{model}'...").format(model=model))

    def _model_loading_note(self, message: str) -> None:
        """A long load says why it is long (written in the status bar and announced, not spoken over speech)."""
        self.set_status(message)
        self.announce(message, polite=True)

    def _request_dropped(self, request_id: int) -> None:
        request = self.pending.pop(request_id, None)
        if request is not None and request.on_done is not None:
            request.on_done({"error": _("A newer request replaced this one.")})

    def _speech_problem(self, message: str) -> None:
        """Speech cannot be heard: said once, in the window (where it stays) and in the status bar, and announced
        (the screen reader, if any, can still say it)."""
        if message in self._spoken_problems:
            return
        self._spoken_problems.add(message)
        self.notice.setText(message)
        self.notice.setVisible(True)
        self.set_status(message)
        self.announce(message, polite=True)

    # ------------------------------------------------------------------ model

    def load_model(self) -> None:
        self.model_ready = self.reading_only = False
        self.device_label.setText("")
        self.worker.set_decoding(self.settings.decode_options())
        self.worker.load(self.settings.model, self.settings.device, self.models_dir)

    def _model_ready(self, model: str, device: str) -> None:
        self.model_ready = True
        self.get_model_action.setEnabled(False)
        self.device_label.setText(device)
        self.ready_status = _("Ready: model '{model}' on {device}.").format(model=model, device=device)
        self.set_status(self.ready_status)
        self.announce(_("Ready. Model {model} on {device}.").format(model=model, device=device), polite=True)
        waiting, self.waiting_for_model = self.waiting_for_model, []
        if waiting:
            self.describe_files(waiting, interrupt=False)  # a key pressed while the model loaded is not cut off

    def describe_when_ready(self, paths: list[str]) -> None:
        if self.model_ready or self.reading_only:
            self.describe_files(paths)
        else:
            self.waiting_for_model.extend(paths)

    def _model_failed(self, message: str, missing: bool) -> None:
        """The worker still reads text without a caption model, so the screen keys work before the model is got.
        Files named at start wait for the model the first-run dialog gets (they are described without captions
        after "Not now"); after any other failure they are described at once, without captions."""
        self.set_status(_("No caption model loaded: the text is read, pictures are not captioned."))
        if missing:
            self.get_model_action.setEnabled(True)
            self.model_missing.emit(message)
        else:
            self.tell(message)
            self._describe_waiting_without_captions()

    def _describe_waiting_without_captions(self) -> bool:
        """From now on files are described at once, without captions, until a model is loaded."""
        self.reading_only = True
        waiting, self.waiting_for_model = self.waiting_for_model, []
        if waiting:
            self.describe_files(waiting, interrupt=False)
        return bool(waiting)

    # ------------------------------------------------------------------ sources

    def open_files(self) -> None:
        paths, _filter = QFileDialog.getOpenFileNames(self, _("Open images"), str(Path.home()), image_filter())
        if paths:
            self.describe_files(paths)

    def paste(self, on_done=None) -> None:
        mime = QGuiApplication.clipboard().mimeData()
        paths = [url.toLocalFile() for url in mime.urls() if url.isLocalFile()] if mime is not None else []
        if paths:
            self.describe_files(paths, on_done)
        elif mime is not None and mime.hasImage():
            self.describe_bytes(image_to_png(QImage(QGuiApplication.clipboard().image())), _("Clipboard image"),
                                Target.CLIPBOARD, on_done)
        else:
            self._failed(_("The clipboard holds no image. Copy an image, or an image file, then paste again."),
                         on_done)

    def describe_files(self, paths: list[str], on_done=None, interrupt: bool = True) -> None:
        for index, path in enumerate(paths):
            self.submit(Request(name=Path(path).name, source=str(Path(path).resolve()), picture=Path(path),
                                show_name=len(paths) > 1, interrupt=interrupt and index == 0,
                                on_done=on_done if index == len(paths) - 1 else None))

    def describe_bytes(self, data: bytes, name: str, source: str = "dropped image", on_done=None) -> None:
        self.submit(Request(name=name, source=source, picture=data, on_done=on_done))

    def describe_screen(self) -> None:
        self.describe_capture(Target.SCREEN)

    def describe_capture(self, what: Target, region: Box | None = None, on_done: Reply | None = None) -> None:
        """Describes the screen (the monitor under the pointer, or all of them as Settings say), the active window,
        a region (given, or chosen on an overlay), the text of the active window ("text") or the clipboard. Our
        own window is hidden while the picture is taken, so it never appears in it."""
        if what == Target.CLIPBOARD:
            self.paste(on_done)
        elif what == Target.REGION and region is None:
            pointer = QCursor.pos()
            self._hidden_capture(lambda: self._screenshot_under(pointer), on_done, then=self._pick_region)
        else:
            pointer, own = QCursor.pos(), int(self.winId())
            self._hidden_capture(lambda: take(what, region, (pointer.x(), pointer.y()), self.settings.all_monitors,
                                              own), on_done, text_only=what == Target.TEXT)

    def _hidden_capture(self, grab, on_done, then=None, text_only: bool = False) -> None:
        """Hides the window, runs `grab` on a thread of its own and hands its picture on, on the GUI thread. Off
        the GUI thread because on Wayland the portal may wait for the user to allow the screenshot, and the app
        must keep answering (and speaking) meanwhile."""
        if self._capturing:
            self._failed(_("Still taking the last picture: answer the desktop's question, or wait a moment.")
                         if on_wayland() else _("Still taking the last picture: try again in a moment."), on_done)
            return
        self._capturing = True
        was_visible = self.isVisible() and not self.isMinimized()
        if was_visible:
            self.hide()

        def taken(picture, error: str | None) -> None:  # on the GUI thread
            self._capturing = False
            if error is not None:
                self._failed(error, on_done)
            if then is not None and picture is not None:
                then(picture, was_visible, on_done)
                return
            if was_visible:
                self._show_quietly()
            if picture is not None:
                self.submit(Request(name=_(CAPTURE_NAMES.get(picture.source, picture.source.capitalize())),
                                    source=picture.source, picture=picture.image,
                                    title=picture.title, dialog=picture.dialog, text_only=text_only,
                                    on_done=on_done))

        def run() -> None:  # on the capture thread
            try:
                picture, error = grab(), None
            except CaptureError as exc:
                picture, error = None, str(exc)
            except Exception as exc:  # whatever happens there, the window must hear of it
                picture, error = None, _("The screen could not be captured ({problem}).").format(problem=exc)
            self._run_on_gui_thread.emit(lambda: taken(picture, error))

        # The window manager needs a moment to hide the window before the picture is taken.
        QTimer.singleShot(250 if was_visible else 0,
                          lambda: threading.Thread(target=run, name="capture", daemon=True).start())

    def _show_quietly(self) -> None:
        """Shows the window again without taking the focus from the program the user is in. The widget attribute
        alone reaches only a window not created yet: the platform plugins (xcb, Windows, macOS) read the window's
        `_q_showWithoutActivating` property at each show, so that is set too (on X11 it shows with a user time of
        0, which window managers such as openbox take as "do not focus")."""
        handle = self.windowHandle()
        self.setAttribute(Qt.WidgetAttribute.WA_ShowWithoutActivating, True)
        if handle is not None:
            handle.setProperty("_q_showWithoutActivating", True)
        self.show()
        self.setAttribute(Qt.WidgetAttribute.WA_ShowWithoutActivating, False)
        if handle is not None:
            handle.setProperty("_q_showWithoutActivating", False)

    @staticmethod
    def _screenshot_under(pointer: QPoint):
        """The monitor under the pointer and its picture (runs on the capture thread: no Qt here)."""
        if on_wayland():  # the portal gives the whole desktop, and monitors cannot be asked: the picture is the frame
            picture = grab_screen()
            return Box(0, 0, *picture.size), picture
        screens = monitors()
        box = next((b for b in screens if b.left <= pointer.x() < b.left + b.width
                    and b.top <= pointer.y() < b.top + b.height), screens[0])
        return box, grab_box(box)

    def _pick_region(self, captured, was_visible: bool, on_done) -> None:
        from .region import INSTRUCTIONS, RegionPicker

        box, picture = captured
        picker = RegionPicker(picture, QPoint(box.left, box.top))
        self._picker = picker  # kept alive while it is shown

        def chosen(rect):
            if was_visible:
                self._show_quietly()
            crop = picture.crop((rect.x(), rect.y(), rect.x() + rect.width(), rect.y() + rect.height()))
            self.submit(Request(name=_(CAPTURE_NAMES[Target.REGION]), source=Target.REGION, picture=crop,
                                on_done=on_done))

        def cancelled():
            if was_visible:
                self._show_quietly()
            self._failed(_("Cancelled."), on_done)

        picker.chosen.connect(chosen)
        picker.cancelled.connect(cancelled)
        picker.show()
        picker.raise_()
        picker.activateWindow()
        picker.setFocus()
        self.say(_(INSTRUCTIONS), own_voice_only=True)  # a screen reader reads the overlay, whose description they are

    def _failed(self, message: str, on_done) -> None:
        self.tell(message)
        if on_done is not None:
            on_done({"error": message})

    # ------------------------------------------------------------------ hotkeys and other processes

    def on_hotkey(self, action: str) -> None:
        self.describe_capture(Target(action))

    def handle_remote(self, request: dict, reply) -> None:
        """A request from `captioner describe-screen` or a second `captioner-gui` (see instance.py). Each gets an
        answer, once: whatever goes wrong here is said to the client in one line."""
        answered = False

        def reply_once(answer: dict) -> None:
            nonlocal answered
            if not answered:
                answered = True
                reply(answer)

        try:
            self._handle_remote(request, reply_once)
        except Exception as exc:
            traceback.print_exc()
            reply_once({"error": _("The app could not do this request ({problem}).").format(
                problem=first_line(exc))})

    def _handle_remote(self, request: dict, reply) -> None:
        command = request.get("command")
        if command in ("ping", "show"):
            if command == "show":
                self.bring_to_front()
            reply({"ok": True})
        elif command == "open":
            paths = request.get("paths")
            if not (isinstance(paths, list) and 0 < len(paths) <= MAX_OPENED
                    and all(isinstance(p, str) and p for p in paths)):
                reply({"error": _("'open' takes a list of 1 to {count} file paths.").format(count=MAX_OPENED)})
                return
            self.bring_to_front()  # the user asked for it: they opened images with the app
            self.describe_when_ready(paths)
            reply({"ok": True})
        elif command == "describe":
            region = None
            what = request.get("what", Target.SCREEN)
            if what not in list(Target):
                self._failed(_("Unknown thing to describe: {what}.").format(what=str(what)[:100]), reply)
                return
            if request.get("region") is not None:
                try:
                    region = Box.from_numbers(request["region"])
                except ValueError as exc:
                    reply({"error": str(exc)})
                    return
            self.describe_capture(Target(what), region, on_done=reply)
        else:
            reply({"error": _("Unknown command {command}.").format(command=repr(command))})

    def submit(self, request: Request) -> None:
        """Hands a request to the worker. One that may cut off speech (the first of a batch) is something new: what
        is still being described stops."""
        if request.interrupt:
            self.stop_reading()
        request_id = self.worker.describe(request)
        self.pending[request_id] = request
        self.set_status(_("Working...") if self.model_ready or self.reading_only
                        else _("Waiting for the model to load..."))
        QTimer.singleShot(DESCRIBING_AFTER_MS, lambda: self._still_working(request_id))

    def _still_working(self, request_id: int) -> None:
        if request_id in self.pending and request_id == min(self.pending) and request_id not in self.spoken_early:
            self.set_status(_(DESCRIBING))
            self.say(_(DESCRIBING), interrupt=True)

    # ------------------------------------------------------------------ results

    def say_first_words(self, answer: Answer) -> None:
        """A capture's short form, said while the rest of its text is still being read."""
        request = answer.request
        if request.id not in self.pending or request.show_name:  # replaced meanwhile; or said with its name
            return
        self.spoken_early.add(request.id)
        self.say(answer.short_parts, interrupt=request.interrupt)

    def show_description(self, answer: Answer) -> None:
        request = answer.request
        self.pending.pop(request.id, None)
        if answer.cancelled:  # the user stopped it (or asked for something new): nothing to say
            self.spoken_early.discard(request.id)
            if request.on_done is not None:
                request.on_done({"error": answer.error})
            if not self.pending:
                self.set_status(_("Stopped."))
            return
        shown, spoken = answer.error or answer.text, answer.spoken
        if request.show_name and not answer.error:  # error messages already name the file
            # Translators: one of several images described at once: its file name, then its description.
            named, name = _("{name}: {description}"), names.shown(request.name)
            shown, spoken = (named.format(name=name, description=shown), named.format(name=name, description=spoken))
        self.result.setPlainText(shown)
        short = answer.short_parts if answer.short_parts and not request.show_name else [(spoken, "")]
        self.shown = Shown(shown, short, [] if answer.error else answer.more_parts)
        if request.source not in CAPTURES:  # a hotkey user stays in their program: the description is spoken
            self.activateWindow()
        self.result.setFocus(Qt.FocusReason.OtherFocusReason)
        if request.id in self.spoken_early and not answer.error:  # its first words were said: what follows them
            self.spoken_early.discard(request.id)
            if answer.follow_parts:
                self.say(answer.follow_parts, interrupt=False)
        else:
            self.spoken_early.discard(request.id)
            self.say(short, interrupt=request.interrupt)  # the later ones of a batch wait their turn
        if not answer.error:
            if self.settings.auto_copy:
                QGuiApplication.clipboard().setText(answer.text)
            if self.settings.history:
                self._keep_in_history(answer)
        if request.on_done is not None:
            request.on_done({"error": answer.error} if answer.error else
                            {"text": answer.text, "blank": answer.blank, "description": answer.details})
        if not self.pending:
            self.set_status(self.ready_status if self.model_ready
                            else _("No caption model loaded: the text is read, pictures are not captioned."))

    def tell(self, message: str) -> None:
        """A message for the user (an error, a fallback): shown, announced and spoken."""
        self.result.setPlainText(message)
        self.shown = None
        self.set_status(message)
        self.say(message, interrupt=True)

    def set_status(self, text: str) -> None:
        self.status_label.setText(text)

    def announce(self, text: str, polite: bool = False) -> None:
        """Hands the words to the screen reader (AT-SPI, UIA) and to nothing else: for news that our own voice
        keeps quiet about ("Copied."). What is to be heard by everyone goes through `say`."""
        event = QAccessibleAnnouncementEvent(self.result, speakable(text))
        event.setPoliteness(QAccessible.AnnouncementPoliteness.Polite if polite
                            else QAccessible.AnnouncementPoliteness.Assertive)
        QAccessible.updateAccessibility(event)

    def say(self, text: str | list[tuple[str, str]], interrupt: bool = True, own_voice_only: bool = False) -> None:
        """The one way the app says something. The words are announced (a screen reader reads the announcements of
        the window that has the focus; a follow-up, `interrupt` False, politely, so that it waits for what is being
        said) and spoken: by our own voice, or by the user's screen reader where one runs, they asked for it, and
        our window is in the background. `own_voice_only`: for a window the screen reader reads itself (a question
        box): neither announced nor handed to the screen reader."""
        if not own_voice_only:
            self.announce(text if isinstance(text, str) else " ".join(words for words, _language in text),
                          polite=not interrupt)
        self.voice.say(text, interrupt, reader_hears_window=own_voice_only or self.isActiveWindow())

    def copy_description(self) -> None:
        text = self.result.toPlainText()
        if text:
            QGuiApplication.clipboard().setText(text)
            self.set_status(_("Copied the description."))
            self.announce(_("Copied."))

    def speak_again(self) -> None:
        if self.shown is not None and self.result.toPlainText() == self.shown.text:
            self.shown.more_said = False
            self.say(self.shown.short, interrupt=True)
        elif self.result.toPlainText():
            self.say(self.result.toPlainText(), interrupt=True)

    def speak_more(self) -> None:
        """Reads on: the rest of the text that the short form left out; once."""
        shown = self.shown if self.shown is not None and self.result.toPlainText() == self.shown.text else None
        if shown is not None and shown.more and not shown.more_said:
            shown.more_said = True
            self.say(shown.more, interrupt=True)
        else:
            self.say(_("Nothing more."), interrupt=True)

    def stop_speech(self) -> None:
        """Stop (Escape): silence, and what is still being described stops too."""
        self.voice.stop()
        self.stop_reading()

    def stop_reading(self) -> None:
        """Every request not yet answered stops between two pieces of its work (the worker answers it as
        cancelled)."""
        for request in self.pending.values():
            request.cancel.set()

    # ------------------------------------------------------------------ history

    def load_history(self) -> None:
        self.history_list.clear()
        visible = self.settings.history
        for widget in (self.history_label, self.history_list, self.clear_button):
            widget.setVisible(visible)
        if not visible:
            return
        try:
            entries = self.history.entries(newest=HISTORY_SHOWN)
        except LinkInTheWay as exc:  # said once: the descriptions that follow are not kept, and not said again
            self._history_failing = True
            self.tell(str(exc))
            return
        except OSError as exc:  # the file is there but cannot be read: say so, and leave it as it is
            self.tell(_("The history could not be read ({problem}). Check that you may read {path}.").format(
                problem=exc.strerror or exc, path=self.history.path))
            return
        for entry in entries:
            self._add_history_item(entry, at_top=True)

    def _keep_in_history(self, answer: Answer) -> None:
        """Adds the description to the history file and list. A disk that refuses is said once, and never stops
        the description from reaching whoever asked for it."""
        request = answer.request
        of_the_screen = request.source in CAPTURES or request.source == Target.TEXT  # may show mail, passwords
        keep_picture = not of_the_screen or self.settings.keep_screen_pictures
        keep_text = not of_the_screen or self.settings.keep_screen_text
        entry = HistoryEntry(time=datetime.now().astimezone().isoformat(timespec="seconds"),
                             text=answer.text if keep_text else answer.without_text,
                             source=request.source, model=answer.model, seconds=round(answer.seconds, 3))
        try:
            entry = self.history.add(entry, answer.thumbnail_png if keep_picture else None)
        except (OSError, ValueError) as exc:  # a full disk, no permission, a link in the way
            if not self._history_failing:
                self._history_failing = True
                self._say_after(str(exc) if isinstance(exc, LinkInTheWay) else
                                _("The history could not be saved ({problem}). Free some disk space, or turn the "
                                  "history off in Settings.").format(problem=getattr(exc, "strerror", None) or exc))
            return
        self._history_failing = False
        self._add_history_item(entry, at_top=True)

    def _say_after(self, message: str) -> None:
        """Like `tell`, but after the description, which stays in its field and is heard first (the status bar
        shows it for a while over the "Ready" that follows)."""
        self.statusBar().showMessage(message, 30000)
        self.say(message, interrupt=False)

    def _add_history_item(self, entry: HistoryEntry, at_top: bool) -> None:
        try:
            when = datetime.fromisoformat(entry.time).strftime("%Y-%m-%d %H:%M:%S")  # seconds: two entries of
        except ValueError:  # one screen made in the same minute read apart
            when = entry.time
        first = entry.text.split("\n", 1)[0]  # the summary; the whole description is shown on Enter
        # Translators: under a description in the history: when it was made, and of what (a file name, "screen").
        where = _("{time}, {source}").format(time=when, source=_source_label(entry.source))
        item = QListWidgetItem(f"{first}\n{where}")
        item.setData(Qt.ItemDataRole.UserRole, entry.text)
        item.setData(HISTORY_TIME_ROLE, when)
        item.setData(Qt.ItemDataRole.AccessibleTextRole, _("{description} ({details})").format(description=first,
                                                                                              details=where))
        thumbnail = self.history.thumbnail_path(entry)
        if thumbnail is not None:
            item.setIcon(QIcon(str(thumbnail)))
        if at_top:
            self.history_list.insertItem(0, item)
        else:
            self.history_list.addItem(item)
        while self.history_list.count() > HISTORY_SHOWN:
            self.history_list.takeItem(self.history_list.count() - 1)

    def _history_item_activated(self, item: QListWidgetItem) -> None:
        """Shows the entry's description and says that it did, then the entry as a fresh description is said: its
        first lines, each a sentence of its own; F6 reads the rest."""
        text = item.data(Qt.ItemDataRole.UserRole)
        self.result.setPlainText(text)
        lines = [(_sentence(line), "") for line in text.splitlines() if line.strip()]
        more = len(lines) - HISTORY_SAID
        said = lines[:HISTORY_SAID] + ([(ngettext("{count} more line.", "{count} more lines.", more).format(
            count=more), "")] if more > 0 else [])
        # Translators: said when a description from the history is shown again, before it is read.
        heading = [(_("From the history, {time}:").format(time=item.data(HISTORY_TIME_ROLE)), "")]
        self.shown = Shown(text, heading + said, lines[HISTORY_SAID:])
        self.say(self.shown.short, interrupt=True)

    def clear_history(self) -> None:
        answer = QMessageBox.question(self, _("Clear history"), _("Delete all past descriptions and their thumbnails?"),
                                      QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
                                      QMessageBox.StandardButton.No)
        if answer == QMessageBox.StandardButton.Yes:
            self.history.clear()
            self.history_list.clear()
            self.tell(_("History cleared."))

    # ------------------------------------------------------------------ settings and the rest

    def open_settings(self) -> None:
        from .settings_dialog import SettingsDialog

        dialog = SettingsDialog(self.settings, self.speaker, self.models_dir, self)
        try:
            if dialog.exec():
                self.apply_settings(dialog.result_settings())
        finally:
            dialog.deleteLater()  # else it stays in the accessibility tree as a hidden dialog

    def get_model(self, message: str = "") -> None:
        """The first-run download (or import) of the chosen model; also from File > Get the model."""
        from .first_run import ModelSetupDialog

        dialog = ModelSetupDialog(self.settings.model, self.models_dir, message, self)
        try:
            if dialog.exec():
                self.load_model()
            elif not self._describe_waiting_without_captions():  # their first description says how to get captions
                self.tell(_("No model is loaded. {reason} To download it later, choose Get the model in the File "
                            "menu (Alt+F, G).").format(reason=message) if message else
                          _("No model is loaded. To download it later, choose Get the model in the File menu "
                            "(Alt+F, G)."))
        finally:
            dialog.deleteLater()

    def apply_appearance(self) -> None:
        appearance.apply(self.settings.theme, self.settings.text_size)

    def change_text_size(self, step: int) -> None:
        """Ctrl+Plus and Ctrl+Minus change the text size by `step` percent, Ctrl+0 (step 0) restores it; kept."""
        size = appearance.clamp_text_size(self.settings.text_size + step) if step else 100
        self.settings.text_size = size
        self.settings.save()
        self.apply_appearance()
        self.set_status(_("Text size {size}%.").format(size=size))
        self.announce(_("Text size {size} percent.").format(size=size))

    def apply_settings(self, new: Settings) -> None:
        old, self.settings = self.settings, new
        self.voice.settings = new
        new.save()
        self.apply_appearance()
        self.speaker.configure(new.voice, new.rate, new.volume / 100)
        self.worker.set_decoding(new.decode_options())
        if (new.model, new.device) != (old.model, old.device):
            self.load_model()
        self.history.limit = new.history_limit
        if new.history_limit < old.history_limit:
            try:
                self.history.trim()
            except OSError as exc:
                self.tell(_("The history could not be shortened ({problem}). Check the disk, then save the "
                            "settings again.").format(problem=exc.strerror or exc))
        if (new.history, new.history_limit) != (old.history, old.history_limit):
            self.load_history()
        self.settings_changed.emit()
        if language.resolve(new.language) != i18n.current():
            self.offer_restart()

    def offer_restart(self) -> None:
        """The words are chosen at start-up: a new language takes effect in a new start, now or later. (In the
        language of now, as every other message until then.)"""
        text = _("The new language is used from the next start of Captioner. Start it again now? Your settings "
                 "and history are kept.")
        box = QMessageBox(QMessageBox.Icon.Question, _("Language"), text, QMessageBox.StandardButton.NoButton, self)
        box.setObjectName("restartQuestion")
        now = box.addButton(_("&Restart now"), QMessageBox.ButtonRole.AcceptRole)
        box.addButton(_("&Later"), QMessageBox.ButtonRole.RejectRole)  # also Escape
        box.setDefaultButton(now)
        self.say(text, own_voice_only=True)  # the screen reader reads the box itself
        box.exec()
        chosen = box.clickedButton()
        box.deleteLater()
        if chosen is now:
            self.restart_requested.emit()

    def bring_to_front(self) -> None:
        self.showNormal()
        self.raise_()
        self.activateWindow()

    def dragEnterEvent(self, event):
        if _offers_images(event.mimeData()):
            event.acceptProposedAction()

    def dragMoveEvent(self, event):
        event.acceptProposedAction()

    def dropEvent(self, event):
        _take_drop(event, self.drop_area.files_dropped, self.drop_area.image_dropped)

    def closeEvent(self, event):
        QSettings().setValue("window/size", self.size())
        if self.tray is not None:
            self.tray.hide()
        super().closeEvent(event)


def _sentence(line: str) -> str:
    """A line of a description as a sentence of its own, so that a voice pauses after it."""
    line = line.strip()
    return line if line[-1:] in ".!?:;。！？：；…" else line + ("。" if HAN.search(line) else ".")


def _source_label(source: str) -> str:
    """What a history entry describes, as the user knows it: "screen", "clipboard", a file's name."""
    if source in SOURCE_LABELS:
        return _(SOURCE_LABELS[source])
    return names.shown(Path(source).name)  # a newline or ESC in a name shown escaped


def app_icon() -> QIcon:
    return QIcon(str(Path(__file__).resolve().parent / "captioner.svg"))
