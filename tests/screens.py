"""Generated screenshots for the reading tests: real fonts (DejaVu Sans; WenQuanYi Zen Hei for Chinese, Debian's
fonts-dejavu-core and fonts-wqy-zenhei), light and dark themes, columns, and real photos that scikit-image's wheel
ships, placed at known boxes. Each screen comes with what is on it: its lines in reading order and its pictures."""

from __future__ import annotations

import importlib.util
import random
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

FONT_FILES = {"latin": ("DejaVuSans.ttf",), "chinese": ("wqy-zenhei.ttc", "NotoSansCJK-Regular.ttc")}
THEMES = {"light": ((255, 255, 255), (25, 25, 25), (236, 236, 240)),  # page, text, chrome
          "dark": ((32, 33, 36), (232, 234, 237), (53, 54, 58))}
PHOTOS = ("astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg", "motorcycle_left.png")

WORDS = ("meeting agenda report invoice please review the attached document before friday budget for next quarter "
         "project schedule team update customer support account settings window message inbox draft travel plans "
         "library opening hours weather forecast concert tickets garden sale recipe for dinner").split()
CHINESE = ("今天下午三点在会议室开会请大家准时参加本周的工作报告已经发送到各位的邮箱里面如果有问题可以随时联系我们"
           "图书馆周末开放时间为上午九点到下午五点天气预报说明天有小雨出门记得带伞")


@dataclass
class Screen:
    image: Image.Image
    lines: list[str] = field(default_factory=list)  # every line of text, in reading order
    pictures: list[tuple[int, int, int, int]] = field(default_factory=list)  # x, y, w, h
    title: str | None = None


def font_file(script: str) -> Path:
    for root in (Path("/usr/share/fonts"), Path("/usr/local/share/fonts")):
        for name in FONT_FILES[script]:
            found = next(root.rglob(name), None) if root.is_dir() else None
            if found is not None:
                return found
    raise FileNotFoundError(f"no {script} font: apt-get install fonts-dejavu-core fonts-wqy-zenhei")


def font(size: int, script: str = "latin") -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(font_file(script)), size)


def photo(name: str) -> Image.Image:
    """One of the real photos in scikit-image's wheel (read as a file: the package is never imported)."""
    spec = importlib.util.find_spec("skimage")
    if spec is None or spec.origin is None:
        raise FileNotFoundError("scikit-image is missing: pip install --no-deps scikit-image")
    return Image.open(Path(spec.origin).parent / "data" / name).convert("RGB")


def english_lines(rng: random.Random, count: int, width_chars: int) -> list[str]:
    lines = []
    while len(lines) < count:
        words = [rng.choice(WORDS) for _ in range(rng.randint(width_chars // 9, width_chars // 7))]
        line = " ".join(words)[:width_chars].rsplit(" ", 1)[0]
        lines.append(line[0].upper() + line[1:])
    return lines


def chinese_lines(rng: random.Random, count: int, length: int) -> list[str]:
    lines = []
    for _ in range(count):
        start = rng.randrange(0, len(CHINESE) - length)
        lines.append(CHINESE[start:start + length])
    return lines


def text_page(size: int = 14, theme: str = "light", screen=(1366, 768), lines: int | None = None,
              script: str = "latin", seed: int = 0) -> Screen:
    """A page of paragraphs filling the screen."""
    page, ink, _ = THEMES[theme]
    image = Image.new("RGB", screen, page)
    draw, typeface = ImageDraw.Draw(image), font(size, script)
    rng = random.Random(seed)
    spoken, y, step = [], 24, int(size * 1.6)
    while y + step < screen[1] - 16 and (lines is None or len(spoken) < lines):
        for _ in range(rng.randint(2, 4)):
            if y + step >= screen[1] - 16 or (lines is not None and len(spoken) >= lines):
                break
            [line] = (chinese_lines(rng, 1, (screen[0] - 120) // size // 2) if script == "chinese"
                      else english_lines(rng, 1, int((screen[0] - 120) / (size * 0.6))))
            draw.text((48, y), line, font=typeface, fill=ink)
            spoken.append(line)
            y += step
        y += step // 2 + size
    return Screen(image, spoken)


def two_column_page(size: int = 15, theme: str = "light", screen=(1366, 768), seed: int = 1) -> Screen:
    """A heading across the page, then two columns of paragraphs: read the left column, then the right."""
    page, ink, _ = THEMES[theme]
    image = Image.new("RGB", screen, page)
    draw, typeface = ImageDraw.Draw(image), font(size)
    rng = random.Random(seed)
    heading = "Weekly news from the library"
    draw.text((48, 24), heading, font=font(size * 2), fill=ink)
    spoken = [heading]
    column_width = (screen[0] - 48 * 2 - 60) // 2
    for column in range(2):
        x, y = 48 + column * (column_width + 60), 24 + size * 4
        for paragraph in range(3):
            for line in english_lines(rng, 4, int(column_width / (size * 0.62))):
                draw.text((x, y), line, font=typeface, fill=ink)
                spoken.append(line)
                y += int(size * 1.6)
            y += size * 2
    return Screen(image, spoken)


def web_page(theme: str = "light", screen=(1366, 768), photos=("astronaut.png", "chelsea.png"),
             size: int = 14, seed: int = 2, title: str = "Holiday photos - Browser") -> Screen:
    """A browser window: chrome with a title, a heading, text, and photos at known boxes beside the text."""
    page, ink, chrome = THEMES[theme]
    image = Image.new("RGB", screen, page)
    draw, typeface = ImageDraw.Draw(image), font(size)
    draw.rectangle((0, 0, screen[0], 40), fill=chrome)
    rng = random.Random(seed)
    spoken = []
    draw.text((48, 60), "Our holiday", font=font(size * 2), fill=ink)
    spoken.append("Our holiday")
    boxes = []
    y = 120
    for index, name in enumerate(photos):
        picture = photo(name)
        picture.thumbnail((300, 200))
        box = (48, y, picture.width, picture.height)
        image.paste(picture, box[:2])
        boxes.append(box)
        text_x = 48 + 300 + 40
        line_y = y
        for line in english_lines(rng, 5, int((screen[0] - text_x - 48) / (size * 0.62))):
            draw.text((text_x, line_y), line, font=typeface, fill=ink)
            spoken.append(line)
            line_y += int(size * 1.6)
        y += max(picture.height, line_y - y) + 40
    return Screen(image, spoken, boxes, title)


def scanned_page(size: int = 18, screen=(1366, 768), lines: int = 10, seed: int = 22) -> Screen:
    """A page of text as a scanner gives it: slightly blurred, greyish paper, and grain in every pixel (so every
    cell of the paper is busy, as in a photo)."""
    import numpy as np
    from PIL import ImageFilter

    page = text_page(size, "light", screen=screen, lines=lines, seed=seed)
    grey = np.asarray(page.image.filter(ImageFilter.GaussianBlur(0.6)), dtype=np.float32) * 0.85 + 20
    grain = np.random.default_rng(seed).normal(0, 6, grey.shape)
    image = Image.fromarray(np.clip(grey + grain, 0, 255).astype(np.uint8))
    return Screen(image, page.lines)


def labels_screen(screen=(1920, 1080), size: int = 9, seed: int = 3) -> Screen:
    """A screen of small labels in a grid, a word each (a file manager's icon view, a spreadsheet): about 2,000 on
    1920x1080, which take half a minute to read on a 2-core CPU."""
    page, ink, _ = THEMES["light"]
    image = Image.new("RGB", screen, page)
    draw, typeface = ImageDraw.Draw(image), font(size)
    rng = random.Random(seed)
    labels = []
    for y in range(4, screen[1] - 14, 15):
        for x in range(4, screen[0] - 60, 66):
            labels.append(rng.choice(WORDS)[:7])
            draw.text((x, y), labels[-1], font=typeface, fill=ink)
    return Screen(image, labels)
