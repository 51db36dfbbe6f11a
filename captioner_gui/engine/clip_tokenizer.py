"""CLIP's tokenizer without torch: open_clip's SimpleTokenizer rebuilt on the tokenizers library.

open_clip's tokenizer module imports torch, which the onnxruntime path must not load. At export time
write_clip_tokenizer copies open_clip's tokenizer object into one JSON file; at run time ClipTokenizer reads it
back with tokenizers, numpy, regex and ftfy, and gives the same ids as open_clip.

The file holds the split pattern and, under "tokenizer", a file in the tokenizers library's own format: byte-level
BPE with the "</w>" end-of-word suffix, the special tokens, start- and end-of-text around each text, truncation
and zero padding to the context length. The cleaning and the split into words stay in Python, with open_clip's
own functions and pattern, so that no other regex engine splits differently.
"""

from __future__ import annotations

import html
import json
from pathlib import Path

import numpy as np
import regex
from tokenizers import AddedToken, Tokenizer, models, pre_tokenizers, processors


def write_clip_tokenizer(tokenizer: object, path: Path) -> None:
    """Writes open_clip's tokenizer (what open_clip.get_tokenizer returns) as one JSON file for ClipTokenizer.

    Raises ValueError for a tokenizer this module cannot reproduce: another class than SimpleTokenizer, another
    cleaning than the default "lower", a token reduction (masking) strategy, or additional special tokens."""
    _check_supported(tokenizer)
    fast = _fast_tokenizer(tokenizer)
    content = {"split_pattern": tokenizer.pat.pattern, "tokenizer": json.loads(fast.to_str())}
    path.write_text(json.dumps(content, ensure_ascii=False), encoding="utf-8")


def _check_supported(tokenizer) -> None:
    from open_clip.tokenizer import SimpleTokenizer, _clean_lower

    if type(tokenizer) is not SimpleTokenizer:
        raise ValueError(f"Only open_clip's SimpleTokenizer can be written without torch, not "
                         f"{type(tokenizer).__name__}.")
    if tokenizer.clean_fn is not _clean_lower:
        raise ValueError(f"Only the tokenizer's default cleaning ('lower') is reproduced, not "
                         f"{getattr(tokenizer.clean_fn, '__name__', tokenizer.clean_fn)}.")
    if tokenizer.reduction_fn is not None:
        raise ValueError("A tokenizer with a reduction mask (tokens dropped at random) cannot be reproduced.")
    if len(tokenizer.all_special_ids) != 2:
        # SimpleTokenizer finds a special token only as a whole word of its split, the tokenizers library inside
        # words too. Both default ones mix letters and punctuation, so no other word of the split can hold them.
        raise ValueError("Only the start- and end-of-text special tokens are reproduced, not additional ones.")


def _fast_tokenizer(tokenizer) -> Tokenizer:
    """The tokenizers library's equivalent of SimpleTokenizer for texts already cleaned and split into words."""
    merges = sorted(tokenizer.bpe_ranks, key=tokenizer.bpe_ranks.get)
    sot, eot = (tokenizer.decoder[id_] for id_ in (tokenizer.sot_token_id, tokenizer.eot_token_id))
    context_length = tokenizer.context_length

    fast = Tokenizer(models.BPE(vocab=tokenizer.encoder, merges=merges, end_of_word_suffix="</w>"))
    fast.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    # A text may hold "<start_of_text>" itself: SimpleTokenizer gives its id, not its letters.
    fast.add_special_tokens([AddedToken(token, special=True, normalized=False) for token in (sot, eot)])
    fast.post_processor = processors.TemplateProcessing(
        single=f"{sot} $A {eot}",
        special_tokens=[(sot, tokenizer.sot_token_id), (eot, tokenizer.eot_token_id)])
    fast.enable_truncation(context_length)  # counts start and end of text, so end of text stays the last token
    fast.enable_padding(length=context_length, pad_id=0, pad_token=tokenizer.decoder[0])
    return fast


class ClipTokenizer:
    """CLIP's tokenizer at run time: imports only tokenizers, numpy, regex, ftfy and the standard library (no
    torch, no open_clip)."""

    def __init__(self, tokenizer: Tokenizer, split_pattern: str):
        self.tokenizer = tokenizer
        self.context_length = tokenizer.padding["length"]
        self.split = regex.compile(split_pattern, regex.IGNORECASE)  # as SimpleTokenizer compiles it

    @classmethod
    def load(cls, path: Path) -> ClipTokenizer:
        content = json.loads(path.read_text(encoding="utf-8"))
        return cls(Tokenizer.from_str(json.dumps(content["tokenizer"])), content["split_pattern"])

    def __call__(self, texts: list[str]) -> np.ndarray:
        """(len(texts), context_length) int64: exactly open_clip's tokenizer(texts).numpy()."""
        # One text at a time: encode_batch would start the tokenizers library's thread pool for a few captions.
        encodings = [self.tokenizer.encode(self.split.findall(_clean(text)), is_pretokenized=True) for text in texts]
        ids = np.array([encoding.ids for encoding in encodings], dtype=np.int64)
        return ids.reshape(len(texts), self.context_length)  # (0, context_length) for no texts, as open_clip


def _clean(text: str) -> str:
    """open_clip's default cleaning ("lower"): ftfy, HTML entities twice, whitespace collapsed, lower case."""
    import ftfy  # imported on first use: it takes longer to import than the rest of this module

    text = html.unescape(html.unescape(ftfy.fix_text(text)))
    return " ".join(text.split()).lower()
