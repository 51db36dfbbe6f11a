"""Installing a translation model the user has: `captioner models import-translation FILE|FOLDER`.

Two layouts are read:
- an Argos Translate package (.argosmodel): a zip whose one top folder holds metadata.json (from_code, to_code),
  model/ (CTranslate2) and sentencepiece.model. Its stanza/ folder (Argos splits text into sentences with it) is
  left out: a caption is one sentence. Packages that tokenize with BPE (bpe.model) are refused.
- a CTranslate2 model folder (model.bin, config.json, its vocabulary) with its SentencePiece models beside it:
  source.spm and target.spm (opus-mt converted with `ct2-transformers-converter ... --copy_files source.spm
  target.spm`), or one sentencepiece.model. Its languages come from --from/--to, a metadata.json, or its name
  ("opus-mt-en-zh").

The model is assembled in a hidden folder and must load and translate a sentence there before it is moved in place;
a model it replaces is moved aside first and removed last, so a failed or cut-off import loses nothing.
"""

from __future__ import annotations

import json
import re
import shutil
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Callable

from captioner_gui.i18n import _, available, match, spoken_language

from .errors import first_line
from .translation import (MODEL_FOLDER, CaptionTranslator, TranslationError, TranslationInfo, pair_name,
                          read_info, recover_interrupted_import, translations_dir)

MAX_UNPACKED = 4 * 10**9  # an archive whose files would unpack to more is refused (real packages: 100-300 MB)
CHECK_SENTENCE = "A dog running on the grass."
# opus-mt's multi-target models want the target language's token first: the one for each language we speak, by
# preference (opus-mt-en-zh knows >>cmn_Hans<< for Simplified Chinese, and Traditional and Cantonese ones).
LANGUAGE_TOKENS = {"zh": ("cmn_Hans", "zho_Hans", "zh_CN", "zh_Hans", "cmn", "zho", "zh"), "en": ("eng", "en")}
VOCABULARIES = ("shared_vocabulary", "source_vocabulary", "vocabulary")
TRADITIONAL = {"zt"}  # Argos's name for Traditional Chinese (i18n.match refuses the usual ones: zh_TW, zh_Hant)


@dataclass
class _Layout:
    """What to copy from where: each file of the installed folder (relative path) and its source, a file on disk
    or a member of `archive`."""

    format: str  # "argos" or "ctranslate2"
    metadata: dict | None
    source_tokenizer: str
    target_tokenizer: str
    files: dict[str, Path | str] = field(default_factory=dict)
    archive: Path | None = None


def import_translation(path: Path, models_dir: Path, source_language: str | None = None,
                       target_language: str | None = None,
                       report: Callable[[str], None] = lambda message: None) -> TranslationInfo:
    """Installs the translation model at `path` (an Argos package or a CTranslate2 folder) in the models folder,
    replacing the one for the same languages. Raises TranslationError, with what to do, for anything a user can
    get wrong."""
    path = Path(path).expanduser()
    if not path.exists():
        raise TranslationError(_("{path}: no such file or folder.").format(path=path))
    layout = _layout(path)
    source, target = _languages(path, layout.metadata, source_language, target_language)
    pair = pair_name(source, target)
    folder = translations_dir(models_dir)
    staging = folder / f".{pair}.importing"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        recover_interrupted_import(models_dir, pair)
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir()
    except OSError as exc:
        raise _cannot_write(folder, exc) from None
    try:
        report(_("Copying the translation model from {path} ...").format(path=path))
        _copy_files(layout, staging, path)
        info = TranslationInfo(source, target, path.name, layout.format, layout.source_tokenizer,
                               layout.target_tokenizer)
        vocabulary = _vocabulary(staging / MODEL_FOLDER)
        info.language_token = _language_token(vocabulary, target, path)
        info.add_source_eos = _needs_source_eos(layout, staging / MODEL_FOLDER, vocabulary)
        info.save(staging)
        report(_("Checking that it translates ..."))
        _check(staging, path)
        _swap(staging, folder / pair)
    except OSError as exc:
        raise _cannot_write(folder, exc) from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return read_info(folder / pair)


# ---------------------------------------------------------------------------------------------------- layouts


def _layout(path: Path) -> _Layout:
    if path.is_dir():
        return _folder_layout(path)
    if not zipfile.is_zipfile(path):
        raise TranslationError(_("{path} is neither an Argos Translate package (a .argosmodel file, which is a zip "
                                 "archive) nor a CTranslate2 model folder: give the package, or the folder that "
                                 "holds model.bin.").format(path=path))
    try:
        with zipfile.ZipFile(path) as archive:
            return _archive_layout(path, archive)
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError) as exc:
        raise _damaged(path, exc) from None


def _archive_layout(path: Path, archive: zipfile.ZipFile) -> _Layout:
    members = {info.filename: info for info in archive.infolist() if not info.is_dir()}
    for name in members:
        parts = PurePosixPath(name).parts
        if name.startswith(("/", "\\")) or ".." in parts or (parts and ":" in parts[0]):
            raise TranslationError(_("{path} holds a file outside its own folder ({name}): it is damaged or not a "
                                     "translation package, and was not unpacked.").format(path=path, name=name))
    found = sorted((name for name in members if PurePosixPath(name).name == "metadata.json"
                    and len(PurePosixPath(name).parts) <= 2), key=lambda name: len(PurePosixPath(name).parts))
    if not found:
        raise TranslationError(_("{path} has no metadata.json: it is not an Argos Translate package.").format(
            path=path))
    top = str(PurePosixPath(found[0]).parent)
    prefix = "" if top == "." else top + "/"
    metadata = json.loads(archive.read(found[0]).decode("utf-8"))
    layout = _Layout("argos", metadata if isinstance(metadata, dict) else {}, "sentencepiece.model",
                     "sentencepiece.model", archive=path)
    for name in members:
        if name.startswith(prefix + MODEL_FOLDER + "/"):
            layout.files[name[len(prefix):]] = name
    if f"{MODEL_FOLDER}/model.bin" not in layout.files:
        raise TranslationError(_("{path} has no model/model.bin: the package holds no CTranslate2 model.").format(
            path=path))
    _argos_tokenizer(path, prefix + "sentencepiece.model" in members, prefix + "bpe.model" in members)
    layout.files["sentencepiece.model"] = prefix + "sentencepiece.model"
    if sum(members[name].file_size for name in layout.files.values()) > MAX_UNPACKED:
        raise TranslationError(_("{path} would unpack to more than {size} GB: it is not a translation package "
                                 "captioner can use.").format(path=path, size=MAX_UNPACKED // 10**9))
    return layout


def _argos_tokenizer(path: Path, sentencepiece: bool, bpe: bool) -> None:
    if sentencepiece:
        return
    if bpe:
        raise TranslationError(_("{path} splits words with BPE (bpe.model), which captioner does not read: use a "
                                 "package with a sentencepiece.model.").format(path=path))
    raise TranslationError(_("{path} has no sentencepiece.model: the package is incomplete.").format(path=path))


def _folder_layout(path: Path) -> _Layout:
    metadata = _read_metadata(path / "metadata.json")
    if (path / MODEL_FOLDER / "model.bin").is_file():  # an Argos package, unpacked
        _argos_tokenizer(path, (path / "sentencepiece.model").is_file(), (path / "bpe.model").is_file())
        layout = _Layout("argos", metadata, "sentencepiece.model", "sentencepiece.model")
        layout.files = {f"{MODEL_FOLDER}/{file.relative_to(path / MODEL_FOLDER).as_posix()}": file
                        for file in (path / MODEL_FOLDER).rglob("*") if file.is_file()}
        layout.files["sentencepiece.model"] = path / "sentencepiece.model"
        return layout
    if not (path / "model.bin").is_file():
        raise TranslationError(_("{path} has no model.bin: it is not a CTranslate2 model. Convert the model first "
                                 "(for opus-mt: ct2-transformers-converter --model FOLDER --output_dir OUT "
                                 "--quantization int8 --copy_files source.spm target.spm), or give an Argos "
                                 "Translate package.").format(path=path))
    if (path / "source.spm").is_file() and (path / "target.spm").is_file():
        tokenizers = ("source.spm", "target.spm")
    elif (path / "sentencepiece.model").is_file():
        tokenizers = ("sentencepiece.model", "sentencepiece.model")
    else:
        raise TranslationError(_("{path} has no SentencePiece models beside model.bin: copy the model's source.spm "
                                 "and target.spm (or its sentencepiece.model) into it.").format(path=path))
    layout = _Layout("ctranslate2", metadata, *tokenizers)
    for file in path.iterdir():
        if file.is_file() and (file.name in ("model.bin", "config.json") or file.stem in VOCABULARIES):
            layout.files[f"{MODEL_FOLDER}/{file.name}"] = file
    for name in set(tokenizers):
        layout.files[name] = path / name
    return layout


def _read_metadata(path: Path) -> dict | None:
    if not path.is_file():
        return None
    try:
        metadata = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise _damaged(path, exc) from None
    return metadata if isinstance(metadata, dict) else None


# ---------------------------------------------------------------------------------------------------- languages


def _languages(path: Path, metadata: dict | None, source_given: str | None,
               target_given: str | None) -> tuple[str, str]:
    """(from, to) as our language codes ("en", "zh"): what the package says, or what the user said, or the
    folder's name; refused when captioner does not speak them."""
    said = (metadata or {}).get("from_code"), (metadata or {}).get("to_code")
    if all(isinstance(code, str) and code for code in said):
        for given, found in zip((source_given, target_given), said):
            if given and _ours(given) != _ours(found):
                raise TranslationError(_("{path} translates from '{source}' into '{target}' (its metadata.json "
                                         "says so), not as --from/--to say.").format(path=path, source=said[0],
                                                                                      target=said[1]))
        codes = said
    else:
        guessed = _guess_from_name(path.name) if metadata is None else None
        codes = (source_given or (guessed and guessed[0]), target_given or (guessed and guessed[1]))
        if not all(codes):
            raise TranslationError(_("Say which languages {path} translates between, for example: captioner models "
                                     "import-translation {path} --from en --to zh").format(path=path))
    source, target = _ours(codes[0]), _ours(codes[1])
    if target is None:
        raise TranslationError(_("{path} translates into '{code}', a language captioner does not speak; it speaks "
                                 "{languages}.").format(path=path, code=codes[1], languages=_spoken_languages()))
    if source is None:
        raise TranslationError(_("{path} translates from '{code}', but captioner's models write their captions in "
                                 "{languages}: it has nothing to translate.").format(path=path, code=codes[0],
                                                                                      languages=_spoken_languages()))
    if source == target:
        raise TranslationError(_("{path} translates from '{code}' into the same language: it has nothing to do.")
                               .format(path=path, code=codes[0]))
    return source, target


def _ours(code: str) -> str | None:
    """A language code as we name spoken languages ("zh" for zh, zh-CN, zh_Hans), or None when we do not speak it."""
    code = code.strip()
    if code.lower() in TRADITIONAL:
        return None
    ours = match([code])
    return spoken_language(ours) if ours else None


def _spoken_languages() -> str:
    return ", ".join(f"{name} ({spoken_language(code)})" for code, name in available().items())


def _guess_from_name(name: str) -> tuple[str, str] | None:
    """The last pair of codes for languages we speak in a name like "opus-mt-en-zh" or "translate-en_zh-1_9"."""
    pairs = re.findall(r"(?=(?<![a-z])([a-z]{2,3})[-_]([a-z]{2,3})(?![a-z]))", name.lower())
    known = [(a, b) for a, b in pairs if _ours(a) and _ours(b) and _ours(a) != _ours(b)]
    return known[-1] if known else None


# ---------------------------------------------------------------------------------------------------- the model


def _vocabulary(model: Path) -> set[str]:
    """The model's source tokens (CTranslate2 writes them as a JSON list, or a text file, one a line)."""
    for stem in VOCABULARIES:
        for suffix in (".json", ".txt"):
            file = model / f"{stem}{suffix}"
            if file.is_file():
                try:
                    text = file.read_text(encoding="utf-8")
                    return set(json.loads(text)) if suffix == ".json" else set(text.splitlines())
                except (ValueError, TypeError) as exc:  # cut short, not text, or not a list of tokens
                    raise _damaged(file, exc) from None
    return set()


def _language_token(vocabulary: set[str], target: str, path: Path) -> str | None:
    """The target-language token a multi-target model (opus-mt-en-zh) needs first in each sentence; None for a
    model without such tokens."""
    tokens = {token for token in vocabulary if token.startswith(">>") and token.endswith("<<")}
    if not tokens:
        return None
    for name in LANGUAGE_TOKENS.get(target, (target,)):
        if f">>{name}<<" in tokens:
            return f">>{name}<<"
    raise TranslationError(_("{path} needs a token naming the language to translate into, and has none for "
                             "'{code}': it does not translate into that language.").format(path=path, code=target))


def _needs_source_eos(layout: _Layout, model: Path, vocabulary: set[str]) -> bool:
    """Marian models converted from transformers (opus-mt: source.spm and target.spm) were trained with "</s>"
    after each sentence, and their CTranslate2 config does not add it; Argos's models were trained without."""
    if layout.format != "ctranslate2" or layout.source_tokenizer != "source.spm" or "</s>" not in vocabulary:
        return False
    try:
        config = json.loads((model / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        config = {}
    return not config.get("add_source_eos", False)


def _copy_files(layout: _Layout, staging: Path, path: Path) -> None:
    archive = zipfile.ZipFile(layout.archive) if layout.archive is not None else None
    try:
        for relative, source in layout.files.items():
            target = staging / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                reading = archive.open(source) if archive is not None else open(source, "rb")
            except (OSError, zipfile.BadZipFile, KeyError) as exc:
                raise _damaged(path, exc) from None
            with reading, open(target, "wb") as writing:
                try:
                    shutil.copyfileobj(reading, writing, 1 << 20)
                except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
                    raise _damaged(path, exc) from None
    finally:
        if archive is not None:
            archive.close()


def _check(staging: Path, path: Path) -> None:
    """The model must load and translate a sentence before it is kept."""
    try:
        CaptionTranslator(staging).translate([CHECK_SENTENCE], max_tokens=16)
    except TranslationError as exc:
        raise TranslationError(_("{path} could not be used as a translation model ({problem}); nothing was "
                                 "installed.").format(path=path, problem=exc.problem)) from None


def _swap(staging: Path, final: Path) -> None:
    """The new model in place of the old, which is moved aside first and removed last (recovered by
    recover_interrupted_import when the process dies in between)."""
    if not final.exists():
        staging.rename(final)
        return
    replaced = final.parent / f".{final.name}.replaced"
    shutil.rmtree(replaced, ignore_errors=True)
    for attempt in range(3):  # a running app that looked in between may have put the old one back: again
        final.rename(replaced)
        try:
            staging.rename(final)
            break
        except OSError:
            if final.exists() and not replaced.exists() and attempt < 2:
                continue
            if not final.exists():
                replaced.rename(final)
            raise
    shutil.rmtree(replaced, ignore_errors=True)


def _damaged(path: Path, exc: BaseException) -> TranslationError:
    return TranslationError(_("{path} could not be read ({problem}): it is damaged or incomplete; get it again.")
                            .format(path=path, problem=first_line(exc)))


def _cannot_write(folder: Path, exc: OSError) -> TranslationError:
    return TranslationError(_("Could not write the translation model into {folder} ({problem}). Free some space, or "
                              "use a models folder you can write to (--models-dir or CAPTIONER_MODELS).").format(
        folder=folder, problem=exc.strerror or first_line(exc)))
