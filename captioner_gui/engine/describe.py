"""One description of a picture: what kind it is, its text in reading order, the pictures inside it with their
captions, and the words to speak, short first. The one pipeline that the app, `captioner describe` and
`captioner describe-screen` share:

    blank? -> text (OCR lines -> blocks in reading order) -> pictures inside -> the kind (CLIP and the share of text)
    -> captions (the whole picture for a photo, chart or drawing; each picture inside a screenshot or a page)
    -> the words to speak.

ClipCap was trained on photos, so a screen or a screenshot never gets a caption of the whole of it: only the photos
inside it are captioned.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from captioner_gui.i18n import _, ngettext, spoken_language

from .errors import stop_if_cancelled
from .guard import AGREEMENT_DOUBTFUL, KIND_NAMES, Parts, around, blank_message, is_blank, sentence_of, worded
from .language import CHINESE, stop_text
from .layout import read_in_order
from .ocr import Line, OCRError, Page, TextReader
from .options import CAPTURES
from .pictures import find_pictures, where
from .translation import Translation

FIRST_LINES = 3  # lines of text in the short spoken form; the rest is read on request
FIRST_READ = FIRST_LINES  # lines of a capture read before its first words are said (more where some were not text)
PHOTO_SHARE = 0.6  # a picture that covers this much of a screen capture makes it a photo
PHOTO_MAX_TEXT = 0.1  # a file whose text covers more than this share of it is not described as a photo
DOCUMENT_MIN_TEXT = 0.08  # without CLIP's opinion: text covering this share makes a page of text
PHOTO_MIN_MARKS = 2  # a photo's text is read out from this many letters or digits in one block

Box = tuple[int, int, int, int]


@dataclass
class TextBlock:
    box: Box  # x, y, width, height in the image's pixels
    text: str  # its lines, one per line
    language: str  # "en" or "zh"


@dataclass
class FoundPicture:
    box: Box
    caption: str  # ClipCap's words, or their translation into the user's language (translation.py)
    where: str  # "top left", "centre", ... (in English; said in the user's language)
    parts: Parts  # what to say, in their languages: [("Picture at top left: ", "en"), ("A man riding.", "en")]
    original: str | None = None  # ClipCap's own words, where `caption` is their translation

    @property
    def spoken(self) -> str:
        return "".join(words for words, _language in self.parts)


@dataclass
class Description:
    """Everything said about one picture; `spoken` first, then `more` on request."""

    kind: str | None  # photo, screenshot, document, chart, drawing; None for a blank picture
    blank: bool = False
    title: str | None = None  # the window's title, where the platform tells
    blocks: list[TextBlock] = field(default_factory=list)
    pictures: list[FoundPicture] = field(default_factory=list)
    caption: str | None = None  # the sentence about the whole picture (photos, charts, drawings)
    original: str | None = None  # ClipCap's own words about the whole picture, where `caption` says their translation
    summary: str = ""  # the first sentence: kind, title, what was found
    spoken_parts: list[tuple[str, str]] = field(default_factory=list)  # the short form, as (words, language)
    more_parts: list[tuple[str, str]] = field(default_factory=list)  # the rest of the text, said on request
    follow_parts: list[tuple[str, str]] = field(default_factory=list)  # said after the first words (describe())
    notes: list[str] = field(default_factory=list)  # what went wrong on the way (the text could not be read)
    seconds: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage
    model: str = ""

    @property
    def spoken(self) -> str:
        """The short form: said at once."""
        return " ".join(words for words, _ in self.spoken_parts)

    @property
    def more(self) -> str:
        return " ".join(words for words, _ in self.more_parts)

    @property
    def text(self) -> str:
        """All the text found, in reading order, one line per line."""
        return "\n".join(block.text for block in self.blocks)

    @property
    def text_lines(self) -> list[str]:
        return [line for block in self.blocks for line in block.text.splitlines()]

    def lines(self, with_text: bool = True) -> list[str]:
        """The whole description as lines to read one by one: the summary, the caption or the pictures, the text
        (left out where `with_text` is False: what a screen's history entry keeps, unless the user asks for more)."""
        lines = [self.summary] if self.summary else []
        if self.caption and self.caption != self.summary:
            lines.append(self.caption)
        lines += [picture.spoken for picture in self.pictures]
        if with_text:
            lines += self.text_lines
        lines += self.notes
        return lines

    def as_json(self, image: str) -> dict:
        """The fields of `captioner describe --json`; "original" (ClipCap's own words) where a caption was
        translated."""
        pictures = [{"box": list(p.box), "caption": p.caption, "where": p.where,
                     **({"original": p.original} if p.original is not None else {})} for p in self.pictures]
        return {"image": image, "kind": self.kind, "blank": self.blank, "title": self.title, "text": self.text,
                "blocks": [{"box": list(b.box), "text": b.text, "language": b.language} for b in self.blocks],
                "pictures": pictures, **({"original": self.original} if self.original is not None else {}),
                "spoken": self.spoken, "more": self.more, "notes": self.notes, "seconds": round(self.seconds, 4),
                "timings": {k: round(v, 4) for k, v in self.timings.items()}}


class Describer:
    """A loaded caption model and the text reader, ready to describe pictures. The reader is started with the
    model (`start_reader`) or at the first description; when it cannot start, descriptions say so and give the
    caption alone. Captions are said in the user's language where a translation model for it is installed in
    `models_dir` (the default models folder when None); else as the captioner writes them.

    `captioner` may be None (no caption model installed yet): the text is still read and the pictures found, and
    `no_captions` (how to get a model, in the words of the program asking) is noted where a picture went without
    its caption. It is said in the first such description only; `notes` keep it every time."""

    def __init__(self, captioner, reader: TextReader | None = None, models_dir: Path | None = None,
                 no_captions: str = ""):
        self.captioner = captioner
        self.reader = reader
        self.reader_problem: str | None = None
        self.translation = Translation(models_dir)
        self.no_captions = no_captions
        self._no_captions_said = False

    @property
    def model_name(self) -> str:
        return self.captioner.name if self.captioner is not None else ""

    def start_reader(self) -> None:
        if self.reader is None and self.reader_problem is None:
            try:
                self.reader = TextReader()
            except OCRError as exc:
                self.reader_problem = str(exc)

    def start_translator(self) -> str | None:
        """Loads the translation model into the user's language now (about 0.1 s) rather than at the first
        description, where captions are translated. Returns why it cannot be used, if it cannot."""
        if self.captioner is None:
            return None
        self.translation.translator(self.captioner)
        return self.translation.news()

    def describe(self, image: Image.Image, source: str = "image", title: str | None = None, options=None,
                 text_only: bool = False, on_first_words: Callable[[Description], None] | None = None,
                 cancel: threading.Event | None = None, dialog: bool = False) -> Description:
        """Describes one picture. `source` is where it came from (a file, "clipboard", or one of CAPTURES: then it
        is never captioned as a whole); `text_only` reads its text and nothing else; `dialog`: the window titled
        `title` is a dialog.

        A capture's words are ready before all its text is read: the lines said first are read first, and
        `on_first_words` gets a Description whose `spoken_parts` can be said at once while the rest is read (its
        `timings["first_words"]` says when; it counts no lines, since some boxes found may turn out not to be
        text). The Description returned is whole; its `follow_parts` are what to say after those first words (the
        rest of the text, in `text_only`; else how many more lines there are, and what went wrong since).

        Once `cancel` is set (the user pressed Stop, or asked for something else), it raises Cancelled between two
        pieces of the work: a tile, a few lines, a caption."""
        started = time.perf_counter()
        timings: dict[str, float] = {}
        title = title.strip() or None if title else None
        if is_blank(image):
            return Description(kind=None, blank=True, title=title, summary=blank_message(source),
                               spoken_parts=[(blank_message(source), spoken_language())],
                               seconds=time.perf_counter() - started, model=self.model_name)
        reading = self._read_first(image, FIRST_READ if source in CAPTURES else None, timings, cancel)
        seen = None if text_only else self._see(image, source, title, reading, options, timings, cancel)
        seen_as = (title, dialog)
        early = None
        if reading.unread:  # words to say now, while the rest is read
            early = self._words(seen, seen_as, reading, cancel)
            timings["first_words"] = time.perf_counter() - started
            early.timings = dict(timings)
            if on_first_words is not None:
                on_first_words(early)
            self._read_rest(reading, timings, cancel)
        described = self._words(seen, seen_as, reading, cancel)
        if early is not None:  # the text read on; or the lines of the short form not said yet, how many more
            # lines there are, and what went wrong since
            sentences = _said_lines(described.blocks, title)
            ours = spoken_language()
            described.follow_parts = (_rest_of(early, described) if text_only else _joined(
                sentences[len(_said_lines(early.blocks, title)):FIRST_LINES] + _more_lines(len(sentences))
                + [(note, ours) for note in described.notes if note not in early.notes]))
        described.seconds = time.perf_counter() - started
        described.timings = timings | {"total": described.seconds}
        described.model = self.model_name
        if self.no_captions and self.no_captions in described.notes:
            self._no_captions_said = True
        return described

    # ------------------------------------------------------------------ the stages

    def _read_first(self, image: Image.Image, first: int | None, timings: dict[str, float],
                    cancel: threading.Event | None) -> _Reading:
        """Finds the lines of text and reads the first `first` in reading order (all of them where None)."""
        self.start_reader()
        if self.reader is None:
            return _Reading(problem=self.reader_problem)
        try:
            page = self.reader.find(image, cancel)
            unread = [Line(box, "", 0.0) for box in page.boxes]
            ordered = [line.box for block in read_in_order(unread, cancel) for line in block.lines]
            reading = _Reading(page, unread=ordered)
            step = first or len(ordered)
            while reading.unread and (len(reading.lines) < FIRST_LINES or first is None):  # boxes that were no
                reading.lines += self.reader.recognize(page, reading.unread[:step], cancel)  # text are left out
                reading.unread = reading.unread[step:]
        except OCRError as exc:
            return _Reading(problem=str(exc))
        timings.update(self.reader.timings)
        return reading

    def _read_rest(self, reading: _Reading, timings: dict[str, float], cancel: threading.Event | None) -> None:
        try:
            reading.lines += self.reader.recognize(reading.page, reading.unread, cancel)
        except OCRError as exc:
            reading.problem = str(exc)
        reading.unread = []
        timings.update(self.reader.timings)

    def _see(self, image, source, title, reading: _Reading, options, timings, cancel) -> _Seen:
        """The pictures inside, the kind, and the captions (one at a time, so that `cancel` stops them)."""
        began = time.perf_counter()
        text_boxes = [line.box for line in reading.lines] + reading.unread
        boxes = find_pictures(image, text_boxes) if reading.problem is None else []
        stop_if_cancelled(cancel)
        timings["pictures"] = time.perf_counter() - began
        began = time.perf_counter()
        [scores] = self.captioner.kinds([image]) if self.captioner is not None else [{}]
        timings["kind"] = time.perf_counter() - began
        text_share = sum(box[2] * box[3] for box in text_boxes) / (image.width * image.height)
        kind, whole = choose_kind(scores, source, image.size, text_share, boxes, reading.problem is not None)
        if self.captioner is None:  # no caption model: the pictures' places, and why they have no caption
            if whole is not None:
                named = _("Photo.") if kind == "photo" else _("Picture.")
                return _Seen(kind, caption=[(named, spoken_language())], uncaptioned=True)
            pictures = [_uncaptioned(box, image.size) for box in boxes]
            return _Seen(kind, pictures=pictures, uncaptioned=bool(pictures))
        began = time.perf_counter()
        if whole is not None:  # one picture: the image itself, or the photo that fills the capture
            picture = image if whole == (0, 0, *image.size) else image.crop(_corners(whole))
            [caption] = self.captioner.caption([picture], options)
            [(sentence, language)] = self.in_words([caption], timings)
            seen = _Seen(kind, worded(sentence, kind, caption.kind_scores, caption.agreement, title, language),
                         original=_original(caption, language))
        else:
            captions = []
            for box in boxes:
                stop_if_cancelled(cancel)
                captions += self.captioner.caption([image.crop(_corners(box))], options)
            seen = _Seen(kind, pictures=[_found(box, c, said, image.size) for box, c, said
                                         in zip(boxes, captions, self.in_words(captions, timings))])
        timings["captions"] = time.perf_counter() - began  # the translation's time included
        seen.note = self.translation.news()  # a translation model that stopped working: said once
        return seen

    def in_words(self, captions, timings: dict[str, float] | None = None) -> list[tuple[str, str]]:
        """Each caption's words to say, with their language: ClipCap's own words, in the language its model writes
        (English for the released models), or their translation into the user's language where the user has
        imported a translation model for it (translation.py)."""
        return self.translation.in_words([caption.text for caption in captions], self.captioner, timings)

    def _words(self, seen: _Seen | None, seen_as: tuple[str | None, bool], reading: _Reading,
               cancel: threading.Event | None = None) -> Description:
        """The description of what has been read so far, with the words to speak: for `seen` None, the text alone
        ("Read the text"). `seen_as`: the window's title, and whether it is a dialog. While lines are left to read,
        no count of lines is said: some of the boxes found may turn out not to be text."""
        title, dialog = seen_as
        blocks = [TextBlock(b.box, b.text, b.language) for b in read_in_order(reading.lines, cancel)]
        if seen is not None and seen.kind == "photo" and seen.caption is not None:  # a letter on a spacesuit is
            blocks = [block for block in blocks if _is_words(block.text)]  # no text to read out
        sentences = _said_lines(blocks, title)
        left = len(reading.unread)  # lines found but not yet read
        if seen is None:
            return self._text_only(blocks, sentences, left, seen_as, reading.problem)
        described = Description(kind=seen.kind, title=title, blocks=blocks, pictures=seen.pictures,
                                original=seen.original)
        ours = spoken_language()
        if reading.problem is not None:  # the reader's own sentence: "The text could not be read (...)."
            described.notes.append(reading.problem)
        if seen.note is not None:
            described.notes.append(seen.note)
        if seen.uncaptioned and self.no_captions:
            described.notes.append(self.no_captions)
        if seen.caption is not None:
            described.caption = described.summary = "".join(words for words, _language in seen.caption)
            spoken = seen.caption + ([(_("Text in it:"), ours)] if sentences else [])
        else:
            described.summary = _summary(seen.kind, seen_as, len(seen.pictures),
                                         None if left else len(described.text_lines))
            spoken = [(described.summary, ours)] + [part for p in seen.pictures for part in p.parts]
        spoken += sentences[:FIRST_LINES]
        if not left:
            spoken += _more_lines(len(sentences))
            described.more_parts = _joined(sentences[FIRST_LINES:])
        spoken += [(note, ours) for note in described.notes
                   if not (self._no_captions_said and note == self.no_captions)]  # said once is enough
        described.spoken_parts = _joined(spoken)
        return described

    def _text_only(self, blocks, sentences, left, seen_as, problem) -> Description:
        title, dialog = seen_as
        described = Description(kind="screenshot", title=title, blocks=blocks)
        ours = spoken_language()
        if problem is not None:
            described.summary = problem
            described.notes.append(problem)
        elif not sentences:
            described.summary = (_("No text found in {title}.").format(title=title) if title
                                 else _("No text found."))
        else:
            count = len(described.text_lines) + left
            if dialog and title:
                described.summary = ngettext("Dialog {title}: {count} line.", "Dialog {title}: {count} lines.",
                                             count).format(title=title, count=count)
            else:
                described.summary = (ngettext("{title}: {count} line.", "{title}: {count} lines.", count) if title
                                     else ngettext("{count} line of text.", "{count} lines of text.", count)
                                     ).format(title=title, count=count)
        if sentences:
            notes = [(problem, ours)] if problem is not None else []
            # Translators: said before the text of a dialog window ("Dialog Save as.").
            heading = [((_("Dialog {title}.") if dialog else _("{title}.")).format(title=title), ours)] if title else []
            described.spoken_parts = _joined(heading + sentences + notes)
        else:
            described.spoken_parts = [(described.summary, ours)]
        return described


@dataclass
class _Reading:
    """The text of a picture as far as it has been read: the lines read, and the boxes still to read in reading
    order; or why it could not be read."""

    page: Page | None = None
    lines: list[Line] = field(default_factory=list)
    unread: list[Box] = field(default_factory=list)
    problem: str | None = None

    @property
    def count(self) -> int:
        return len(self.lines) + len(self.unread)


@dataclass
class _Seen:
    """What the picture is: its kind, the hedged sentence about the whole of it, or the pictures inside it."""

    kind: str | None
    caption: Parts | None = None  # what is said of the whole picture (the kind, the hedge, the caption)
    pictures: list[FoundPicture] = field(default_factory=list)
    original: str | None = None  # ClipCap's own words about the whole picture, where `caption` says a translation
    note: str | None = None  # why the captions are not in the user's language, where that is news
    uncaptioned: bool = False  # a picture went without its caption: no caption model is installed


def _rest_of(early: Description, whole: Description) -> list[tuple[str, str]]:
    """The parts of `whole` after those said in `early`, whose last part may begin one of whole's (parts in one
    language are joined). All of `whole` where the first words are not its beginning."""
    said = len(early.spoken_parts)
    if whole.spoken_parts[:said - 1] != early.spoken_parts[:said - 1] or len(whole.spoken_parts) < said:
        return list(whole.spoken_parts)
    (last_said, language), (going_on, its_language) = early.spoken_parts[-1], whole.spoken_parts[said - 1]
    if (going_on, its_language) == (last_said, language):
        return whole.spoken_parts[said:]
    if its_language != language or not going_on.startswith(last_said):
        return list(whole.spoken_parts)
    return [(going_on[len(last_said):].strip(), language)] + whole.spoken_parts[said:]


def choose_kind(scores: dict[str, float], source: str, size: tuple[int, int], text_share: float,
                boxes: list[Box], text_unread: bool) -> tuple[str | None, Box | None]:
    """The kind of picture and, for one that is said as a whole (a photo, a chart, a drawing), the box to caption.

    CLIP's kind decides for files; the text and the pictures found decide for screen captures, which are never
    captioned as a whole: a capture is a photo only where one picture fills most of it."""
    area = size[0] * size[1]
    clip_kind = max(scores, key=scores.get) if scores else None
    capture = source in CAPTURES
    everything = (0, 0, *size)
    filling = [b for b in boxes if b[2] * b[3] >= PHOTO_SHARE * area]
    if filling:
        return "photo", max(filling, key=lambda b: b[2] * b[3])
    if text_unread:  # no text to go by: the caption alone, hedged where CLIP does not see a photo
        return (clip_kind or ("screenshot" if capture else None)), everything
    if not capture and clip_kind == "photo" and text_share < PHOTO_MAX_TEXT:
        return "photo", everything
    if not capture and clip_kind in ("chart", "drawing") and not boxes:
        return clip_kind, everything
    if text_share > 0 and not boxes and (clip_kind == "document" or (clip_kind is None
                                                                     and text_share >= DOCUMENT_MIN_TEXT)):
        return "document", None
    if not capture and not boxes and text_share == 0:
        return clip_kind, everything  # a file with no text and no pictures in it: its caption, hedged by its kind
    return "screenshot", None


def _summary(kind: str, seen_as: tuple[str | None, bool], pictures: int, lines: int | None) -> str:
    """"Screenshot of Mail: 2 pictures, 41 lines of text." / "Page of text, 12 lines." / "Dialog Save as: 3 lines
    of text." `seen_as`: the window's title and whether it is a dialog; `lines` None: not counted yet."""
    title, dialog = seen_as
    found = []
    if pictures:
        found.append(ngettext("{count} picture", "{count} pictures", pictures).format(count=pictures))
    if lines and kind == "document":
        found.append(ngettext("{count} line", "{count} lines", lines).format(count=lines))
    elif lines:
        found.append(ngettext("{count} line of text", "{count} lines of text", lines).format(count=lines))
    # Translators: between the things found ("2 pictures, 41 lines of text").
    found_words = _(", ").join(found)
    if dialog and title:
        # Translators: a dialog window and what was found in it ("Dialog Save as: 3 lines of text.").
        sentence = _("Dialog {title}: {found}.") if found else _("Dialog {title}.")
    elif lines is None and not found:  # the lines are still being read
        sentence = {"document": _("Page of text in {title}.") if title else _("Page of text.")}.get(
            kind, _("Screenshot of {title}.") if title else _("Screenshot."))
    elif kind == "document":
        if found:
            sentence = _("Page of text in {title}, {found}.") if title else _("Page of text, {found}.")
        else:
            sentence = _("Page of text in {title}.") if title else _("Page of text.")
    elif found:
        sentence = _("Screenshot of {title}: {found}.") if title else _("Screenshot: {found}.")
    else:
        sentence = (_("Screenshot of {title}: no text or pictures found.") if title
                    else _("Screenshot: no text or pictures found."))
    return sentence.format(title=title, found=found_words)


def _found(box: Box, caption, said: tuple[str, str], size: tuple[int, int]) -> FoundPicture:
    """A picture inside a screenshot and what to say of it: `said` is its caption's words and their language."""
    place = where(box, size)
    name = _("Picture") if caption.kind in (None, "photo", "screenshot", "document") else _(KIND_NAMES[caption.kind])
    words, language = said
    sentence = sentence_of(words, language)
    at = {"name": name, "place": _(place)}
    if caption.blank or not sentence:
        parts = [(_("{name} at {place}.").format(**at), spoken_language())]
    elif caption.kind in (None, "photo") and (caption.agreement is None or caption.agreement >= AGREEMENT_DOUBTFUL):
        parts = around(_("{name} at {place}: {sentence}"), sentence, language, **at)
    else:
        parts = around(_("{name} at {place}. Could be: {sentence}"), sentence, language, **at)
    return FoundPicture(box, words, place, parts, _original(caption, language))


def _uncaptioned(box: Box, size: tuple[int, int]) -> FoundPicture:
    """A picture inside a screenshot, said by its place alone (no caption model is installed)."""
    place = where(box, size)
    return FoundPicture(box, "", place, [(_("{name} at {place}.").format(name=_("Picture"), place=_(place)),
                                          spoken_language())])


def _original(caption, language: str) -> str | None:
    """ClipCap's own words, where the words said (in `language`) are their translation."""
    return caption.text if language != caption.language else None


def _is_words(text: str) -> bool:
    """Whether a block of a photo's text is worth reading out: at least two letters or digits, not one stray mark
    that the reader took for a letter."""
    return sum(character.isalnum() for character in text) >= PHOTO_MIN_MARKS


def _said_lines(blocks: list[TextBlock], title: str | None) -> list[tuple[str, str]]:
    """The lines of text to say, as sentences: without a first line that is the window's title, said already."""
    sentences = _lines_in_their_language(blocks)
    if title and sentences and _bare(sentences[0][0]) == _bare(title):
        return sentences[1:]
    return sentences


def _bare(words: str) -> str:
    return " ".join(words.split()).rstrip(".!?:;。！？：；…").casefold()


def _more_lines(lines: int) -> list[tuple[str, str]]:
    """ "33 more lines.": of `lines` to say, those after the short form's first ones, if any."""
    more = lines - FIRST_LINES
    return [(ngettext("{count} more line.", "{count} more lines.", more).format(count=more),
             spoken_language())] if more > 0 else []


def _lines_in_their_language(blocks: list[TextBlock]) -> list[tuple[str, str]]:
    """Every line as a sentence (so that a voice pauses between them), with its block's language."""
    return [(line if line[-1:] in ".!?:;。！？：；…" else line + stop_text(block.language),
             block.language) for block in blocks for line in block.text.splitlines()]


def _joined(parts: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Neighbouring words in the same language joined: one utterance per change of voice. A part's own spaces
    ("Picture at top left: ") are kept inside an utterance and trimmed at its ends; Chinese sentences follow each
    other with no space."""
    joined: list[tuple[str, str]] = []
    for words, language in parts:
        if not words.strip():
            continue
        if joined and joined[-1][1] == language:
            before = joined[-1][0]
            space = "" if before[-1:].isspace() or words[:1].isspace() or language == CHINESE else " "  # zh: none
            joined[-1] = (before + space + words, language)
        else:
            joined.append((words, language))
    return [(words.strip(), language) for words, language in joined]


def _corners(box: Box) -> tuple[int, int, int, int]:
    return box[0], box[1], box[0] + box[2], box[1] + box[3]
