"""The COCO caption metrics through pycocoevalcap: BLEU-1..4, METEOR, ROUGE-L, CIDEr (CIDEr-D), SPICE where it runs.

pycocoevalcap's PTB tokenizer and METEOR run Java. Without Java, captions are tokenized by `simple_tokenize`
(lower case, words split from punctuation, punctuation dropped, as the PTB tokenizer's output is), and METEOR
is reported as unavailable: BLEU, ROUGE-L and CIDEr then agree closely, but not always exactly, with the Java
tokenizer's.

Chinese captions are scored on characters: each Han character is a token (a run of Latin letters or digits is
one), punctuation is dropped, and the PTB tokenizer, which is for English, is not used. SPICE parses English and is
left out for them.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Callable

from captioner_gui.engine.language import CHINESE, ENGLISH, character_tokens
from captioner_gui.i18n import _

METRIC_NAMES = ("BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4", "METEOR", "ROUGE-L", "CIDEr")
# What pycocoevalcap's PTBTokenizer removes after tokenizing.
PUNCTUATION = {"''", "'", "``", "`", "-lrb-", "-rrb-", "-lcb-", "-rcb-", ".", "?", "!", ",", ":", "-", "--", "...",
               ";"}


def java_available() -> bool:
    return shutil.which("java") is not None


def simple_tokenize(text: str) -> str:
    words = re.findall(r"[a-z0-9]+(?:'[a-z]+)?|\.\.\.|--|[^\sa-z0-9]", text.lower())
    return " ".join(w for w in words if w not in PUNCTUATION)


def tokenize(captions: dict, use_java: bool, language: str = ENGLISH) -> dict:
    if language == CHINESE:
        return {k: [" ".join(character_tokens(c)) for c in v] for k, v in captions.items()}
    if use_java:
        from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

        return PTBTokenizer().tokenize({k: [{"caption": c} for c in v] for k, v in captions.items()})
    return {k: [simple_tokenize(c) for c in v] for k, v in captions.items()}


def _spice_models_present() -> bool:
    import pycocoevalcap.spice.spice as spice

    lib = Path(spice.__file__).parent / "lib"
    return any(lib.glob("stanford-corenlp-*-models.jar"))


def score_captions(references: dict, predictions: dict, report: Callable[[str], None] = lambda m: None,
                   language: str = ENGLISH) -> dict:
    """references: {image id: [captions]}, predictions: {image id: caption} -> {metric: fraction or None}.
    `language`: the captions' language ("zh": scored on characters, see the module's docstring)."""
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge

    missing = [k for k in predictions if k not in references]
    if missing:
        # Shown to the user (evaluate_files adds the predictions file's name).
        raise ValueError(_("image id {image} has a prediction but no reference captions").format(image=missing[0]))
    use_java = java_available()
    if language == CHINESE:
        report(_("Chinese captions are scored on characters: each Han character is one token."))
        if not use_java:
            report(_("Java was not found: METEOR is left out (install a Java runtime for it)."))
    elif not use_java:
        report(_("Java was not found: captions are tokenized without the PTB tokenizer and METEOR is left out "
                 "(install a Java runtime for the standard COCO scores)."))
    gts = tokenize({k: references[k] for k in predictions}, use_java, language)
    res = tokenize({k: [v] for k, v in predictions.items()}, use_java, language)
    scores: dict[str, float | None] = {}
    bleu = Bleu(4).compute_score(gts, res, verbose=0)[0]
    for n, value in enumerate(bleu, 1):
        scores[f"BLEU-{n}"] = float(value)
    scores["METEOR"] = None
    if use_java:
        from pycocoevalcap.meteor.meteor import Meteor

        scores["METEOR"] = float(Meteor().compute_score(gts, res)[0])
    scores["ROUGE-L"] = float(Rouge().compute_score(gts, res)[0])
    scores["CIDEr"] = float(Cider().compute_score(gts, res)[0])
    if language == CHINESE:
        return scores  # SPICE parses English sentences
    if use_java and _spice_models_present():
        from pycocoevalcap.spice.spice import Spice

        scores["SPICE"] = float(Spice().compute_score(gts, res)[0])
    else:
        report(_("SPICE is left out: it needs Java and the Stanford CoreNLP models, which pycocoevalcap downloads "
                 "on first use."))
    return scores
