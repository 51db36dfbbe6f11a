"""The Captioner: PIL images in, Captions out. Imports no torch.

Two forms of a loaded model share this flow (the guard, CLIP's vectors, the prefix, decoding, the wording):
- model.TorchCaptioner: torch and open_clip, for fp32 (exact) and for CUDA;
- onnx_model.OnnxCaptioner: onnxruntime's int8 graphs, the CPU's default, without torch.
Each supplies CLIP's image and text vectors (numpy), the prefix and a decoding Backend.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image

from .decoding import Backend, decode
from .guard import KindGuard, blank_message, closest, is_blank, wording
from .language import ENGLISH, tidy
from .manifest import Manifest
from .options import DecodeOptions
from .tokenizer import stop_token_id


@dataclass
class Caption:
    """One image's result."""

    text: str
    tokens: list[int]
    score: float  # mean log-probability of the tokens
    seconds: float  # time spent on this image (a batch's time is shared equally)
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage: clip, decode
    blank: bool = False  # the guard found the picture blank (one colour): no caption was written
    kind: str | None = None  # photo, screenshot, document, chart or drawing (None: no CLIP text tower to tell)
    kind_scores: dict[str, float] = field(default_factory=dict)  # the probability of each kind
    agreement: float | None = None  # CLIP's cosine between the picture and the caption (about 0.3: a good fit)
    language: str = ENGLISH  # the language of `text`: its model's (Captioner.language)

    @property
    def spoken(self) -> str:
        return self.spoken_about("image")

    def spoken_about(self, source: str) -> str:
        """The sentence to say or show: "The screen is blank." (by `source`) for a blank picture, else the kind
        first, hedged when it is not a photo (see guard.wording)."""
        if self.blank:
            return blank_message(source)
        return wording(self.text, self.kind, self.kind_scores, self.agreement, language=self.language)


class Captioner(ABC):
    """A loaded model: give it PIL images, get Captions back. The one entry the CLI and the app use."""

    backend = ""  # "torch" or "onnxruntime": what computes it
    lm: Backend

    def __init__(self, manifest: Manifest, tokenizer, precision: str, device_name: str):
        self.manifest = manifest
        self.tokenizer = tokenizer
        self.language = manifest.caption_language  # what the captions are written in: "en", "zh" (the manifest's)
        self.stop_token = stop_token_id(tokenizer, self.language)
        self.precision = precision
        self.device_name = device_name
        self.load_seconds = 0.0
        self._kind_guard: KindGuard | None = None

    # What each form supplies.
    @abstractmethod
    def encode(self, images: list[Image.Image]) -> np.ndarray:
        """CLIP image vectors (B, d_clip), fp32, as ClipCap was trained on them (not normalised)."""

    @abstractmethod
    def prefix(self, vectors: np.ndarray) -> Any:
        """The mapper's prefix embeddings (B, K, D), in the decoding back end's own array type."""

    @abstractmethod
    def encode_text(self, texts: list[str]) -> np.ndarray:
        """CLIP text vectors (B, d_clip), unit length; only when `has_text`."""

    @property
    def has_text(self) -> bool:
        """Whether the CLIP file had a text tower (the guard needs it)."""
        return False

    def describing(self) -> AbstractContextManager:
        """Around each description: the torch form turns running out of GPU memory into the engine's error."""
        return nullcontext()

    # The flow.
    @property
    def name(self) -> str:
        return self.manifest.name

    @property
    def kind_guard(self) -> KindGuard | None:
        """Built on first use (the prompts' vectors); None without a text tower."""
        if self._kind_guard is None and self.has_text:
            self._kind_guard = KindGuard(self.encode_text)
        return self._kind_guard

    def kinds(self, images: list[Image.Image]) -> list[dict[str, float]]:
        """CLIP's probability of each kind of picture (photo, screenshot, document, chart, drawing) for each image;
        empty dicts without a text tower."""
        if self.kind_guard is None:
            return [{} for _ in images]
        with self.describing():
            return self.kind_guard.kinds(self.encode(images))

    def caption(self, images: list[Image.Image], options: DecodeOptions | None = None,
                guard: bool = True) -> list[Caption]:
        """Captions a batch of images; the same captions as one image at a time. With `guard`, a blank picture
        gets no caption (`blank` is set and `text` is empty): ClipCap would invent something."""
        options = options or DecodeOptions()
        options.check()
        if not images:
            return []
        started = time.perf_counter()
        blank = [guard and is_blank(image) for image in images]
        seen = [image for image, empty in zip(images, blank) if not empty]
        with self.describing():
            captions = iter(self._caption(seen, options, guard) if seen else [])
        checked = (time.perf_counter() - started) / len(images)
        return [Caption(text="", tokens=[], score=0.0, seconds=checked, blank=True) if empty else next(captions)
                for empty in blank]

    def _caption(self, images: list[Image.Image], options: DecodeOptions, guard: bool) -> list[Caption]:
        started = time.perf_counter()
        vectors = self.encode(images)
        encoded = time.perf_counter()
        decoded = decode(self.lm, self.prefix(vectors), self.stop_token, options)
        texts = [self.text_of(d.tokens) for d in decoded]
        # CLIP reads English: how well a caption in another language fits its picture is not for it to say, so
        # such captions are neither re-ranked nor hedged for a poor fit.
        english = self.language == ENGLISH
        if options.rerank and guard and self.kind_guard is not None and english:
            for index, d in enumerate(decoded):
                if len(d.candidates) > 1:
                    candidates = [self.text_of(c.tokens) for c in d.candidates]
                    best = closest(self.kind_guard, vectors[index], candidates)
                    decoded[index], texts[index] = d.candidates[best], candidates[best]
        decoded_at = time.perf_counter()
        judged = None
        if guard and self.kind_guard is not None:
            judged = (self.kind_guard.judge(vectors, texts) if english else
                      [(kinds, None) for kinds in self.kind_guard.kinds(vectors)])
        finished = time.perf_counter()
        share = (finished - started) / len(images)
        timings = {"clip": (encoded - started) / len(images), "decode": (decoded_at - encoded) / len(images),
                   "guard": (finished - decoded_at) / len(images)}
        captions = []
        for index, (d, text) in enumerate(zip(decoded, texts)):
            caption = Caption(text=text, tokens=d.tokens, score=d.score, seconds=share, timings=dict(timings),
                              language=self.language)
            if judged is not None:
                caption.kind_scores, caption.agreement = judged[index]
                caption.kind = max(caption.kind_scores, key=caption.kind_scores.get)
            captions.append(caption)
        return captions

    def text_of(self, tokens: list[int]) -> str:
        """The caption's words from its tokens, as its language writes them (see language.tidy)."""
        return tidy(self.tokenizer.decode(tokens), self.language)
