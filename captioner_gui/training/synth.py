"""A synthetic captioning set: pictures of a few shapes in several colours, sizes, counts and positions, each with
captions that say what is there ("two red circles above a blue square.", in Chinese
"两个红色的圆形在一个蓝色的正方形上面。"). For demos and for tests that must show learning without COCO. The
captions' language never changes the pictures: the same seed draws the same scenes in every language."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw

from .datasets import CAPTIONS_FILE, ImageRecord, write_coco_annotations

COLOURS = {"red": (220, 40, 40), "green": (40, 170, 60), "blue": (40, 80, 220), "yellow": (235, 205, 40)}
SHAPES = ("circle", "square", "triangle")
SIZES = {"small": 0.55, "big": 1.0}
COUNTS = {1: "a", 2: "two", 3: "three"}
RELATIONS = {"above": "below", "below": "above", "left of": "right of", "right of": "left of"}
# Chinese: a count with its measure word, colours, shapes, sizes (before the noun) and places (after the noun
# they are relative to: 在一个蓝色的正方形上面, "above a blue square").
ZH_COUNTS = {1: "一个", 2: "两个", 3: "三个"}
ZH_COLOURS = {"red": "红色", "green": "绿色", "blue": "蓝色", "yellow": "黄色"}
ZH_SHAPES = {"circle": "圆形", "square": "正方形", "triangle": "三角形"}
ZH_SIZES = {"small": "小", "big": "大"}
ZH_PLACES = {"above": "上面", "below": "下面", "left of": "左边", "right of": "右边"}
IMAGE_SIZE = 128
BACKGROUND = (245, 245, 240)


@dataclass(frozen=True)
class Group:
    count: int
    colour: str
    shape: str
    size: str

    def words(self, with_size: bool) -> str:
        noun = self.shape + ("s" if self.count > 1 else "")
        size = f"{self.size} " if with_size else ""
        return f"{COUNTS[self.count]} {size}{self.colour} {noun}"

    def chinese(self, with_size: bool) -> str:
        """"两个蓝色的正方形", with the size "两个蓝色的大正方形" (Chinese has no plural)."""
        size = ZH_SIZES[self.size] if with_size else ""
        return f"{ZH_COUNTS[self.count]}{ZH_COLOURS[self.colour]}的{size}{ZH_SHAPES[self.shape]}"


def random_scene(rng: random.Random) -> tuple[list[Group], str | None]:
    def group() -> Group:
        return Group(rng.choice(list(COUNTS)), rng.choice(list(COLOURS)), rng.choice(SHAPES), rng.choice(list(SIZES)))

    if rng.random() < 0.4:
        return [group()], None
    first, second = group(), group()
    while (second.colour, second.shape) == (first.colour, first.shape):
        second = group()
    return [first, second], rng.choice(list(RELATIONS))


def captions_for(groups: list[Group], relation: str | None, language: str = "en") -> list[str]:
    if language == "zh":
        return chinese_captions_for(groups, relation)
    if relation is None:
        return [f"{groups[0].words(True)}.", f"{groups[0].words(False)}."]
    a, b = groups
    return [f"{a.words(False)} {relation} {b.words(False)}.", f"{b.words(True)} {RELATIONS[relation]} {a.words(True)}."]


def chinese_captions_for(groups: list[Group], relation: str | None) -> list[str]:
    """The same two captions in Chinese: "一个红色的小圆形。" / "两个红色的圆形在一个蓝色的正方形上面。"."""
    if relation is None:
        return [f"{groups[0].chinese(True)}。", f"{groups[0].chinese(False)}。"]
    a, b = groups
    return [f"{a.chinese(False)}在{b.chinese(False)}{ZH_PLACES[relation]}。",
            f"{b.chinese(True)}在{a.chinese(True)}{ZH_PLACES[RELATIONS[relation]]}。"]


def draw_scene(groups: list[Group], relation: str | None, rng: random.Random) -> Image.Image:
    image = Image.new("RGB", (IMAGE_SIZE, IMAGE_SIZE), BACKGROUND)
    draw = ImageDraw.Draw(image)
    full = (0, 0, IMAGE_SIZE, IMAGE_SIZE)
    half = IMAGE_SIZE // 2
    if relation is None:
        regions = [full]
    elif relation in ("above", "below"):
        top, bottom = (0, 0, IMAGE_SIZE, half), (0, half, IMAGE_SIZE, IMAGE_SIZE)
        regions = [top, bottom] if relation == "above" else [bottom, top]
    else:
        left, right = (0, 0, half, IMAGE_SIZE), (half, 0, IMAGE_SIZE, IMAGE_SIZE)
        regions = [left, right] if relation == "left of" else [right, left]
    for group, region in zip(groups, regions):
        _draw_group(draw, group, region, rng)
    return image


def _draw_group(draw: ImageDraw.ImageDraw, group: Group, region: tuple[int, int, int, int], rng: random.Random) -> None:
    x0, y0, x1, y1 = region
    width, height = x1 - x0, y1 - y0
    horizontal = width >= height
    cells = group.count
    cell_w = width / cells if horizontal else width
    cell_h = height if horizontal else height / cells
    side = min(cell_w, cell_h) * 0.8 * SIZES[group.size]
    colour = COLOURS[group.colour]
    for i in range(cells):
        cx = x0 + (i + 0.5) * cell_w if horizontal else x0 + width / 2
        cy = y0 + height / 2 if horizontal else y0 + (i + 0.5) * cell_h
        cx += rng.uniform(-0.08, 0.08) * cell_w
        cy += rng.uniform(-0.08, 0.08) * cell_h
        box = (cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2)
        if group.shape == "circle":
            draw.ellipse(box, fill=colour)
        elif group.shape == "square":
            draw.rectangle(box, fill=colour)
        else:
            draw.polygon([(cx, box[1]), (box[2], box[3]), (box[0], box[3])], fill=colour)


def write_synthetic_set(out: Path, count: int, seed: int = 0, fractions=(0.8, 0.1, 0.1),
                        language: str = "en") -> list[ImageRecord]:
    """Writes OUT/images/*.png, OUT/captions.jsonl (with a "split" field) and OUT/captions_{split}.json, the
    captions in `language` ("en" or "zh")."""
    rng = random.Random(seed)
    out.mkdir(parents=True, exist_ok=True)
    (out / "images").mkdir(exist_ok=True)
    n_train = round(count * fractions[0])
    n_val = round(count * fractions[1])
    records = []
    for index in range(count):
        split = "train" if index < n_train else "val" if index < n_train + n_val else "test"
        groups, relation = random_scene(rng)
        name = f"images/{index:06d}.png"
        draw_scene(groups, relation, rng).save(out / name)
        records.append(ImageRecord(str(index), out / name, split, captions_for(groups, relation, language)))
    with (out / CAPTIONS_FILE).open("w", encoding="utf-8") as file:
        for record in records:
            for caption in record.captions:
                file.write(json.dumps({"image": record.path.relative_to(out).as_posix(), "caption": caption,
                                       "split": record.split, "image_id": int(record.id)},
                                      ensure_ascii=False) + "\n")
    for split in ("train", "val", "test"):
        write_coco_annotations([r for r in records if r.split == split], out / f"captions_{split}.json", out)
    return records
