"""Captions in the user's language: an offline translation step after ClipCap (the released models write English).

When the user's language is not the one the captioner writes, and the user has imported a translation model for
that pair (`captioner models import-translation FILE`, translation_import.py), each caption is translated on the
CPU before it is shown and said. Nothing is ever downloaded: without a model, the caption stays in English (and
is said by an English voice). The models are CTranslate2 models with SentencePiece tokenizers: Argos Translate's
packages, or Marian models such as opus-mt converted with CTranslate2's converter. They live in the models folder:

    models/translations/en-zh/
      translation.json      what the importer found: the languages, the tokenizers, how to feed the model
      model/                the CTranslate2 model (model.bin, config.json, its vocabulary)
      sentencepiece.model   (Argos), or source.spm and target.spm (opus-mt)
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from captioner_gui.i18n import _, available, spoken_language

from .errors import CaptionerError, first_line
from .language import ENGLISH, tidy

FOLDER = "translations"  # in the models folder: one folder per pair of languages ("en-zh")
INFO_NAME = "translation.json"
MODEL_FOLDER = "model"
VERSION = 1
# Greedy decoding, for speed. On the 2-core test CPU, with a model of opus-mt-en-zh's size in int8 (`captioner
# benchmark --translation`, at busy and quieter hours of the shared host), two beams cost 11-39% more than greedy
# (a caption: 86-148 against 66-132 ms), and two captions at once went over the 150 ms a caption may gain with two
# beams (up to 160 ms; greedy up to 142). A caption is one short sentence, where greedy and beam search rarely differ.
BEAM_SIZE = 1
# A caption's translation is at most this many tokens beyond twice its own; a model that never stops (a damaged
# one) costs a bounded time. A 10-word caption becomes 10 to 20 tokens of Chinese.
EXTRA_TOKENS = 10
MAX_TOKENS = 128
LANGUAGE_TOKEN = re.compile(r"^>>[A-Za-z_]+<<$")  # opus-mt's target-language tokens (">>cmn_Hans<<")
SPECIAL = {"<s>", "</s>", "<unk>", "<pad>", "<blank>"}

log = logging.getLogger(__name__)


class TranslationError(CaptionerError):
    """A translation model that cannot be imported or used; the message says what to do, `problem` what failed."""

    def __init__(self, message: str, problem: str = ""):
        super().__init__(message)
        self.problem = problem or message


@dataclass
class TranslationInfo:
    """What `translation.json` holds: one installed translation model."""

    source_language: str  # "en": what the captioner writes
    target_language: str  # "zh": as i18n.spoken_language says
    source: str  # the file or folder it was imported from (its name)
    format: str  # "argos" (a package) or "ctranslate2" (a model folder)
    source_tokenizer: str  # SentencePiece models, relative to the folder
    target_tokenizer: str
    add_source_eos: bool = False  # Marian models converted from transformers expect "</s>" after the sentence
    language_token: str | None = None  # opus-mt's multi-target models: the target's token, first in the sentence
    version: int = VERSION

    @property
    def pair(self) -> str:
        return pair_name(self.source_language, self.target_language)

    def save(self, folder: Path) -> None:
        (folder / INFO_NAME).write_text(json.dumps(asdict(self), indent=1, ensure_ascii=False), encoding="utf-8")


def pair_name(source_language: str, target_language: str) -> str:
    return f"{source_language}-{target_language}"


def translations_dir(models_dir: Path) -> Path:
    return Path(models_dir) / FOLDER


def read_info(folder: Path) -> TranslationInfo:
    """A translation model's `translation.json`; TranslationError when it is missing or damaged."""
    path = folder / INFO_NAME
    try:
        fields = json.loads(path.read_text(encoding="utf-8"))
        info = TranslationInfo(**fields)
        if not all(isinstance(getattr(info, name), str) for name in
                   ("source_language", "target_language", "source_tokenizer", "target_tokenizer")):
            raise TypeError("a field has the wrong type")
    except (OSError, ValueError, TypeError) as exc:
        raise TranslationError(_("The translation model in {folder} is damaged ({problem}). Import it again with: "
                                 "captioner models import-translation FILE").format(folder=folder,
                                                                                     problem=first_line(exc))) from None
    return info


@dataclass
class InstalledTranslation:
    """One folder of `models/translations`, for `captioner models list`."""

    pair: str
    folder: Path
    size_bytes: int
    info: TranslationInfo | None  # None: damaged (see problem)
    problem: str = ""


def list_translations(models_dir: Path) -> list[InstalledTranslation]:
    """The translation models in the models folder. Hidden folders are imports under way (or cut off)."""
    folder = translations_dir(models_dir)
    if not folder.is_dir():
        return []
    found = []
    for pair in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
        size = sum(f.stat().st_size for f in pair.rglob("*") if f.is_file())
        try:
            info = read_info(pair)
            missing = [name for name in (f"{MODEL_FOLDER}/model.bin", info.source_tokenizer, info.target_tokenizer)
                       if not (pair / name).is_file()]
            problem = _("missing {files}").format(files=", ".join(missing)) if missing else ""
        except TranslationError as exc:
            info, problem = None, str(exc)
        found.append(InstalledTranslation(pair.name, pair, size, info, problem))
    return found


def recover_interrupted_import(models_dir: Path, pair: str) -> None:
    """An import cut off (by a crash or kill) between moving the old model aside and the new one in: the old one
    comes back, so that nothing the user had is lost."""
    folder = translations_dir(models_dir)
    replaced = folder / f".{pair}.replaced"
    if replaced.is_dir() and not (folder / pair).exists():
        replaced.rename(folder / pair)


def find_translation(models_dir: Path, source_language: str, target_language: str) -> Path | None:
    """The folder of the installed model that translates between these languages, or None."""
    pair = pair_name(source_language, target_language)
    try:
        recover_interrupted_import(models_dir, pair)
    except OSError:
        pass  # a models folder we may not write: what is there is still read
    folder = translations_dir(models_dir) / pair
    return folder if (folder / INFO_NAME).is_file() else None


def language_name(code: str) -> str:
    """A spoken language's name in itself ("简体中文" for "zh"), where captioner speaks it; else its code."""
    for ours, name in available().items():
        if spoken_language(ours) == code:
            return name
    return code


def caption_language(captioner) -> str:
    """The language the captioner writes (Captioner.language: its manifest's, English for the released models)."""
    return captioner.language or ENGLISH


def wanted_pair(captioner) -> tuple[str, str] | None:
    """(from, to) when the captions must be translated to be said in the user's language; None when they are
    already in it."""
    source, target = caption_language(captioner), spoken_language()
    return None if source == target else (source, target)


class CaptionTranslator:
    """A loaded translation model: captions in the captioner's language in (English), the user's language out. A model of opus-mt's size in int8
    takes about 80 MB of memory and loads in about 0.1 s."""

    def __init__(self, folder: Path, threads: int | None = None):
        import sentencepiece

        from captioner_gui.machine import cores

        ctranslate2 = import_ctranslate2()

        self.folder = Path(folder)
        self.info = read_info(self.folder)
        self.target_language = self.info.target_language
        try:
            tokenizers = {name: sentencepiece.SentencePieceProcessor(model_file=str(self.folder / name))
                          for name in {self.info.source_tokenizer, self.info.target_tokenizer}}
            self._source, self._target = tokenizers[self.info.source_tokenizer], tokenizers[self.info.target_tokenizer]
            model = str(self.folder / MODEL_FOLDER)
            self.threads = threads or cores()
            try:  # int8: a quarter of fp32's memory reads per token, and its kernels are the fastest here
                self._model = ctranslate2.Translator(model, device="cpu", compute_type="int8", inter_threads=1,
                                                     intra_threads=self.threads)
            except ValueError:  # a CPU without efficient int8 kernels: the type the model was saved in
                self._model = ctranslate2.Translator(model, device="cpu", inter_threads=1, intra_threads=self.threads)
        except (OSError, RuntimeError, ValueError) as exc:
            raise TranslationError(_("The translation model in {folder} could not be loaded ({problem}). Import it "
                                     "again with: captioner models import-translation FILE").format(
                folder=self.folder, problem=first_line(exc)), first_line(exc)) from None
        self.seconds = 0.0  # the last call's time

    def pieces(self, text: str) -> list[str]:
        """The tokens the model reads for a sentence."""
        pieces = self._source.encode(text, out_type=str)
        head = [self.info.language_token] if self.info.language_token else []
        return head + pieces + (["</s>"] if self.info.add_source_eos else [])

    def translate(self, texts: list[str], max_tokens: int | None = None, beam_size: int = BEAM_SIZE) -> list[str]:
        """Each text translated (an empty one stays empty). `max_tokens`: the length of each translation at most
        (by default `limit`)."""
        started = time.perf_counter()
        wanted = [(index, text.strip()) for index, text in enumerate(texts) if text.strip()]
        results = [""] * len(texts)
        if wanted:
            batch = [self.pieces(text) for _index, text in wanted]
            try:
                translated = self._model.translate_batch(batch, beam_size=beam_size,
                                                         max_decoding_length=max_tokens or self.limit(batch))
            except (RuntimeError, ValueError) as exc:
                raise TranslationError(_("The caption could not be translated: {problem}").format(
                    problem=first_line(exc)), first_line(exc)) from None
            for (index, _text), result in zip(wanted, translated):
                results[index] = self._words(result.hypotheses[0])
        self.seconds = time.perf_counter() - started
        return results

    @staticmethod
    def limit(batch: list[list[str]]) -> int:
        """The most tokens a translation of these sentences may have: twice the longest, plus a few."""
        return min(MAX_TOKENS, 2 * max(len(pieces) for pieces in batch) + EXTRA_TOKENS)

    def _words(self, pieces: list[str]) -> str:
        kept = [piece for piece in pieces if piece not in SPECIAL and not LANGUAGE_TOKEN.match(piece)]
        return tidy(self._target.decode_pieces(kept), self.target_language)


def import_ctranslate2():
    """CTranslate2, with its OpenMP threads sleeping while they wait (OMP_WAIT_POLICY, read when it is first
    imported). Spinning, they took the cores from the thread loading the model on a busy 2-core CPU: a model of
    opus-mt's size loaded in 1.0-1.1 s with 2 threads against 0.05-0.15 s, and translating was no faster."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    import ctranslate2

    return ctranslate2


def load_translator(models_dir: Path, source_language: str, target_language: str) -> CaptionTranslator | None:
    """The installed model for this pair, loaded; None when there is none. TranslationError when it is there but
    cannot be used."""
    folder = find_translation(models_dir, source_language, target_language)
    return CaptionTranslator(folder) if folder is not None else None


class Translation:
    """The translation step of a Describer: the model into the user's language, loaded when first wanted and kept
    (the language may change while the app runs). Which model is installed is looked at again for each caption (a
    file's status), so that a model imported while the app runs, or imported again, is used at once."""

    def __init__(self, models_dir: Path | None = None):
        self.models_dir = models_dir
        self.problem: str | None = None  # why the installed model cannot be used now
        self._told: str | None = None  # the problem the user was last told of (`news`)
        self._loaded: dict[tuple[str, str], tuple[tuple[int, int], CaptionTranslator | None]] = {}

    def translator(self, captioner) -> CaptionTranslator | None:
        """The loaded model that translates this captioner's captions into the user's language; None when they
        are in it already, or no model for it is installed (or it cannot be used: see `problem`)."""
        pair = wanted_pair(captioner)
        if pair is None:
            return None
        from .store import default_models_dir

        folder = find_translation(self.models_dir or default_models_dir(), *pair)
        if folder is None:
            return None
        try:
            status = (folder / INFO_NAME).stat()
        except OSError:
            return None
        stamp = (status.st_ino, status.st_mtime_ns)  # a new import is a new file
        if pair not in self._loaded or self._loaded[pair][0] != stamp:
            try:
                translator, self.problem = CaptionTranslator(folder), None
            except TranslationError as exc:
                translator, self.problem = None, str(exc)
            self._loaded[pair] = (stamp, translator)
        return self._loaded[pair][1]

    def news(self) -> str | None:
        """The problem the user has not been told of yet (a model that cannot be loaded, a translation that
        failed); once each, so that a description says it and the next ones do not repeat it."""
        if self.problem is None or self.problem == self._told:
            return None
        self._told = self.problem
        return self.problem

    def in_words(self, texts: list[str], captioner, timings: dict[str, float] | None = None
                 ) -> list[tuple[str, str]]:
        """Each caption with its language: translated into the user's language where a model for it is installed,
        else as the captioner wrote it. `timings` gets "translation"."""
        language = caption_language(captioner)
        translator = self.translator(captioner) if any(text.strip() for text in texts) else None
        if translator is None:
            return [(text, language) for text in texts]
        try:
            translated = translator.translate(texts)
        except TranslationError as exc:
            self.problem = str(exc)
            log.warning("%s", exc)
            return [(text, language) for text in texts]
        self.problem = self._told = None  # working again: a later problem is news
        if timings is not None:
            timings["translation"] = translator.seconds
        return [(said, translator.target_language) if said else (text, language)
                for said, text in zip(translated, texts)]
