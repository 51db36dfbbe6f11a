"""Captioning data sets in the three layouts people have: COCO annotation files, Karpathy's split file, and a folder
with captions.jsonl. Each becomes a list of images, each with its split and its captions."""

from __future__ import annotations

import json
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

from captioner_gui.engine.errors import CaptionerError
from captioner_gui.i18n import _

CAPTIONS_FILE = "captions.jsonl"
SPLITS = ("train", "val", "test")
JSONL_LINE = '{"image": ..., "caption": ...}'  # a line of captions.jsonl, as messages show it


@dataclass
class ImageRecord:
    id: str  # the image id as a string ("391895" for COCO, the relative path for captions.jsonl)
    path: Path
    split: str
    captions: list[str] = field(default_factory=list)


def read_dataset(data: Path, images_root: Path | None = None) -> list[ImageRecord]:
    """Reads DATA (a COCO annotation file, a Karpathy split file, or a folder with captions.jsonl)."""
    data = Path(data).expanduser()
    if data.is_dir():
        if not (data / CAPTIONS_FILE).is_file():
            raise CaptionerError(_("{path} has no {file} (one {line} per line).").format(
                path=data, file=CAPTIONS_FILE, line=JSONL_LINE))
        return _read_jsonl(data / CAPTIONS_FILE, images_root or data)
    if data.name == CAPTIONS_FILE:
        return _read_jsonl(data, images_root or data.parent)
    if not data.is_file():
        raise CaptionerError(_("{path}: no such file or folder.").format(path=data))
    try:
        content = json.loads(data.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CaptionerError(_("{path} is not valid JSON ({reason}).").format(path=data, reason=exc)) from None
    if isinstance(content, dict) and isinstance(content.get("images"), list):
        if "annotations" in content:
            return _read_coco(content, data, images_root or data.parent)
        if content["images"] and "sentences" in content["images"][0]:
            return _read_karpathy(content, images_root or data.parent)
    raise CaptionerError(_("{path} is neither a COCO annotation file (images, annotations) nor a Karpathy split "
                           "file (images with sentences and split).").format(path=data))


def _read_jsonl(path: Path, root: Path) -> list[ImageRecord]:
    records: OrderedDict[str, ImageRecord] = OrderedDict()
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
            image, caption = entry["image"], entry["caption"]
        except (json.JSONDecodeError, KeyError, TypeError):
            raise CaptionerError(_("{path}, line {number}: expected {line}.").format(
                path=path, number=number, line=JSONL_LINE)) from None
        split = entry.get("split", "train")
        image_id = str(entry.get("image_id", image))
        record = records.setdefault(image, ImageRecord(image_id, root / image, split))
        record.captions.append(str(caption))
    return list(records.values())


def _split_from_name(name: str) -> str:
    lowered = name.lower()
    return "test" if "test" in lowered else "val" if "val" in lowered else "train"


def _read_coco(content: dict, path: Path, root: Path) -> list[ImageRecord]:
    default_split = _split_from_name(path.name)
    records = OrderedDict()
    for image in content["images"]:
        records[image["id"]] = ImageRecord(str(image["id"]), root / image["file_name"],
                                           image.get("split", default_split))
    for annotation in content["annotations"]:
        record = records.get(annotation["image_id"])
        if record is None:
            raise CaptionerError(_("{path}: a caption refers to image id {image}, which is not listed.").format(
                path=path, image=annotation["image_id"]))
        record.captions.append(str(annotation["caption"]))
    return list(records.values())


def _read_karpathy(content: dict, root: Path) -> list[ImageRecord]:
    records = []
    for image in content["images"]:
        split = "train" if image.get("split") == "restval" else image.get("split", "train")
        image_id = image.get("cocoid", image.get("imgid", image["filename"]))
        path = root / image.get("filepath", "") / image["filename"]
        records.append(ImageRecord(str(image_id), path, split, [s["raw"] for s in image["sentences"]]))
    return records


def select_split(records: list[ImageRecord], split: str) -> list[ImageRecord]:
    chosen = [r for r in records if r.split == split]
    if not chosen:
        present = sorted({r.split for r in records})
        raise CaptionerError(_("No images in split '{split}' (the data has: {splits}).").format(
            split=split, splits=", ".join(present)))
    return chosen


def write_coco_annotations(records: list[ImageRecord], path: Path, root: Path) -> None:
    """COCO-style references: {"images": [{"id", "file_name"}], "annotations": [{"id", "image_id", "caption"}]}."""
    images, annotations = [], []
    for number, record in enumerate(records):
        image_id = int(record.id) if record.id.isdigit() else number
        images.append({"id": image_id, "file_name": record.path.relative_to(root).as_posix()})
        for caption in record.captions:
            annotations.append({"id": len(annotations) + 1, "image_id": image_id, "caption": caption})
    path.write_text(json.dumps({"images": images, "annotations": annotations}, ensure_ascii=False), encoding="utf-8")
