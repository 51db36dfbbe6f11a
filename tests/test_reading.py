"""Reading the screen: text (English and Chinese) in reading order, the pictures inside a screenshot, what is said.

Every screen is generated (tests/screens.py): real fonts, light and dark themes, real photos at known boxes, and a
real Qt dialog grabbed offscreen; the targets are the issue's: a character error rate of at most 0.05 for English
and 0.08 for Chinese, every picture of 100x100 pixels or more found with a box IoU of at least 0.7, no picture on a
page of text, and the right reading order.
"""

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cli_helpers import run_captioner
from screens import (chinese_lines, font, photo, scanned_page, text_page, two_column_page, web_page, THEMES)

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def edit_distance(a: str, b: str) -> int:
    previous = list(range(len(b) + 1))
    for i, char_a in enumerate(a, 1):
        current = [i]
        for j, char_b in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (char_a != char_b)))
        previous = current
    return previous[-1]


def error_rate(truth: list[str], read: list[str]) -> float:
    """Characters wrong, missing or extra, per character of the truth (spaces ignored, as they are in CJK)."""
    want, got = "".join("".join(truth).split()), "".join("".join(read).split())
    return edit_distance(want, got) / len(want)


def iou(a, b) -> float:
    left, top = max(a[0], b[0]), max(a[1], b[1])
    right, bottom = min(a[0] + a[2], b[0] + b[2]), min(a[1] + a[3], b[1] + b[3])
    inter = max(0, right - left) * max(0, bottom - top)
    return inter / (a[2] * a[3] + b[2] * b[3] - inter)


@pytest.fixture(scope="module")
def reader():
    from captioner_gui.engine.ocr import TextReader

    return TextReader()


@pytest.fixture(scope="module")
def describer(tiny_mlp, reader):
    from captioner_gui.engine import load_model
    from captioner_gui.engine.describe import Describer

    return Describer(load_model(str(tiny_mlp.folder), device="cpu"), reader)


def read_lines(reader, image):
    from captioner_gui.engine.layout import read_in_order

    return [line.text for block in read_in_order(reader.read(image)) for line in block.lines]


@pytest.mark.parametrize("size,theme", [(11, "light"), (14, "dark"), (24, "light")])
def test_english_text_is_read_in_order(reader, size, theme):
    screen = text_page(size, theme, lines=14, seed=size)
    read = read_lines(reader, screen.image)
    assert error_rate(screen.lines, read) <= 0.05, read
    assert len(read) == len(screen.lines)
    assert [error_rate([want], [got]) < 0.2 for want, got in zip(screen.lines, read)] == [True] * len(read)


@pytest.mark.parametrize("screen,script", [((1920, 1080), "latin"), ((1600, 900), "chinese")])
def test_a_screen_larger_than_a_tile_is_read_whole(reader, screen, script):
    """Read tile by tile: the lines that a tile's edge cuts in two (at 11 px, where the detector finds the two halves
    at different heights) are said once, whole and in order."""
    from captioner_gui.engine.ocr import TILE, tiles

    page = text_page(11 if script == "latin" else 16, "light", screen=screen, script=script, seed=11)
    assert len(tiles(*screen)) > 1 and all(r - l <= TILE[0] and b - t <= TILE[1] for l, t, r, b in tiles(*screen))
    read = read_lines(reader, page.image)
    assert len(read) == len(page.lines), read
    assert error_rate(page.lines, read) <= (0.05 if script == "latin" else 0.08), read


def test_tiles_cover_the_picture_and_overlap():
    from captioner_gui.engine.ocr import TILE, TILE_OVERLAP, tiles

    for width, height in [(1366, 768), (1920, 1080), (2560, 1440), (3000, 2000)]:
        covered = np.zeros((height, width), dtype=np.uint8)
        for left, top, right, bottom in tiles(width, height):
            assert right - left <= TILE[0] and bottom - top <= TILE[1]
            covered[top:bottom, left:right] += 1
        assert covered.min() >= 1
        if width > TILE[0]:  # neighbours share TILE_OVERLAP columns: a line of up to that height is whole in one
            assert (covered[0] > 1).sum() >= TILE_OVERLAP


def test_the_halves_of_a_cut_line_are_joined_and_nothing_else():
    from captioner_gui.engine.ocr import join_pieces

    # Found on a 1920x1080 screen: a line cut at a tile's right edge, its second half (cut at the next tile's left
    # edge) found lower, 15 against 24 px; on a 2560x1440 screen, a line's top cut off by a tile's bottom edge.
    assert join_pieces([(41, 456, 966, 24), (912, 462, 559, 15)], [True, True]) == [(41, 456, 1430, 24)]
    assert join_pieces([(41, 749, 1700, 25), (1233, 755, 511, 12)], [False, True]) == [(41, 749, 1703, 25)]
    apart = [[(48, 60, 300, 200), (60, 230, 200, 18)],  # a photo, and a line of text over it
             [(0, 0, 600, 36), (100, 10, 200, 16)],  # a block the detector misread, and a line in it
             [(0, 0, 400, 18), (0, 14, 400, 18)],  # two lines set tightly
             [(0, 0, 400, 40), (10, 30, 300, 14)]]  # a heading, and a line just under it
    for boxes in apart:
        assert join_pieces(boxes) == join_pieces(boxes, [False, False]) == boxes
    assert join_pieces(apart[2], [True, True]) == apart[2]  # tight lines stay apart at a tile's edge too


def test_chinese_and_mixed_text_are_read(reader):
    from captioner_gui.engine.layout import read_in_order

    screen = text_page(16, "light", lines=8, script="chinese", seed=3)
    blocks = read_in_order(reader.read(screen.image))
    read = [line.text for block in blocks for line in block.lines]
    assert error_rate(screen.lines, read) <= 0.08, read
    assert {block.language for block in blocks} == {"zh"}

    # A mail in both languages, on a dark theme: each block is said to be in its own language.
    page, ink, _ = THEMES["dark"]
    image = Image.new("RGB", (1000, 300), page)
    from PIL import ImageDraw

    draw = ImageDraw.Draw(image)
    english = ["Meeting moved to Friday afternoon", "Please bring the quarterly report"]
    [chinese] = chinese_lines(__import__("random").Random(5), 1, 20)
    draw.text((40, 30), english[0], font=font(18), fill=ink)
    draw.text((40, 60), english[1], font=font(18), fill=ink)
    draw.text((40, 160), chinese, font=font(18, "chinese"), fill=ink)
    blocks = read_in_order(reader.read(image))
    assert [b.language for b in blocks] == ["en", "zh"]
    assert error_rate(english + [chinese], [b.text for b in blocks]) <= 0.08


def test_two_columns_are_read_column_by_column(reader):
    screen = two_column_page(theme="dark")
    read = read_lines(reader, screen.image)
    assert error_rate(screen.lines, read) <= 0.05
    # Line for line: the heading, the left column top to bottom, then the right column.
    assert [error_rate([want], [got]) < 0.2 for want, got in zip(screen.lines, read)] == [True] * len(screen.lines)


def test_a_form_is_read_row_by_row(reader):
    """Labels and their values face each other: each label is followed by its value, not all labels first."""
    image = Image.new("RGB", (800, 260), (250, 250, 250))
    from PIL import ImageDraw

    draw = ImageDraw.Draw(image)
    rows = [("Name:", "Ada Lovelace"), ("Email:", "ada@example.org"), ("Phone:", "555 0199")]
    for index, (label, value) in enumerate(rows):
        draw.text((40, 40 + index * 60), label, font=font(16), fill=(20, 20, 20))
        draw.text((300, 40 + index * 60), value, font=font(16), fill=(20, 20, 20))
    read = read_lines(reader, image)
    assert error_rate([t for row in rows for t in row], read) <= 0.05
    assert [r.rstrip(":") for r in read[::2]] == ["Name", "Email", "Phone"]


def test_pictures_are_found_at_their_boxes_and_none_on_text(reader):
    from captioner_gui.engine.pictures import find_pictures

    for theme in ("light", "dark"):
        screen = web_page(theme, screen=(1366, 880), photos=("astronaut.png", "coffee.png", "rocket.jpg"))
        lines = reader.read(screen.image)
        found = find_pictures(screen.image, [line.box for line in lines])
        assert len(found) == len(screen.pictures), found
        for want, got in zip(screen.pictures, found):
            assert iou(want, got) >= 0.7, (want, got)
        assert error_rate(screen.lines, read_lines(reader, screen.image)) <= 0.05

    for page in (text_page(12, "light", seed=7), two_column_page(), text_page(16, "dark", script="chinese"),
                 scanned_page()):  # a scan's grainy paper is busy everywhere, but it is a page of text
        lines = reader.read(page.image)
        assert find_pictures(page.image, [line.box for line in lines]) == []
        assert error_rate(page.lines, read_lines(reader, page.image)) <= 0.05

    # An icon (48x48) is not a picture; a small photo (120x100) is.
    image = Image.new("RGB", (600, 400), (240, 240, 240))
    image.paste(photo("chelsea.png").resize((48, 48)), (20, 20))
    image.paste(photo("coffee.png").resize((120, 100)), (300, 200))
    [box] = find_pictures(image, [])
    assert iou(box, (300, 200, 120, 100)) >= 0.7


def test_a_qt_dialog_is_read_and_has_no_pictures(reader, qapp):
    from PySide6.QtWidgets import QMessageBox

    from captioner_gui.app.window import image_to_png
    from captioner_gui.engine import load_image_bytes
    from captioner_gui.engine.pictures import find_pictures

    box = QMessageBox(QMessageBox.Icon.Question, "Save changes",
                      "Do you want to save the changes to the report before closing?",
                      QMessageBox.StandardButton.Save | QMessageBox.StandardButton.Discard
                      | QMessageBox.StandardButton.Cancel)
    box.resize(520, 180)
    box.show()
    qapp.processEvents()
    image = load_image_bytes(image_to_png(box.grab().toImage()))
    box.close()
    lines = reader.read(image)
    read = read_lines(reader, image)
    want = ["Do you want to save the changes to the report before closing?", "Save", "Discard", "Cancel"]
    assert error_rate(want, read) <= 0.05, read
    assert find_pictures(image, [line.box for line in lines]) == []


# ------------------------------------------------------------------------------------------------- what is said


def fix_kind(describer, monkeypatch, kind):
    """CLIP's opinion of the whole picture, fixed (the tiny test CLIP has random weights)."""
    monkeypatch.setattr(describer.captioner, "kinds", lambda images: [{kind: 1.0}] * len(images))


def test_a_screenshot_says_its_title_pictures_and_first_lines(describer, monkeypatch):
    fix_kind(describer, monkeypatch, "screenshot")
    screen = web_page(photos=("astronaut.png", "chelsea.png"))
    described = describer.describe(screen.image, "window", "Holiday photos - Browser")
    assert described.kind == "screenshot" and described.caption is None  # no caption of the whole screen
    assert described.summary == f"Screenshot of Holiday photos - Browser: 2 pictures, {len(screen.lines)} lines " \
                                "of text."
    assert [p.where for p in described.pictures] == ["top left", "left"]
    assert all(p.spoken.startswith(("Picture at", "Drawing at", "Chart or diagram at")) for p in described.pictures)
    assert described.spoken.startswith(described.summary + " " + described.pictures[0].spoken)
    assert f"{len(screen.lines) - 3} more lines." in described.spoken
    assert described.more.split(". ")[0] == described.text_lines[3].rstrip(".")
    assert described.lines()[:3] == [described.summary, *(p.spoken for p in described.pictures)]
    assert described.lines()[3:] == described.text_lines
    for stage in ("ocr_detection", "ocr_recognition", "pictures", "captions", "total"):
        assert stage in described.timings


def test_a_page_of_text_says_its_first_lines_and_how_many_more(describer, monkeypatch):
    fix_kind(describer, monkeypatch, "document")
    page = text_page(14, lines=10, seed=11)
    described = describer.describe(page.image, "scan.png")
    assert described.kind == "document" and not described.pictures
    assert described.spoken.startswith("Page of text, 10 lines. " + page.lines[0])
    assert described.spoken.endswith("7 more lines.")


def test_a_photo_gives_its_caption_then_its_text(describer, monkeypatch):
    fix_kind(describer, monkeypatch, "photo")
    picture = photo("astronaut.png").resize((512, 512))
    from PIL import ImageDraw

    ImageDraw.Draw(picture).text((20, 460), "EXIT ONLY", font=font(28), fill=(255, 255, 255))
    described = describer.describe(picture, "astronaut.png")
    assert described.kind == "photo" and described.caption and not described.pictures
    assert described.spoken.startswith(described.caption)
    assert "Text in it: EXIT ONLY." in described.spoken

    # On the screen, a photo that fills most of the capture is said as a photo: its caption.
    monkeypatch.setattr(describer.captioner, "kinds", lambda images: [{"screenshot": 1.0}] * len(images))
    screen = Image.new("RGB", (1000, 700), (30, 30, 30))
    screen.paste(photo("chelsea.png").resize((900, 600)), (50, 50))
    described = describer.describe(screen, "window", "Image Viewer")
    assert described.kind == "photo" and described.caption.startswith(("Photo in Image Viewer", "Image Viewer: "))


def test_blank_8k_all_photo_and_a_failing_reader_never_crash(describer, monkeypatch):
    from captioner_gui.engine.ocr import OCRError

    fix_kind(describer, monkeypatch, "screenshot")
    blank = describer.describe(Image.new("RGB", (1366, 768), (0, 0, 0)), "screen")
    assert blank.blank and blank.spoken == "The screen is blank." and blank.kind is None

    big = Image.new("RGB", (7680, 4320), (255, 255, 255))
    from PIL import ImageDraw

    ImageDraw.Draw(big).text((200, 200), "Quarterly results are ready", font=font(48), fill=(0, 0, 0))
    big.paste(photo("coffee.png"), (3000, 2000))
    described = describer.describe(big, "screen")
    assert "Quarterly results are ready" in described.text
    assert len(described.pictures) == 1 and iou(described.pictures[0].box, (3000, 2000, 600, 400)) >= 0.7

    everything = photo("astronaut.png").resize((1366, 768))
    described = describer.describe(everything, "screen")
    assert described.kind == "photo" and described.caption

    def broken(image, cancel=None):
        raise OCRError("The text could not be read (the reader's model is damaged).")

    monkeypatch.setattr(describer.reader, "find", broken)
    described = describer.describe(text_page(14, lines=5).image, "screen", "Mail")
    assert described.caption and described.notes == ["The text could not be read (the reader's model is damaged)."]
    assert described.spoken.endswith(described.notes[0])


def test_read_the_text_gives_the_text_alone(describer):
    page = text_page(14, lines=4, seed=4)
    described = describer.describe(page.image, "window", "Notes", text_only=True)
    assert not described.pictures and described.caption is None
    assert described.spoken.startswith("Notes. " + page.lines[0])
    assert error_rate(page.lines, described.text_lines) <= 0.05


def test_a_capture_is_spoken_before_all_its_text_is_read(describer, monkeypatch):
    fix_kind(describer, monkeypatch, "screenshot")
    screen = web_page(photos=("astronaut.png", "chelsea.png"))
    read_calls, first = [], []
    recognize = describer.reader.recognize
    monkeypatch.setattr(describer.reader, "recognize",
                        lambda page, boxes, cancel=None: read_calls.append(len(boxes)) or recognize(page, boxes))
    whole = describer.describe(screen.image, "window", "Browser",
                               on_first_words=lambda early: first.append((early, list(read_calls))))
    [(early, read_then)] = first
    assert sum(read_then) < len(screen.lines) == sum(read_calls)  # said while most lines were still unread
    # The first words count no lines (some boxes found turn out not to be text); what follows them says how many
    # more there are, the count of what the window shows.
    assert early.spoken.startswith("Screenshot of Browser: 2 pictures. ") and "lines" not in early.spoken
    assert whole.summary == f"Screenshot of Browser: 2 pictures, {len(whole.text_lines)} lines of text."
    assert whole.follow_parts == [(f"{len(whole.text_lines) - 3} more lines.", "en")]
    assert whole.spoken.endswith(f"{len(whole.text_lines) - 3} more lines.")
    assert early.timings["first_words"] < whole.timings["total"]
    assert len(whole.text_lines) == len(screen.lines)

    # Reading the text alone: the first lines at once, the rest after them, nothing said twice or lost.
    page = text_page(14, lines=12, seed=7)
    first.clear()
    whole = describer.describe(page.image, "screen", "Notes", text_only=True,
                               on_first_words=lambda early: first.append((early, None)))
    [(early, _)] = first
    assert early.spoken.startswith("Notes. " + page.lines[0]) and len(early.spoken) < len(whole.spoken)
    assert f"{early.spoken} {' '.join(w for w, _ in whole.follow_parts)}" == whole.spoken

    # The text could not be read on after the first words: the user hears why.
    def broken(page, boxes, cancel=None):
        if len(boxes) > 3:
            raise OCRError("The text could not be read (out of memory).")
        return recognize(page, boxes)

    from captioner_gui.engine.ocr import OCRError

    monkeypatch.setattr(describer.reader, "recognize", broken)
    whole = describer.describe(page.image, "screen", "Notes", on_first_words=lambda early: None)
    assert whole.follow_parts == [("The text could not be read (out of memory).", "en")]
    assert 3 <= len(whole.text_lines) < len(page.lines)  # what was read is kept


def test_describe_command_prints_the_description_and_its_json(tiny_mlp, tmp_path):
    screen = web_page(photos=("astronaut.png",))
    path = tmp_path / "page.png"
    screen.image.save(path)
    plain = run_captioner("describe", path, "--model", tiny_mlp.folder, "--device", "cpu")
    assert plain.returncode == 0, plain.stderr
    printed = plain.stdout.splitlines()
    assert error_rate(screen.lines, printed[-len(screen.lines):]) <= 0.05, printed  # every line, in order

    answer = run_captioner("describe", path, "--model", tiny_mlp.folder, "--device", "cpu", "--json")
    assert answer.returncode == 0, answer.stderr
    [result] = json.loads(answer.stdout)
    assert set(result) >= {"image", "kind", "blank", "title", "text", "blocks", "pictures", "spoken", "seconds"}
    assert result["image"] == str(path) and result["title"] is None and result["blank"] is False
    assert error_rate(screen.lines, result["text"].splitlines()) <= 0.05
    assert all(len(block["box"]) == 4 and block["language"] == "en" for block in result["blocks"])
    if result["kind"] != "photo":  # the tiny CLIP's random opinion decides between photo and the rest
        [picture] = result["pictures"]
        assert iou(picture["box"], screen.pictures[0]) >= 0.7 and picture["where"] == "top left"


# ------------------------------------------------------------------------------------------ without a caption model

EXAMPLES = Path(__file__).resolve().parent.parent / "resources" / "examples"
MESSAGE = EXAMPLES / "message-with-a-photo.png"  # a real screenshot: a window's title, text, buttons and a photo
MESSAGE_LINES = ["Messages - Anna Berg", "Photos from the weekend", "From: Anna Berg, Saturday 14:32",
                 "Hi Sam! This is Chelsea, our new cat.", "She slept on the sofa all afternoon.",
                 "Come and meet her on Monday?", "Reply", "Forward", "Delete"]


def test_describe_reads_and_finds_pictures_with_no_caption_model_installed(tmp_path):
    empty = tmp_path / "no-models"
    text_only = run_captioner("describe", "--text-only", MESSAGE, "--models-dir", empty)
    assert text_only.returncode == 0, text_only.stderr
    assert error_rate(MESSAGE_LINES, text_only.stdout.splitlines()[1:]) <= 0.05, text_only.stdout
    assert "caption" not in text_only.stdout + text_only.stderr  # reading alone: nothing to say about captions

    both = run_captioner("describe", MESSAGE, MESSAGE, EXAMPLES / "red-circle-above-blue-square.png",
                         "--models-dir", empty)
    assert both.returncode == 0, both.stderr
    how = "Get it with: captioner models download coco"
    assert both.stdout.count(how) == 1, both.stdout  # said once, in one line
    [note] = [line.strip() for line in both.stdout.splitlines() if how in line]
    assert note.startswith("Pictures are not captioned")
    first = both.stdout.split(f"{MESSAGE}:")[1]
    assert "Screenshot: 1 picture, 9 lines of text." in first and "Picture at centre." in first
    assert "Hi Sam! This is Chelsea, our new cat." in first

    answer = run_captioner("describe", MESSAGE, "--json", "--models-dir", empty)
    assert answer.returncode == 0, answer.stderr
    [result] = json.loads(answer.stdout)
    assert result["notes"] == [note] and result["kind"] == "screenshot"
    [picture] = result["pictures"]
    assert picture["caption"] == "" and picture["where"] == "centre"
    assert error_rate(MESSAGE_LINES, result["text"].splitlines()) <= 0.05


def test_make_run_offline_describes_the_examples(tmp_path):
    """`make run` on a machine with no network: the download fails in one line, and the examples are described
    with what works offline (the install step is skipped here: PIP=true)."""
    import os
    import subprocess

    root = EXAMPLES.parent.parent
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "CAPTIONER_MODELS": str(tmp_path / "models")}
    run = subprocess.run(["make", "-s", "run", "PIP=true", f"PYTHON={sys.executable}"], cwd=root, env=env,
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "Cannot reach the Hugging Face Hub" in run.stderr
    assert "Hi Sam! This is Chelsea, our new cat." in run.stdout and "Picture at centre." in run.stdout
    assert run.stdout.count("captioner models download coco") == 1


def test_a_stray_letter_on_a_photo_is_not_read_out(describer, monkeypatch):
    fix_kind(describer, monkeypatch, "photo")
    picture = photo("astronaut.png").resize((512, 512))
    from PIL import ImageDraw

    ImageDraw.Draw(picture).text((40, 420), "B", font=font(40), fill=(255, 255, 255))
    described = describer.describe(picture, "astronaut.png")
    assert described.kind == "photo" and "B" in [line.text for line in describer.reader.recognize(
        *_page_and_boxes(describer.reader, picture))]  # the reader does see the letter
    assert "Text in it" not in described.spoken and described.text == ""


def _page_and_boxes(reader, image):
    page = reader.find(image)
    return page, page.boxes


# ------------------------------------------------------------------------------------------------- in Chinese


@pytest.fixture
def in_chinese():
    from captioner_gui import i18n

    i18n.use("zh_CN")
    yield
    i18n.use("en")


def test_a_screenshot_is_described_in_chinese_with_the_english_caption_in_an_english_voice(describer, monkeypatch,
                                                                                            in_chinese):
    """The app's words in Chinese, the English caption (no translation model) kept in English and tagged so, for an
    English voice to say it; the text read from the screen in its own language."""
    fix_kind(describer, monkeypatch, "screenshot")
    screen = web_page(photos=("astronaut.png", "chelsea.png"))
    described = describer.describe(screen.image, "window", "Holiday photos - Browser")
    assert described.summary == f"Holiday photos - Browser的截图：2 张图片，{len(screen.lines)} 行文字。"
    assert [p.where for p in described.pictures] == ["top left", "left"]  # the JSON keeps English keys
    first = described.pictures[0]
    assert first.parts[0][0].startswith("左上角的") and first.parts[0][1] == "zh"
    assert first.parts[1] == (first.parts[1][0], "en") and first.caption.strip()[:5] in first.parts[1][0].lower()
    languages = [language for _, language in described.spoken_parts]
    assert languages[0] == "zh" and "en" in languages
    assert all(a != b for a, b in zip(languages, languages[1:]))  # one utterance per change of voice
    assert f"还有 {len(screen.lines) - 3} 行。" in described.spoken


def test_a_blank_screen_and_a_page_of_text_in_chinese(describer, monkeypatch, in_chinese):
    blank = describer.describe(Image.new("RGB", (640, 480), (20, 20, 20)), "screen")
    assert blank.spoken == "屏幕是空白的。" and blank.spoken_parts == [("屏幕是空白的。", "zh")]
    fix_kind(describer, monkeypatch, "document")
    page = text_page(14, lines=10, seed=11)
    described = describer.describe(page.image, "scan.png")
    assert described.spoken_parts[0] == ("文字页面，10 行。", "zh")
    assert described.spoken_parts[1] == (" ".join(line if line.endswith(".") else line + "." for line in
                                                  page.lines[:3]), "en")
    assert described.spoken_parts[2] == ("还有 7 行。", "zh")


# ------------------------------------------------------------------------------------------------- stopping


def test_a_long_reading_stops_between_two_pieces_once_it_is_cancelled(describer, monkeypatch):
    """A screen of 2,000 small labels takes half a minute to read. Once the user asks for something else (Stop,
    Escape, a new request, quitting: the event is set), no further piece is read: not a tile, not a few lines."""
    import threading

    from screens import labels_screen

    from captioner_gui.engine.errors import Cancelled
    from captioner_gui.engine.ocr import RECOGNITION_PIECE

    fix_kind(describer, monkeypatch, "screenshot")
    screen = labels_screen()
    reader = describer.reader

    # Past the first words: the rest of the lines are read a few at a time, and none once it is cancelled.
    cancel, pieces = threading.Event(), []
    recognize = reader._recognize
    monkeypatch.setattr(reader, "_recognize", lambda batch: pieces.append(cancel.is_set()) or recognize(batch))
    with pytest.raises(Cancelled):
        describer.describe(screen.image, "screen", on_first_words=lambda early: cancel.set(), cancel=cancel)
    assert pieces and True not in pieces
    assert len(pieces) * RECOGNITION_PIECE < 0.05 * len(screen.lines)  # most of the labels were never read

    # Before them: the lines are found tile by tile.
    cancel, tiles = threading.Event(), []
    detect = reader._detect
    monkeypatch.setattr(reader, "_detect", lambda tile: tiles.append(tile.shape) or cancel.set() or detect(tile))
    with pytest.raises(Cancelled):
        describer.describe(screen.image, "screen", cancel=cancel)
    assert len(tiles) == 1  # of four


def test_a_title_is_said_once_and_a_dialog_is_called_a_dialog(describer):
    """The window's title bar, read as the first line, is not said again after the title; a dialog is called so,
    with its title, never "Page of text"."""
    page = text_page(14, lines=5, seed=5)
    first_line = describer.describe(page.image, "window", text_only=True).text_lines[0]
    described = describer.describe(page.image, "window", first_line, text_only=True)
    assert described.spoken.startswith(f"{first_line}. ") and described.spoken.count(first_line) == 1
    described = describer.describe(page.image, "window", first_line)
    assert described.spoken.count(first_line) == 1, described.spoken

    dialog = describer.describe(page.image, "window", "Save as", dialog=True)
    assert dialog.summary.startswith(f"Dialog Save as: {len(dialog.text_lines)} lines"), dialog.summary
    assert dialog.spoken.startswith(dialog.summary)
    read = describer.describe(page.image, "window", "Save as", text_only=True, dialog=True)
    assert read.spoken.startswith("Dialog Save as. ")
