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

from captioner_gui.i18n import N_, _, spoken_language

from .language import stop_text
from .options import Target

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


BLANK = {Target.SCREEN: N_("The screen is blank."), Target.WINDOW: N_("The window is blank."),
         Target.REGION: N_("The region is blank.")}


def blank_message(source: str) -> str:
    """What to say about a blank picture, by where it came from."""
    return _(BLANK.get(source, N_("The image is blank.")))


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
KIND_NAMES = {"photo": N_("Photo"), "screenshot": N_("Screenshot of an application"), "document": N_("Page of text"),
              "chart": N_("Chart or diagram"), "drawing": N_("Drawing")}  # said in the user's language: _(name)
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


Parts = list[tuple[str, str]]  # words to say, each with its language ("en", "zh"), in order


def wording(caption: str, kind: str | None, kind_scores: dict[str, float], agreement: float | None,
            title: str | None = None, language: str = "en") -> str:
    """What to show: the kind first, and a hedge ("Could be: ...") when the picture is not a photo or the caption
    fits it poorly. Without the guard's findings, the caption as it is. See `worded`."""
    return "".join(words for words, _language in worded(caption, kind, kind_scores, agreement, title, language))


def worded(caption: str, kind: str | None, kind_scores: dict[str, float], agreement: float | None,
           title: str | None = None, language: str = "en") -> Parts:
    """`wording` as parts to say: our words in the user's language, the caption in its own (`language`: English
    for the released models, the user's after the translation step), each part said by a voice of its language.
    `title`: the window it was seen in ("Photo in Image Viewer: ...")."""
    sentence = sentence_of(caption, language)
    if kind is None:
        if title:
            return around(_("{name}: {sentence}"), sentence, language, name=title) if sentence else \
                [(_("{name}. No description.").format(name=title), spoken_language())]
        return [(sentence, language)] if sentence else [(_("No description."), spoken_language())]
    name = _(KIND_NAMES[kind])
    if kind == "screenshot" and kind_scores.get("document", 0.0) >= MOSTLY_TEXT:
        name = _("{kind}, mostly text").format(kind=name)
    if title:
        name = _("{kind} in {title}").format(kind=name, title=title)
    if not sentence:  # the model wrote nothing (it stopped at once): say the kind, not "Could be:" and silence
        return [(_("{name}. No description.").format(name=name), spoken_language())]
    if kind == "photo" and (agreement is None or agreement >= AGREEMENT_DOUBTFUL):
        return around(_("{name}: {sentence}"), sentence, language, name=name)
    return around(_("{name}. Could be: {sentence}"), sentence, language, name=name)


def sentence_of(caption: str, language: str = "en") -> str:
    """A caption as a sentence: capitalised, ending in a full stop ("。" in Chinese)."""
    sentence = caption.strip()
    if not sentence:
        return ""
    sentence = sentence[0].upper() + sentence[1:]
    return sentence if sentence[-1] in ".!?。！？" else sentence + stop_text(language)


def around(template: str, sentence: str, language: str, **names: str) -> Parts:
    """A translated sentence that holds `{sentence}` (the caption, in its own language) as parts: what comes
    before it and after it in the user's language. Their spaces are kept, so that "".join gives the sentence."""
    before, _mark, after = template.partition("{sentence}")
    ours = spoken_language()
    parts = [(before.format(**names), ours), (sentence, language), (after.format(**names), ours)]
    return [(words, its) for words, its in parts if words]
