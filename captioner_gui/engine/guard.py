"""The guard: honest about what the model sees.

ClipCap was trained on photos; shown a page of text, it invents people and animals. So a blank or nearly uniform
picture (a screen curtain, a locked or black screen) is reported as blank and never captioned; CLIP, already
loaded, tells what kind of picture it is (zero-shot against a few prompts per kind) and how well the caption fits
it; and the result is worded with the kind first, hedged when it is not a photo or the fit is poor.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from PIL import Image

from .options import CAPTURES

BLANK_SPREAD = 6.0  # grey levels: the standard deviation of a blank picture's brightness stays under this,
STANDING_OUT = 32  # and hardly any pixel differs from the usual brightness by more than this many levels:
MARKS = 20  # fewer pixels than this, at any screen size (the word "OK" in a small font has about 60)


def is_blank(image: Image.Image) -> bool:
    """True for a picture of one colour, or one colour with faint noise (a screen curtain, a black screen).

    One short word on an empty page is not blank: its pixels stand out from the page, where noise does not.
    Computed from the brightness histogram, so that a picture of any size (an 8K screen) is judged at full
    resolution with one byte a pixel of memory."""
    counts = np.array(image.convert("L").histogram(), dtype=np.float64)
    total = counts.sum()
    if total == 0:
        return True
    levels = np.arange(256, dtype=np.float64)
    mean = (counts * levels).sum() / total
    spread = np.sqrt((counts * (levels - mean) ** 2).sum() / total)
    if spread >= BLANK_SPREAD:
        return False
    usual = int(np.searchsorted(np.cumsum(counts), total / 2))  # the median brightness
    return int(counts[np.abs(levels - usual) > STANDING_OUT].sum()) < MARKS


def blank_message(source: str) -> str:
    """What to say about a blank picture, by where it came from."""
    what = source if source in CAPTURES else "image"
    return f"The {what} is blank."


# ------------------------------------------------------------------------------------------ the kind of picture

# CLIP compares the picture with each prompt; a kind's score is the softmax over kinds of its prompts' mean.
KIND_PROMPTS = {
    "photo": ("a photo.", "a photo of people, animals or things.", "a snapshot taken with a camera."),
    "screenshot": ("a screenshot of a computer application.", "a screenshot of a software window with buttons "
                   "and menus.", "a screenshot of a desktop with icons."),
    "document": ("a page of text.", "a document with printed text.", "a screenshot of a web page full of text."),
    "chart": ("a chart.", "a diagram.", "a graph with axes and labels."),
    "drawing": ("a drawing.", "a cartoon.", "an illustration or a painting."),
}
KIND_NAMES = {"photo": "Photo", "screenshot": "Screenshot of an application", "document": "Page of text",
              "chart": "Chart or diagram", "drawing": "Drawing"}
MOSTLY_TEXT = 0.3  # a screenshot whose "document" score reaches this is said to be mostly text
AGREEMENT_DOUBTFUL = 0.22  # CLIP's cosine between a photo and its caption below which the caption is hedged
CLIP_LOGIT_SCALE = 100.0  # CLIP's trained temperature (exp of its logit_scale, clamped to 100)


class KindGuard:
    """Tells photos from screenshots, pages of text, charts and drawings, and how well a caption fits its picture,
    with CLIP's text tower (the prompts are encoded once). Vectors are numpy arrays."""

    def __init__(self, encode_text: Callable[[list[str]], np.ndarray]):
        """`encode_text`: texts -> CLIP text vectors (B, d), unit length."""
        self.encode_text = encode_text
        kinds = [encode_text(list(prompts)).mean(axis=0) for prompts in KIND_PROMPTS.values()]
        self.kind_vectors = unit(np.stack(kinds))  # (kinds, d)

    def kinds(self, image_vectors: np.ndarray) -> list[dict[str, float]]:
        """For each picture: {kind: probability}."""
        logits = CLIP_LOGIT_SCALE * unit(image_vectors) @ self.kind_vectors.T
        probabilities = np.exp(logits - logits.max(axis=-1, keepdims=True))
        probabilities /= probabilities.sum(axis=-1, keepdims=True)
        return [{kind: round(float(p), 4) for kind, p in zip(KIND_PROMPTS, row)} for row in probabilities]

    def judge(self, image_vectors: np.ndarray, captions: list[str]) -> list[tuple[dict[str, float], float]]:
        """For each picture: ({kind: probability}, the cosine between the picture and its caption)."""
        agreement = (unit(image_vectors) * self.encode_text(captions)).sum(axis=-1)
        return [(kinds, round(float(a), 4)) for kinds, a in zip(self.kinds(image_vectors), agreement)]


def closest(guard: KindGuard, image_vector: np.ndarray, candidates: list[str]) -> int:
    """The index of the candidate caption CLIP finds closest to the picture (beam search's re-ranking)."""
    return int(np.argmax(guard.encode_text(candidates) @ unit(image_vector)))


def unit(vectors: np.ndarray) -> np.ndarray:
    """Each vector (the last axis) scaled to length 1, in fp32."""
    vectors = np.asarray(vectors, dtype=np.float32)
    return vectors / np.linalg.norm(vectors, axis=-1, keepdims=True)


def wording(caption: str, kind: str | None, kind_scores: dict[str, float], agreement: float | None) -> str:
    """What to say: the kind first, and a hedge ("Could be: ...") when the picture is not a photo or the caption
    fits it poorly. Without the guard's findings, the caption as it is."""
    sentence = caption.strip()
    if sentence:
        sentence = sentence[0].upper() + sentence[1:]
        sentence = sentence if sentence[-1] in ".!?" else sentence + "."
    if kind is None:
        return sentence or "No description."
    name = KIND_NAMES[kind]
    if kind == "screenshot" and kind_scores.get("document", 0.0) >= MOSTLY_TEXT:
        name += ", mostly text"
    if not sentence:  # the model wrote nothing (it stopped at once): say the kind, not "Could be:" and silence
        return f"{name}. No description."
    if kind == "photo" and (agreement is None or agreement >= AGREEMENT_DOUBTFUL):
        return f"{name}: {sentence}"
    return f"{name}. Could be: {sentence}"
