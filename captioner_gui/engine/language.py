"""The language a model writes its captions in: English for the released models, Chinese ("zh") or another for a
model trained on such captions (the manifest's "language").

What depends on it: the token that ends a caption ("." or "。"), how decoded text is tidied (Chinese has no spaces
between words), how captions are split into tokens for the metrics (Chinese: one Han character a token), and
which voice says the caption.
"""

from __future__ import annotations

import re

ENGLISH = "en"
CHINESE = "zh"
STOP_TEXTS = {CHINESE: "。"}  # ClipCap stops at the first of these; every other language at "."
LANGUAGE_CODE = re.compile(r"[a-z]{2,3}")  # ISO 639: "en", "zh", "yue"

# Han characters (the CJK unified ideographs, their extensions and the compatibility ones) and the punctuation
# written between them (CJK symbols, full-width forms).
HAN_RANGES = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f"
_CJK_MARKS = "\u3000-\u303f\uff00-\uffef"
HAN = re.compile(f"[{HAN_RANGES}]")
_SPACE_BY_CJK = re.compile(f"(?<=[{HAN_RANGES}{_CJK_MARKS}])\\s+|\\s+(?=[{HAN_RANGES}{_CJK_MARKS}])")
_CHARACTER_TOKENS = re.compile(f"[{HAN_RANGES}]|[a-z0-9]+")


def stop_text(language: str) -> str:
    """The text that ends every caption, and decoding: "。" in Chinese, "." otherwise."""
    return STOP_TEXTS.get(language, ".")


def guess_language(captions: list[str]) -> str:
    """"zh" when most captions hold Han characters, else "en"."""
    chinese = sum(1 for caption in captions if HAN.search(caption))
    return CHINESE if captions and chinese * 2 > len(captions) else ENGLISH


def end_with_stop(caption: str, language: str = ENGLISH) -> str:
    """A caption to learn from: spaces tidied, ending in its language's stop ("." -> "。" in Chinese), since
    decoding stops there."""
    caption = tidy(" ".join(caption.split()), language)
    stop = stop_text(language)
    if caption.endswith(stop):
        return caption
    if stop != "." and caption.endswith("."):
        caption = caption[:-1]
    return caption + stop


def tidy(text: str, language: str = ENGLISH) -> str:
    """Decoded text as its language writes it. English: as GPT-2 wrote it. Other languages: no broken character
    at the end (a caption cut at the token limit inside a character's bytes, which a Chinese character of three
    bytes often is), and in Chinese no spaces around Han characters or punctuation (a tokenizer whose tokens carry
    a leading space, as GPT-2's do, would leave some)."""
    text = text.strip()
    if language == ENGLISH:
        return text
    text = text.rstrip("\ufffd").rstrip()
    return _SPACE_BY_CJK.sub("", text) if language == CHINESE else text


def character_tokens(text: str) -> list[str]:
    """Chinese text split for the metrics: each Han character a token (as sacreBLEU's Chinese tokenizer splits
    them), a run of Latin letters or digits one token (lower case), punctuation and spaces dropped (as the PTB
    tokenizer's output drops punctuation)."""
    return _CHARACTER_TOKENS.findall(text.lower())
