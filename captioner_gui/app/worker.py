"""The captioning worker: a QObject in a QThread of its own that owns the model.

It loads the model without freezing the window, then takes requests from a queue and answers with signals.
A newer screen request replaces an older one that has not started yet (the user wants the screen as it is now).
A request whose `cancel` is set (Stop, Escape, a new request, quitting) stops between two pieces of its work and is
answered with `cancelled` set.
"""

from __future__ import annotations

import io
import logging
import threading
import time
import traceback
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from PIL import Image
from PySide6.QtCore import QObject, QThread, Signal

from captioner_gui.engine import names
from captioner_gui.engine.errors import Cancelled, first_line
from captioner_gui.engine.options import CAPTURES, DecodeOptions
from captioner_gui.i18n import _

THUMBNAIL_SIZE = (96, 96)

# What to describe: a file, an image file's bytes in memory (the clipboard's, a dropped one), or a picture the app
# made itself (a screen capture).
Picture = Path | bytes | Image.Image
# Called in the GUI thread with {"text", "blank"} or {"error"}, when another process asked for the description.
Reply = Callable[[dict], None]


class EngineNotes(logging.Handler):
    """Passes the engine's notes on a long step (writing a model's CPU form at its first load takes a minute) on
    as a signal, so that the window can say what the wait is for."""

    def __init__(self, signal):
        super().__init__(logging.INFO)
        self.signal = signal

    def emit(self, record: logging.LogRecord) -> None:
        self.signal.emit(record.getMessage())


@dataclass
class Request:
    """One thing to describe."""

    name: str  # how the user knows it, in messages: a file name, "Clipboard image", "Screen"
    source: str  # what goes into the history: the file's path, or a Target ("clipboard", "screen", ...)
    picture: Picture
    show_name: bool = False  # start the description with the name (one of several files dropped at once)
    title: str | None = None  # the active window's title, for a screen capture
    dialog: bool = False  # that window is a dialog
    text_only: bool = False  # read the text alone ("Read the text")
    interrupt: bool = True  # whether its description may cut off the one being spoken
    on_done: Reply | None = None
    id: int = 0  # set by the worker
    cancel: threading.Event = field(default_factory=threading.Event, repr=False)  # set: stop describing it


@dataclass
class Answer:
    """The answer to one Request: the engine's description, or an error message a person can act on."""

    request: Request
    text: str = ""  # the whole description, one line per line (what the window shows and Copy copies)
    without_text: str = ""  # `text` less the lines read from the picture (what a screen's history entry keeps)
    short: str = ""  # the words said at once
    more: str = ""  # the rest, said on request
    short_parts: list = field(default_factory=list, repr=False)  # `short` as (words, language) parts
    more_parts: list = field(default_factory=list, repr=False)
    follow_parts: list = field(default_factory=list, repr=False)  # said after `first_words` (see the signal)
    error: str = ""
    seconds: float = 0.0
    model: str = ""
    blank: bool = False  # the guard found the picture blank; `text` says so
    cancelled: bool = False  # stopped before it was done (its `cancel` was set); `error` says so
    details: dict = field(default_factory=dict, repr=False)  # the description's fields (describe --json's)
    thumbnail_png: bytes = field(default=b"", repr=False)

    @property
    def spoken(self) -> str:
        return self.error or self.short


@dataclass(frozen=True)
class LoadOrder:
    model: str
    device: str  # auto, cpu or cuda
    models_dir: Path | None = None


class RequestQueue:
    """A thread-safe queue of loads and requests; a new capture drops the captures still waiting (the user wants
    the screen as it is now)."""

    def __init__(self):
        self._items: deque = deque()
        self._ready = threading.Condition()
        self.current: Request | None = None  # the request taken last and not yet done (noted under the lock, so
        # that a stop finds every request: waiting, or being described)

    def put(self, item) -> list:
        """Adds an item; returns the requests it replaced."""
        with self._ready:
            dropped = []
            if isinstance(item, Request) and item.source in CAPTURES:
                dropped = [i for i in self._items if isinstance(i, Request) and i.source in CAPTURES]
                self._items = deque(i for i in self._items if i not in dropped)
            self._items.append(item)
            self._ready.notify()
            return dropped

    def get(self):
        with self._ready:
            while not self._items:
                self._ready.wait()
            item = self._items.popleft()
            self.current = item if isinstance(item, Request) else None
            return item

    def done(self) -> None:
        with self._ready:
            self.current = None

    def stop(self, stop_order) -> list:
        """Empties the queue but for `stop_order`; returns the requests that were waiting and the one being
        described."""
        with self._ready:
            waiting = [i for i in self._items if isinstance(i, Request)] + [r for r in [self.current] if r]
            self._items = deque([stop_order])
            self._ready.notify()
            return waiting


_STOP = object()


class CaptionWorker(QObject):
    """Owns the model. Call `load`, `describe` and `stop` from the GUI thread; results arrive as signals."""

    loading = Signal(str)  # model
    loading_note = Signal(str)  # what a long load is doing ("Preparing model 'coco' for this CPU ...")
    ready = Signal(str, str)  # model name, device name ("CPU" or the CUDA card's name)
    load_failed = Signal(str, bool)  # message, whether the model is simply not installed (first run)
    notice = Signal(str)  # something the user should know that is not an error (a fallback to the CPU)
    first_words = Signal(object)  # Answer whose `short_parts` can be said while the rest of the text is read
    described = Signal(object)  # Answer
    dropped = Signal(int)  # request id of a stale screen request that was replaced by a newer one

    def __init__(self):
        super().__init__()
        self.queue = RequestQueue()
        self.options = DecodeOptions()
        self._next_id = 1
        self._describer = None
        self._thread: QThread | None = None

    # ------------------------------------------------------------------ called from the GUI thread

    def start(self) -> None:
        """Moves the worker into a thread of its own and starts taking orders."""
        self._thread = QThread()
        self._thread.setObjectName("captioning worker")
        self.moveToThread(self._thread)
        self._thread.started.connect(self._serve)
        self._thread.start()

    def load(self, model: str, device: str = "auto", models_dir: Path | None = None) -> None:
        self.queue.put(LoadOrder(model, device, models_dir))

    def describe(self, request: Request) -> int:
        request.id = self._next_id
        self._next_id += 1
        for stale in self.queue.put(request):
            self.dropped.emit(stale.id)
        return request.id

    def set_decoding(self, options: DecodeOptions) -> None:
        self.options = options  # read at the next request (frozen: the worker thread sees one whole value)

    def stop(self, wait_ms: int = 1500) -> bool:
        """Ends the worker's thread: the requests still waiting are dropped and the one being described stops
        between two pieces of its work. False when it is still busy after `wait_ms` (a model still loading)."""
        for request in self.queue.stop(_STOP):
            request.cancel.set()
        if self._thread is None:
            return True
        self._thread.quit()
        return self._thread.wait(wait_ms)

    # ------------------------------------------------------------------ in the worker thread

    def _serve(self) -> None:
        while True:
            order = self.queue.get()
            if order is _STOP:
                break
            if isinstance(order, LoadOrder):
                self._load(order)
            else:
                self.described.emit(self._describe(order))
                self.queue.done()
        self._describer = None
        self.thread().quit()

    def _load(self, order: LoadOrder) -> None:
        self.loading.emit(order.model)
        self._describer = None
        model = None
        try:
            from captioner_gui.engine import CaptionerError, ModelFilesMissing, load_model
            from captioner_gui.engine.describe import Describer
            from captioner_gui.engine.options import cuda_usable
        except Exception as exc:  # a broken installation: say so instead of dying silently
            self.load_failed.emit(_("The captioning engine could not start: {problem}").format(problem=exc), False)
            return
        notes = EngineNotes(self.loading_note)
        engine_log = logging.getLogger("captioner_gui.engine")
        engine_log.addHandler(notes)
        engine_log.setLevel(logging.INFO)
        try:
            device = order.device
            if device == "auto" and cuda_usable():
                try:
                    model = load_model(order.model, order.models_dir, "cuda")
                except ModelFilesMissing:
                    raise
                except Exception as exc:  # a driver problem, too little GPU memory, ...
                    self.notice.emit(_("The GPU could not be used ({problem}); using the CPU instead.").format(
                        problem=first_line(exc)))
                    device = "cpu"
            if model is None:
                model = load_model(order.model, order.models_dir, device)
        except ModelFilesMissing as exc:
            failure = str(exc), True
        except CaptionerError as exc:
            failure = str(exc), False
        except MemoryError:
            failure = _("Not enough memory to load the model '{model}'. Close other programs and try again.").format(
                model=order.model), False
        except Exception as exc:
            traceback.print_exc()
            failure = _("The model '{model}' could not be loaded: {problem}").format(
                model=order.model, problem=first_line(exc)), False
        finally:
            engine_log.removeHandler(notes)
        if model is None:
            self.load_failed.emit(*failure)
            self._read_without_captions(order)  # after the news: the first-run dialog need not wait for it
            return
        self._describer = Describer(model, models_dir=order.models_dir)
        try:
            model.kind_guard  # noqa: B018 (the guard's prompts, now rather than at the first description)
        except Exception:
            traceback.print_exc()  # the first description will say what is wrong
        self._describer.start_reader()  # the text reader's models, now rather than at the first key press
        translation_problem = self._describer.start_translator()  # the same for the captions' translation model
        self.ready.emit(model.name, model.device_name)
        if self._describer.reader_problem:
            self.notice.emit(_("{problem} Pictures are still captioned.").format(
                problem=self._describer.reader_problem))
        if translation_problem:
            self.notice.emit(translation_problem)

    def _read_without_captions(self, order: LoadOrder) -> None:
        """Without a caption model the screen is still read (the text reader's models come with the app) and the
        pictures in it found; the first such description says how to get captions."""
        from captioner_gui.engine.describe import Describer

        self._describer = Describer(None, models_dir=order.models_dir, no_captions=_(
            "Pictures are not captioned until a caption model is installed: choose Get the model in the File menu "
            "(Alt+F, G)."))
        self._describer.start_reader()

    def _describe(self, request: Request) -> Answer:
        started = time.perf_counter()
        answer = Answer(request)
        try:
            if request.cancel.is_set():  # stopped while it waited its turn
                raise Cancelled
            from captioner_gui.engine import CaptionerError, GPUOutOfMemory, load_image, load_image_bytes

            match request.picture:
                case Image.Image() as image:
                    pass
                case bytes() as data:
                    image = load_image_bytes(data, request.name)
                case path:  # a file
                    image = load_image(path)
            answer.thumbnail_png = _thumbnail(image)
            if self._describer is None:
                answer.error = _("No model is loaded yet. Choose or download one in Settings, then try again.")
                return answer

            def say_first(early) -> None:
                if request.cancel.is_set():
                    return
                self.first_words.emit(Answer(request, short=early.spoken, short_parts=early.spoken_parts))

            description = self._describer.describe(image, request.source, request.title,
                                                   self.options, request.text_only, say_first, request.cancel,
                                                   request.dialog)
            answer.model, answer.blank = description.model, description.blank
            answer.text, answer.short, answer.more = ("\n".join(description.lines()), description.spoken,
                                                      description.more)
            answer.without_text = "\n".join(description.lines(with_text=False))
            answer.short_parts, answer.more_parts = description.spoken_parts, description.more_parts
            answer.follow_parts = description.follow_parts
            answer.details = description.as_json(request.source)
        except Cancelled:
            answer.cancelled = True
            answer.error = _("Stopped before the description was done.")
        except GPUOutOfMemory:
            answer.error = _("The GPU ran out of memory. Choose the CPU in Settings, or close other programs.")
        except CaptionerError as exc:
            answer.error = names.shown(str(exc))  # it names the file: a newline, ESC or a byte that is not UTF-8
        except MemoryError:
            answer.error = _("Out of memory while describing this image. Close other programs, or pick the CPU in "
                             "Settings.")
        except Exception as exc:
            traceback.print_exc()
            answer.error = _("This image could not be described: {problem}").format(problem=first_line(exc))
        finally:
            answer.seconds = time.perf_counter() - started
        return answer


def _thumbnail(image) -> bytes:
    # Reduced by a whole factor first: a copy of a large picture (an 8K screen) at full size is never made.
    factor = max(1, min(image.width // THUMBNAIL_SIZE[0], image.height // THUMBNAIL_SIZE[1]))
    small = image.reduce(factor) if factor > 1 and image.mode in ("L", "RGB", "RGBA") else image.copy()
    small.thumbnail(THUMBNAIL_SIZE)
    buffer = io.BytesIO()
    small.save(buffer, "PNG")
    return buffer.getvalue()

