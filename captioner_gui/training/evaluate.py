"""`captioner evaluate`: caption a split of a data set with a model and score it, or score a results file."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Callable

from captioner_gui.engine.decoding import DecodeOptions
from captioner_gui.engine.errors import CaptionerError
from captioner_gui.engine.images import load_image
from captioner_gui.engine.language import guess_language
from captioner_gui.i18n import _

from .datasets import read_dataset, select_split
from .metrics import score_captions


def evaluate_model(model, data: Path, split: str = "test", images_root: Path | None = None,
                   options: DecodeOptions | None = None, batch_size: int = 16, progress: bool = True,
                   report: Callable[[str], None] = lambda m: None) -> tuple[dict, list[dict]]:
    """Captions every image of the split with a loaded Captioner; returns (scores, COCO-format predictions), scored
    in the model's caption language (Chinese on characters)."""
    from tqdm import tqdm

    records = select_split(read_dataset(data, images_root), split)
    references, predictions, results = {}, {}, []
    bar = tqdm(total=len(records), unit="image", desc=_("captioning"), disable=not progress, file=sys.stderr)
    for start in range(0, len(records), batch_size):
        batch, images = [], []
        for record in records[start:start + batch_size]:
            try:
                images.append(load_image(record.path))
                batch.append(record)
            except CaptionerError as exc:
                # Translators: an image that could not be read, and why.
                report(_("skipped: {reason}").format(reason=exc))
        for record, caption in zip(batch, model.caption(images, options) if images else []):
            references[record.id] = record.captions
            predictions[record.id] = caption.text
            results.append({"image_id": int(record.id) if record.id.isdigit() else record.id,
                            "caption": caption.text})
        bar.update(len(records[start:start + batch_size]))
    bar.close()
    if not predictions:
        raise CaptionerError(_("No image of the split could be read."))
    return score_captions(references, predictions, report, model.language), results


def evaluate_files(predictions_path: Path, references_path: Path,
                   report: Callable[[str], None] = lambda m: None) -> dict:
    """Scores COCO-format results ([{"image_id", "caption"}]) against a COCO-format annotation file, in the
    references' language (Chinese, on characters, when most of them hold Han characters)."""
    predictions_data = _read_json(predictions_path)
    references_data = _read_json(references_path)
    if not isinstance(predictions_data, list) or not all(
            isinstance(p, dict) and "image_id" in p and "caption" in p for p in predictions_data):
        raise CaptionerError(_("{path}: expected a list of {entry}.").format(
            path=predictions_path, entry='{"image_id": ..., "caption": ...}'))
    if not isinstance(references_data, dict) or "annotations" not in references_data:
        raise CaptionerError(_("{path}: expected a COCO annotation file with 'annotations'.").format(
            path=references_path))
    references: dict = {}
    for annotation in references_data["annotations"]:
        references.setdefault(annotation["image_id"], []).append(annotation["caption"])
    predictions = {}
    for prediction in predictions_data:
        predictions[prediction["image_id"]] = prediction["caption"]
    try:
        language = guess_language([caption for captions in references.values() for caption in captions])
        return score_captions(references, predictions, report, language)
    except ValueError as exc:
        raise CaptionerError(_("{path}: {problem}.").format(path=predictions_path, problem=exc)) from None


def _read_json(path: Path):
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CaptionerError(_("{path}: no such file.").format(path=path)) from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CaptionerError(_("{path} is not valid JSON ({reason}).").format(path=path, reason=exc)) from None
