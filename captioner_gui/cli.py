"""The `captioner` command: caption images, manage models.

Every error a user can cause ends in one line on stderr ("captioner: ...") and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import re
import sys
import time
from pathlib import Path

from captioner_gui import __version__
from captioner_gui.engine.names import json_text, shown  # file names as they may be printed
from captioner_gui.engine.options import DEVICES, METHODS, PRECISIONS, Target
from captioner_gui import i18n
from captioner_gui.i18n import _, ngettext

EXIT_OK, EXIT_FAILED = 0, 1


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        i18n.use(_language_asked(argv))
    except ValueError as exc:
        print(f"captioner: {exc}", file=sys.stderr)
        return EXIT_FAILED
    i18n.translate_argparse()
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "run", None):
        parser.print_help()
        return EXIT_FAILED
    _quiet_libraries()
    _tell_progress()
    from captioner_gui.engine import CaptionerError

    try:
        return args.run(args)
    except CaptionerError as exc:
        print(f"captioner: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("captioner: " + _("interrupted."), file=sys.stderr)
        return 130
    except BrokenPipeError:  # `captioner caption ... | head`
        sys.stderr.close()
        return EXIT_OK


def _language_asked(argv: list[str]) -> str | None:
    """The language given with `captioner --language CODE COMMAND ...` (before the command: after it, synth's and
    train's --language is the captions' language), else $CAPTIONER_LANGUAGE; None: the system's."""
    for index, word in enumerate(argv):
        if word == "--language" and index + 1 < len(argv):
            return argv[index + 1]
        if word.startswith("--language="):
            return word.partition("=")[2]
        if not word.startswith("-"):
            break
    return os.environ.get("CAPTIONER_LANGUAGE") or None


def _tell_progress() -> None:
    """At a terminal, the engine's notes on long steps ("Preparing model 'coco' for this CPU...") are shown on
    stderr; a script that reads stderr gets only errors."""
    if sys.stderr.isatty():
        import logging

        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("captioner: %(message)s"))
        engine_log = logging.getLogger("captioner_gui.engine")
        engine_log.addHandler(handler)
        engine_log.setLevel(logging.INFO)


def _quiet_libraries() -> None:
    """transformers and huggingface_hub talk about things our users cannot act on."""
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_VERBOSITY", "error")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import warnings

    warnings.filterwarnings("ignore", module="huggingface_hub")
    warnings.filterwarnings("ignore", module="transformers")


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--models-dir", type=Path, default=None,
                        help=_("the models folder (default: $CAPTIONER_MODELS, models/ of a source checkout, "
                             "or the user's data folder)"))

    parser = argparse.ArgumentParser(prog="captioner", description=_("Describe images with ClipCap, offline."))
    parser.add_argument("--version", action="version", version=f"captioner {__version__}",
                        help=_("show the version and exit"))
    parser.add_argument("--language", metavar="CODE",
                        help=_("the language of captioner's words: {languages} (default: the system's; or "
                               "$CAPTIONER_LANGUAGE)").format(languages=", ".join(i18n.available())))
    commands = parser.add_subparsers(title=_("commands"), metavar="COMMAND")

    caption = commands.add_parser("caption", parents=[common], help=_("print a caption for each image"),
                                  description=_("Print one caption per image. A folder means every image in it."))
    caption.add_argument("paths", nargs="+", type=Path, metavar="IMAGE", help=_("image files or folders"))
    caption.add_argument("--model", default="coco", help=_("a model name, model folder or manifest (default: coco)"))
    caption.add_argument("--decoding", choices=METHODS, default="beam")
    caption.add_argument("--beam-size", type=int, default=5)
    caption.add_argument("--top-p", type=float, default=0.9, help=_("nucleus sampling's probability mass"))
    caption.add_argument("--temperature", type=float, default=1.0)
    caption.add_argument("--seed", type=int, default=None, help=_("makes nucleus sampling repeatable"))
    caption.add_argument("--max-tokens", type=int, default=67)
    caption.add_argument("--rerank", action="store_true",
                         help=_("beam search: choose among the beams the caption CLIP finds closest to the image"))
    caption.add_argument("--device", choices=DEVICES, default="auto",
                         help=_("auto: CUDA when available, else the CPU"))
    caption.add_argument("--precision", choices=PRECISIONS, default="auto",
                         help=_("auto: int8 on the CPU, fp16 on CUDA; fp32 is exact but slower"))
    caption.add_argument("--batch-size", type=int, default=8, help=_("images captioned together (default 8)"))
    caption.add_argument("--recursive", action="store_true", help=_("also look into subfolders of folders"))
    caption.add_argument("--json", action="store_true", help=_("print a JSON list, one object per image"))
    caption.set_defaults(run=run_caption)

    full = commands.add_parser(
        "describe", parents=[common], help=_("describe images fully: their kind, their text, the pictures in them"),
        description=_("Describe each image: what kind of picture it is, its text (read offline, in reading order), "
                    "the photos inside it with a caption each and where they are, and the words the app would "
                    "say. `captioner caption` gives ClipCap's caption alone."))
    full.add_argument("paths", nargs="+", type=Path, metavar="IMAGE", help=_("image files or folders"))
    full.add_argument("--model", default="coco", help=_("a model name, model folder or manifest (default: coco)"))
    full.add_argument("--decoding", choices=("greedy", "beam"), default="beam")
    full.add_argument("--beam-size", type=int, default=5)
    full.add_argument("--device", choices=DEVICES, default="auto")
    full.add_argument("--precision", choices=PRECISIONS, default="auto")
    full.add_argument("--text-only", action="store_true", help=_("read the text and nothing else"))
    full.add_argument("--recursive", action="store_true", help=_("also look into subfolders of folders"))
    full.add_argument("--json", action="store_true",
                      help=_('print a JSON list, one object per image: {"image", "kind", "blank", "title", "text", '
                           '"blocks", "pictures", "spoken", "more", "notes", "seconds", "timings"}'))
    full.set_defaults(run=run_describe)

    describe = commands.add_parser(
        "describe-screen", parents=[common],
        help=_("describe the screen, the active window, a region or the clipboard image, through the running app "
             "(bind it to a key in your desktop's shortcut settings), or by itself when the app is not running"))
    target = describe.add_mutually_exclusive_group()
    target.add_argument("--window", action="store_true", help=_("the active window"))
    target.add_argument("--region", metavar="X,Y,W,H", help=_("a region of the screen, in pixels"))
    target.add_argument("--clipboard", action="store_true", help=_("the image on the clipboard"))
    target.add_argument("--text", action="store_true",
                        help=_("read the text of the active window (the screen where no window can be found)"))
    describe.add_argument("--all-monitors", action="store_true", help=_("every monitor, not only the one with the "
                                                                      "mouse pointer (by itself only)"))
    describe.add_argument("--model", default=None, help=_("by itself: model name, folder or manifest (default: the "
                                                        "app's setting)"))
    describe.add_argument("--device", choices=DEVICES, default=None, help=_("by itself: where to run"))
    describe.add_argument("--no-speech", action="store_true", help=_("by itself: print only, do not speak"))
    describe.add_argument("--json", action="store_true",
                          help=_('print the description as `captioner describe --json` does, with "what" and "by"'))
    describe.set_defaults(run=run_describe_screen)

    models = commands.add_parser("models", help=_("list, download or import models"))
    models_commands = models.add_subparsers(title=_("models commands"), metavar="ACTION")

    listing = models_commands.add_parser("list", parents=[common], help=_("show installed models"))
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(run=run_models_list)

    verify = models_commands.add_parser("verify", parents=[common],
                                        help=_("check installed models' files (sizes, SHA-256, headers)"))
    verify.add_argument("name", nargs="?", help=_("one model (default: all)"))
    verify.set_defaults(run=run_models_verify)

    download = models_commands.add_parser("download", parents=[common],
                                          help=_("fetch a released model (coco, conceptual) or, for training, gpt2"))
    download.add_argument("name", help=_("coco, conceptual, or gpt2 (GPT-2's pretrained weights, for training)"))
    download.set_defaults(run=run_models_download)

    importing = models_commands.add_parser(
        "import", parents=[common], help=_("install a checkpoint file you already have"),
        description=_("Copy a ClipCap checkpoint into the models folder and write its manifest. A built-in name "
                    "(coco, conceptual, coco-transformer) brings that model's settings."))
    importing.add_argument("file", type=Path)
    importing.add_argument("--name", required=True)
    importing.add_argument("--mapping", choices=("mlp", "transformer"))
    importing.add_argument("--prefix-length", type=int)
    importing.add_argument("--clip-length", type=int)
    importing.add_argument("--mapping-layers", type=int)
    importing.add_argument("--normalize-prefix", action=argparse.BooleanOptionalAction, default=None)
    importing.add_argument("--clip-model", help=_("an open_clip model name (ViT-B-32, RN50x4, ...) or a JSON config"))
    importing.add_argument("--clip-weights", help=_("'openai' (downloaded if missing) or a CLIP weights file"))
    importing.add_argument("--tokenizer", type=Path, help=_("a folder with vocab.json and merges.txt"))
    importing.add_argument("--n-head", type=int, help=_("GPT-2's attention heads (default 12)"))
    importing.set_defaults(run=run_models_import)

    translating = models_commands.add_parser(
        "import-translation", parents=[common],
        help=_("install a translation model you have, so that captions are said in your language"),
        description=_("Install an offline translation model you have: an Argos Translate package (.argosmodel), "
                      "or a CTranslate2 model folder with its SentencePiece models (opus-mt converted with "
                      "ct2-transformers-converter). When captioner's language is the one it translates into, each "
                      "caption is translated; nothing is downloaded. A model for the same languages is replaced."))
    translating.add_argument("file", type=Path, metavar="FILE|FOLDER")
    translating.add_argument("--from", dest="source_language", metavar="CODE",
                             help=_("the language it translates from, for a folder (a package says it): en"))
    translating.add_argument("--to", dest="target_language", metavar="CODE",
                             help=_("the language it translates into, for a folder (a package says it): zh"))
    translating.set_defaults(run=run_models_import_translation)
    models.set_defaults(run=lambda args: (models.print_help(), EXIT_FAILED)[1])
    add_training_commands(commands, common)

    benchmark = commands.add_parser("benchmark", parents=[common], help=_("measure captioning speed and memory"))
    benchmark.add_argument("--model", default="random",
                           help=_("an installed model, or random: real-size ViT-B/32 + GPT-2 with random weights"))
    benchmark.add_argument("--precision", choices=PRECISIONS, default="auto")
    benchmark.add_argument("--device", choices=DEVICES, default="auto")
    benchmark.add_argument("--repeats", type=int, default=5)
    benchmark.add_argument("--describe", action="store_true",
                           help=_("instead: screenshots (1366x768 with and without pictures, 1920x1080) from capture to "
                                "the words to speak, stage by stage (text reading, picture finding, captions)"))
    benchmark.add_argument("--soak", type=int, metavar="N",
                           help=_("instead: describe N pictures in a row in the app's window (offscreen) and report "
                                "memory and time per description at the start and at the end (e.g. 1000)"))
    benchmark.add_argument("--latency", action="store_true",
                           help=_("instead: from the hotkey's key press to the first sound, in the app's window "
                                "(offscreen), for a photo and a screen of text, through our voice and the screen reader"))
    benchmark.add_argument("--translation", action="store_true",
                           help=_("instead: the time translating a caption adds, with a random model of "
                                  "opus-mt-en-zh's size (int8)"))
    benchmark.add_argument("--json", action="store_true")
    benchmark.set_defaults(run=run_benchmark)
    return parser


def add_training_commands(commands, common) -> None:
    synth = commands.add_parser("synth", help=_("write a synthetic captioning set (shapes) for demos and tests"))
    synth.add_argument("out", type=Path)
    synth.add_argument("--count", type=int, default=1000, help=_("images (default 1000; 80/10/10 train/val/test)"))
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument("--language", dest="caption_language", choices=("en", "zh"), default="en",
                       help=_("the captions' language: en (English) or zh (Simplified Chinese); the same seed draws "
                              "the same pictures in both"))
    synth.set_defaults(run=run_synth)

    prepare = commands.add_parser(
        "prepare", parents=[common], help=_("compute one CLIP vector per image of a data set"),
        description=_("DATA: a COCO annotation file, Karpathy's dataset_coco.json, or a folder with captions.jsonl."))
    prepare.add_argument("data", type=Path)
    prepare.add_argument("--out", type=Path, required=True, help=_("the embeddings folder to write"))
    prepare.add_argument("--images", type=Path, help=_("where image paths in DATA start (default: beside DATA)"))
    prepare.add_argument("--clip-model", default="ViT-B-32")
    prepare.add_argument("--clip-weights", default="openai", help=_("an open_clip pretrained tag or a weights file"))
    prepare.add_argument("--batch-size", type=int, default=64)
    prepare.add_argument("--device", choices=DEVICES, default="auto")
    prepare.set_defaults(run=run_prepare)

    train = commands.add_parser("train", parents=[common], help=_("train a ClipCap model on prepared embeddings"),
                                description=_("Defaults are the paper's. Under torchrun, the same command trains on "
                                            "several GPUs or machines; --batch-size is then the total."))
    from captioner_gui.training.options import TrainOptions

    defaults = TrainOptions()
    train.add_argument("emb", type=Path, help=_("an embeddings folder from captioner prepare"))
    train.add_argument("--out", type=Path, required=True, help=_("the model folder to write"))
    train.add_argument("--mapping", choices=("mlp", "transformer"), default=defaults.mapping)
    train.add_argument("--prefix-length", type=int, default=defaults.prefix_length)
    train.add_argument("--clip-length", type=int, default=defaults.clip_length, help=_("transformer mapping only"))
    train.add_argument("--layers", type=int, default=defaults.layers, help=_("transformer mapping only"))
    train.add_argument("--normalize-prefix", action=argparse.BooleanOptionalAction, default=None,
                       help=_("default: on for transformer, off for mlp"))
    train.add_argument("--freeze-lm", action="store_true", help=_("train the mapping network only"))
    train.add_argument("--lm", default=defaults.lm,
                       help=_("gpt2 (from captioner models download gpt2), a GPT-2 weights file or folder, or a "
                            "GPT-2 config JSON for a randomly initialised one"))
    train.add_argument("--tokenizer", help=_("a folder with vocab.json and merges.txt (default: models' "
                                             "gpt2-tokenizer), or bpe: learn a byte-level BPE from the training "
                                             "captions (for captions in Chinese)"))
    train.add_argument("--vocab-size", type=int, default=defaults.vocab_size,
                       help=_("with --tokenizer bpe: at most this many tokens"))
    train.add_argument("--language", dest="caption_language", default=defaults.language,
                       help=_("the captions' language, recorded in the model (en, zh, ...; default: auto, Chinese "
                              "when most captions hold Chinese characters)"))
    train.add_argument("--epochs", type=int, default=defaults.epochs)
    train.add_argument("--batch-size", type=int, default=defaults.batch_size)
    train.add_argument("--lr", type=float, default=defaults.lr)
    train.add_argument("--warmup", type=int, default=defaults.warmup, help=_("steps of linear warm-up"))
    train.add_argument("--accumulate", type=int, default=defaults.accumulate, help=_("batches per optimizer step"))
    train.add_argument("--seed", type=int, default=defaults.seed)
    train.add_argument("--device", choices=DEVICES, default="auto")
    train.add_argument("--resume", action="store_true", help=_("continue the run saved in --out"))
    train.set_defaults(run=run_train)

    evaluate = commands.add_parser(
        "evaluate", parents=[common], help=_("score captions with the COCO metrics"),
        description=_("Either --model and --data (caption a split and score it), or --predictions and --references."))
    evaluate.add_argument("--model", help=_("a model name, folder or manifest"))
    evaluate.add_argument("--data", type=Path, help=_("a data set as for captioner prepare"))
    evaluate.add_argument("--split", default="test")
    evaluate.add_argument("--images", type=Path)
    evaluate.add_argument("--decoding", choices=METHODS, default="beam")
    evaluate.add_argument("--beam-size", type=int, default=5)
    evaluate.add_argument("--device", choices=DEVICES, default="auto")
    evaluate.add_argument("--precision", choices=PRECISIONS, default="auto")
    evaluate.add_argument("--save-predictions", type=Path, help=_("also write the captions as COCO results"))
    evaluate.add_argument("--predictions", type=Path, help=_("COCO-format results: [{image_id, caption}]"))
    evaluate.add_argument("--references", type=Path, help=_("a COCO-format annotation file"))
    evaluate.add_argument("--json", action="store_true")
    evaluate.set_defaults(run=run_evaluate)


def _models_dir(args) -> Path:
    from captioner_gui.engine import default_models_dir

    return (args.models_dir or default_models_dir()).expanduser()


def reading_describer(model: str, models_dir: Path, device: str = "auto", precision: str = "auto",
                      text_only: bool = False):
    """A Describer with the caption model, or without one where it is not installed: the text is still read and the
    pictures found, and the descriptions say once how to get captions. `text_only` never loads the model."""
    from captioner_gui.engine import BUILTINS, ModelFilesMissing, load_model
    from captioner_gui.engine.describe import Describer

    if text_only:
        return Describer(None, models_dir=models_dir)
    try:
        return Describer(load_model(model, models_dir, device, precision), models_dir=models_dir)
    except ModelFilesMissing as exc:
        note = (_("Pictures are not captioned: the caption model '{model}' is not installed. Get it with: "
                  "captioner models download {model}").format(model=model) if model in BUILTINS else
                _("Pictures are not captioned: {problem}").format(problem=exc))
        return Describer(None, models_dir=models_dir, no_captions=note)


# ---------------------------------------------------------------------------------------------------- caption


def collect_inputs(paths: list[Path], recursive: bool) -> list[Path]:
    """Files as given, folders expanded to their images; a missing path stays in the list to be reported."""
    from captioner_gui.engine import find_images

    inputs = []
    for path in paths:
        if path.is_dir():
            found = find_images(path, recursive)
            if not found:
                print("captioner: " + (_("{folder}: no images in this folder.") if recursive else
                                       _("{folder}: no images in this folder (--recursive looks into subfolders)."))
                      .format(folder=shown(str(path))), file=sys.stderr)
            inputs += found
        else:
            inputs.append(path)
    return inputs


class JsonList:
    """Prints a JSON list (as json.dump(..., indent=2) would) one entry at a time, as each is done, so that one
    entry never costs the others theirs; always UTF-8, whatever the terminal's encoding (names.json_text)."""

    def __init__(self):
        self.count = 0

    def add(self, entry: dict) -> None:
        self._write(("[\n" if self.count == 0 else ",\n") + "\n".join("  " + line for line in
                                                                    json_text(entry, indent=2).splitlines()))
        self.count += 1

    def close(self) -> None:
        self._write("\n]\n" if self.count else "[]\n")

    @staticmethod
    def _write(text: str) -> None:
        sys.stdout.flush()  # what tqdm wrote before
        sys.stdout.buffer.write(text.encode("utf-8"))
        sys.stdout.buffer.flush()


def one_line(text: str) -> str:
    """A caption on one line: control characters (which a random or damaged model can produce; C1's too, which a
    terminal obeys) become spaces."""
    return " ".join(re.sub(r"[\x00-\x1f\x7f-\x9f]", " ", text).split())


def run_caption(args) -> int:
    from tqdm import tqdm

    from captioner_gui.engine import CaptionerError, DecodeOptions, load_image, load_model
    from captioner_gui.engine.guard import blank_message
    from captioner_gui.engine.translation import Translation

    options = DecodeOptions(method=args.decoding, beam_size=args.beam_size, top_p=args.top_p,
                            temperature=args.temperature, seed=args.seed, max_tokens=args.max_tokens,
                            rerank=args.rerank)
    options.check()
    if args.batch_size < 1:
        raise CaptionerError(_("The batch size must be 1 or more."))
    inputs = collect_inputs(args.paths, args.recursive)
    if not inputs:
        raise CaptionerError(_("No images to caption."))
    model = load_model(args.model, _models_dir(args), args.device, args.precision)
    # Captions in the user's language where a translation model for it is installed (ClipCap's words are kept in
    # --json's "original").
    translation = Translation(_models_dir(args))
    if translation.translator(model) is None and translation.problem:
        print(f"captioner: {translation.problem}", file=sys.stderr)

    results = JsonList() if args.json else None
    failed = 0
    show_path = len(inputs) > 1 or any(p.is_dir() for p in args.paths)
    progress = tqdm(total=len(inputs), unit="image", file=sys.stderr, leave=False,
                    disable=len(inputs) < 2 or not sys.stderr.isatty())
    try:
        for start in range(0, len(inputs), args.batch_size):
            batch = inputs[start:start + args.batch_size]
            entries, images, load_seconds = [], [], []
            for path in batch:
                began = time.perf_counter()
                entry = {"image": str(path)}
                try:
                    images.append(load_image(path))
                    load_seconds.append(time.perf_counter() - began)
                except CaptionerError as exc:
                    entry["error"] = str(exc)
                entries.append(entry)
            written = model.caption(images, options) if images else []
            captions, said = iter(written), iter(translation.in_words([c.text for c in written], model))
            loads = iter(load_seconds)
            for entry in entries:
                if "error" in entry:
                    failed += 1
                    progress.write(f"captioner: {shown(entry['error'])}", file=sys.stderr)
                else:
                    caption = next(captions)
                    words, language = next(said)
                    entry.update(caption=words, **({"original": caption.text} if language != caption.language else {}),
                                 language=language, tokens=caption.tokens, score=round(caption.score, 6),
                                 seconds=round(caption.seconds + next(loads), 6), blank=caption.blank,
                                 kind=caption.kind, kind_scores=caption.kind_scores, agreement=caption.agreement)
                    if not args.json:
                        text = blank_message("image") if caption.blank else one_line(words)
                        line = f"{shown(entry['image'])}: {text}" if show_path else text
                        progress.write(line, file=sys.stdout)
                        sys.stdout.flush()
                if results is not None:
                    results.add(entry)
            progress.update(len(batch))
    finally:
        progress.close()
        if results is not None:  # a list that is valid JSON, whatever stopped it
            results.close()
    return EXIT_FAILED if failed else EXIT_OK


# ---------------------------------------------------------------------------------------------------- describe-screen


def run_describe(args) -> int:
    from tqdm import tqdm

    from captioner_gui.engine import CaptionerError, DecodeOptions, load_image

    options = DecodeOptions(method=args.decoding, beam_size=args.beam_size)
    options.check()
    inputs = collect_inputs(args.paths, args.recursive)
    if not inputs:
        raise CaptionerError(_("No images to describe."))
    describer = reading_describer(args.model, _models_dir(args), args.device, args.precision, args.text_only)
    describer.start_reader()
    problem = describer.start_translator()
    if problem:
        print(f"captioner: {problem}", file=sys.stderr)
    if describer.reader_problem:
        print("captioner: " + _("{problem} Captions only.").format(problem=describer.reader_problem), file=sys.stderr)
    results, failed = JsonList() if args.json else None, 0
    printed_once: set[str] = set()  # that pictures are not captioned without a model: said at the first picture
    several = len(inputs) > 1 or any(p.is_dir() for p in args.paths)
    progress = tqdm(inputs, unit="image", file=sys.stderr, leave=False,
                    disable=len(inputs) < 2 or not sys.stderr.isatty())
    try:
        for path in progress:
            try:
                image = load_image(path)
            except CaptionerError as exc:
                failed += 1
                progress.write(f"captioner: {shown(str(exc))}", file=sys.stderr)
                if results is not None:
                    results.add({"image": str(path), "error": str(exc)})
                continue
            description = describer.describe(image, str(path), options=options, text_only=args.text_only)
            if results is not None:
                results.add(description.as_json(str(path)))
            else:
                lines = [one_line(line) for line in description.lines() if line not in printed_once]
                printed_once.update(note for note in description.notes if note == describer.no_captions)
                progress.write("\n".join([f"{shown(str(path))}:", *("  " + line for line in lines)] if several
                                          else lines), file=sys.stdout)
                sys.stdout.flush()
    finally:
        if results is not None:  # a list that is valid JSON, whatever stopped it
            results.close()
    return EXIT_FAILED if failed else EXIT_OK


def run_describe_screen(args) -> int:
    """Asks the running app (which speaks and keeps the history); without one, captures, describes, speaks."""
    from captioner_gui.engine import CaptionerError

    try:
        from PySide6.QtCore import QCoreApplication
        from PySide6.QtGui import QGuiApplication

        from captioner_gui.app.capture import Box, CaptureError
        from captioner_gui.app.instance import send
    except ImportError as exc:
        raise CaptionerError(_("describe-screen needs the app's packages ({problem}): pip install captioner").format(
            problem=exc)) from None
    what = (Target.WINDOW if args.window else Target.REGION if args.region else Target.CLIPBOARD if args.clipboard
            else Target.TEXT if args.text else Target.SCREEN)
    try:
        region = Box.parse(args.region) if args.region else None
    except ValueError as exc:
        raise CaptionerError(str(exc)) from None
    QCoreApplication.setOrganizationName("captioner")
    QCoreApplication.setApplicationName("captioner")
    # The clipboard needs a GUI application (and a display); everything else only an event loop's core.
    application = QCoreApplication.instance() or (QGuiApplication([sys.argv[0]]) if what == Target.CLIPBOARD
                                                  else QCoreApplication([sys.argv[0]]))
    request = {"command": "describe", "what": what, "all_monitors": args.all_monitors}
    if region is not None:
        request["region"] = [region.left, region.top, region.width, region.height]
    answer = send(request, timeout_ms=180_000)
    by = "app"
    if answer is None:
        by = "itself"
        try:
            answer = _describe_by_itself(args, what, region)
        except CaptureError as exc:
            raise CaptionerError(str(exc)) from None
    del application
    if "error" in answer:
        raise CaptionerError(answer["error"])
    if args.json:
        print(json.dumps(answer.get("description", {}) | {"what": what, "by": by}, ensure_ascii=False))
    else:
        print("\n".join(one_line(line) for line in answer["text"].splitlines()))
    return EXIT_OK


def _describe_by_itself(args, what: Target, region) -> dict:
    from captioner_gui.app import capture
    from captioner_gui.app.settings import Settings
    from captioner_gui.app.speech import Speaker, SpeechRoute, recording_dir
    from captioner_gui.engine import load_image_bytes

    settings = Settings.load()
    if not (args.language or os.environ.get("CAPTIONER_LANGUAGE")):  # by itself it speaks as the app would
        from captioner_gui.app.language import resolve

        i18n.use(resolve(settings.language))
    started = time.perf_counter()
    if what == Target.CLIPBOARD:
        from PySide6.QtGui import QGuiApplication

        from captioner_gui.app.window import image_to_png

        clipboard = QGuiApplication.clipboard()
        if clipboard.image().isNull():
            return {"error": _("The clipboard holds no image.")}
        taken = capture.Capture(load_image_bytes(image_to_png(clipboard.image()), _("The clipboard image")), None,
                                Target.CLIPBOARD)
    else:
        taken = capture.take(what, region, capture.pointer_position(), args.all_monitors)
    captured = time.perf_counter() - started
    describer = reading_describer(args.model or settings.model, _models_dir(args), args.device or settings.device,
                                  text_only=what == Target.TEXT)
    options = settings.decode_options()
    description = describer.describe(taken.image, taken.source, taken.title, options, text_only=what == Target.TEXT,
                                     dialog=taken.dialog)
    description.timings["capture"] = captured
    if settings.speech and not args.no_speech:
        speaker = Speaker(record_dir=recording_dir())
        speaker.configure(settings.voice, settings.rate, settings.volume / 100)
        SpeechRoute(speaker, settings).say(description.spoken_parts)
        speaker.wait_until_quiet(120)
        speaker.close()
    return {"text": "\n".join(description.lines()), "blank": description.blank,
            "description": description.as_json(taken.source)}


# ---------------------------------------------------------------------------------------------------- models


def run_models_list(args) -> int:
    from captioner_gui.engine import list_models
    from captioner_gui.engine.store import human_size
    from captioner_gui.engine.translation import list_translations

    models_dir = _models_dir(args)
    infos = list_models(models_dir)
    translations = list_translations(models_dir)
    if args.json:
        print(json.dumps([
            {"name": i.name, "kind": "captioner", "folder": str(i.folder), "size_bytes": i.size_bytes,
             "complete": i.complete, "missing": i.missing, "damaged": i.damaged,
             **({"problem": i.problem} if i.problem else {})}
            for i in infos
        ] + [translation_entry(t) for t in translations], indent=2, ensure_ascii=False))
        return EXIT_OK
    if not infos:
        print(_("No models in {folder}. Get one with: captioner models download coco").format(folder=models_dir))
        if not translations:
            return EXIT_OK
    width = max((len(i.name) for i in infos), default=0)
    for info in infos:
        if info.problem:
            status = _("broken: {problem}").format(problem=info.problem)
        elif info.damaged:
            status = _("damaged: {files}").format(files="; ".join(info.damaged))
        elif info.complete:
            status = _("complete")
        else:
            status = _("incomplete, missing {files}").format(files=", ".join(info.missing))
        print(f"{info.name:<{width}}  {human_size(info.size_bytes):>9}  {status}")
    print_translations(translations)
    print(_("(in {folder})").format(folder=models_dir))
    return EXIT_OK


def translation_entry(installed) -> dict:
    """A translation model in `models list --json`."""
    info = installed.info
    return {"name": installed.pair, "kind": "translation", "folder": str(installed.folder),
            "size_bytes": installed.size_bytes, "complete": not installed.problem,
            "from": info.source_language if info else None, "to": info.target_language if info else None,
            "source": info.source if info else None, **({"problem": installed.problem} if installed.problem else {})}


def print_translations(translations) -> None:
    from captioner_gui.engine.store import human_size
    from captioner_gui.engine.translation import language_name

    if not translations:
        return
    print(_("Translation models (captions said in your language):"))
    width = max(len(t.pair) for t in translations)
    for installed in translations:
        info = installed.info
        if info is None:
            status = _("broken: {problem}").format(problem=installed.problem)
        else:
            status = _("{source} to {target}, imported from {file}").format(
                source=language_name(info.source_language), target=language_name(info.target_language),
                file=info.source)
            if installed.problem:
                status += "; " + _("incomplete, {problem}").format(problem=installed.problem)
        print(f"{installed.pair:<{width}}  {human_size(installed.size_bytes):>9}  {status}")


def run_models_verify(args) -> int:
    from captioner_gui.engine.store import get_hint, verify_models

    checks = verify_models(_models_dir(args), args.name)
    if not checks:
        print(_("No models in {folder}.").format(folder=_models_dir(args)))
    for check in checks:
        if check.ok:
            print(ngettext("{name}: ok ({count} file checked)", "{name}: ok ({count} files checked)",
                           check.files).format(name=check.name, count=check.files))
            continue
        found = check.problem or "; ".join([*check.damaged, *(_("missing {file}").format(file=m)
                                                              for m in check.missing)])
        verdict = (_("{name}: damaged: {problem}.") if check.damaged else _("{name}: broken: {problem}."))
        print(verdict.format(name=check.name, problem=found) + get_hint(check.name))
    return EXIT_OK if all(check.ok for check in checks) else EXIT_FAILED


def run_models_download(args) -> int:
    from captioner_gui.engine import download_model

    models_dir = _models_dir(args)
    result = download_model(args.name, models_dir, report=lambda message: print(message, file=sys.stderr))
    print(_("GPT-2 for training is ready in {folder}.").format(folder=result) if isinstance(result, Path)
          else _("Model '{name}' is ready in {folder}.").format(name=result.name, folder=result.folder))
    return EXIT_OK


def run_models_import(args) -> int:
    from captioner_gui.engine import import_model

    manifest = import_model(
        args.file, args.name, _models_dir(args), mapping=args.mapping, prefix_length=args.prefix_length,
        clip_length=args.clip_length, mapping_layers=args.mapping_layers, normalize_prefix=args.normalize_prefix,
        clip_model=args.clip_model, clip_weights=args.clip_weights, tokenizer=args.tokenizer, n_head=args.n_head,
        report=lambda message: print(message, file=sys.stderr),
    )
    print(_("Model '{name}' is ready in {folder}.").format(name=manifest.name, folder=manifest.folder))
    return EXIT_OK


def run_models_import_translation(args) -> int:
    from captioner_gui.engine.translation import language_name, translations_dir
    from captioner_gui.engine.translation_import import import_translation

    models_dir = _models_dir(args)
    info = import_translation(args.file, models_dir, args.source_language, args.target_language,
                              report=_report if sys.stderr.isatty() else lambda message: None)
    print(_("Translation model {pair} is ready in {folder}. When captioner's language is {language}, captions are "
            "translated into it.").format(pair=info.pair, folder=translations_dir(models_dir) / info.pair,
                                          language=language_name(info.target_language)))
    return EXIT_OK


# ---------------------------------------------------------------------------------------------------- training


def _report(message: str) -> None:
    print(message, file=sys.stderr)


def run_synth(args) -> int:
    from captioner_gui.engine import CaptionerError
    from captioner_gui.training.synth import write_synthetic_set

    if args.count < 3:
        raise CaptionerError(_("--count must be at least 3 (one image for each of train, val and test)."))
    records = write_synthetic_set(args.out, args.count, args.seed, language=args.caption_language)
    splits = {s: sum(r.split == s for r in records) for s in ("train", "val", "test")}
    print(_("Wrote {count} images to {folder} ({train} train, {val} val, {test} test), captions.jsonl and "
            "captions_{{train,val,test}}.json.").format(count=len(records), folder=args.out, **splits))
    return EXIT_OK


def run_prepare(args) -> int:
    from captioner_gui.training.prepare import prepare_embeddings

    out = prepare_embeddings(args.data, args.out, args.images, args.clip_model, args.clip_weights, args.batch_size,
                             args.device, _models_dir(args), progress=sys.stderr.isatty())
    index = json.loads((out / "index.json").read_text())
    done = (_("{count} images embedded with CLIP {clip}, {skipped} skipped: {folder}") if index["skipped"]
            else _("{count} images embedded with CLIP {clip}: {folder}"))
    print(done.format(count=len(index["images"]), clip=args.clip_model, skipped=len(index["skipped"]), folder=out))
    return EXIT_OK


def run_train(args) -> int:
    from captioner_gui.engine import CaptionerError
    from captioner_gui.training.options import TrainOptions
    from captioner_gui.training.train import train

    options = TrainOptions(
        mapping=args.mapping, prefix_length=args.prefix_length, clip_length=args.clip_length, layers=args.layers,
        normalize_prefix=args.normalize_prefix, freeze_lm=args.freeze_lm, lm=args.lm, tokenizer=args.tokenizer,
        vocab_size=args.vocab_size, language=args.caption_language, epochs=args.epochs, batch_size=args.batch_size,
        lr=args.lr, warmup=args.warmup, accumulate=args.accumulate, seed=args.seed, device=args.device)
    from captioner_gui.engine.language import LANGUAGE_CODE

    if options.language != "auto" and not LANGUAGE_CODE.fullmatch(options.language):
        raise CaptionerError(_("--language {language}: give a language code such as en or zh, or auto.").format(
            language=options.language))
    if options.tokenizer == "bpe" and options.vocab_size < 258:
        raise CaptionerError(_("--vocab-size must be 258 or more: 256 tokens are the bytes themselves and one ends "
                               "a text."))
    for name in ("prefix_length", "clip_length", "layers", "epochs", "batch_size", "accumulate"):
        if getattr(options, name) < 1:
            raise CaptionerError(_("--{option} must be 1 or more.").format(option=name.replace("_", "-")))
    if options.warmup < 0 or options.lr <= 0:
        raise CaptionerError(_("--lr must be above 0 and --warmup 0 or more."))
    out = train(args.emb, args.out, options, resume=args.resume, models_dir=_models_dir(args),
                progress=sys.stderr.isatty())
    if int(os.environ.get("RANK", "0")) == 0:
        print(_("Model ready: captioner caption IMAGE --model {folder}").format(folder=out))
    return EXIT_OK


def run_evaluate(args) -> int:
    from captioner_gui.engine import CaptionerError, DecodeOptions, load_model
    from captioner_gui.training.evaluate import evaluate_files, evaluate_model
    from captioner_gui.training.metrics import METRIC_NAMES

    if importlib.util.find_spec("pycocoevalcap") is None:  # the app bundles leave the COCO metrics out
        raise CaptionerError(_("captioner evaluate needs the COCO caption metrics: pip install pycocoevalcap "
                               "(or install captioner with pip)."))
    if args.predictions or args.references:
        if not (args.predictions and args.references) or args.model or args.data:
            raise CaptionerError(_("Give either --predictions and --references, or --model and --data."))
        scores = evaluate_files(args.predictions, args.references, _report)
    else:
        if not (args.model and args.data):
            raise CaptionerError(_("Give either --model and --data, or --predictions and --references."))
        model = load_model(args.model, _models_dir(args), args.device, args.precision)
        options = DecodeOptions(method=args.decoding, beam_size=args.beam_size)
        scores, predictions = evaluate_model(model, args.data, args.split, args.images, options,
                                             progress=sys.stderr.isatty(), report=_report)
        if args.save_predictions:
            args.save_predictions.write_text(json.dumps(predictions, indent=1), encoding="utf-8")
    if args.json:
        print(json.dumps({name: scores.get(name) for name in (*METRIC_NAMES, *(["SPICE"] if "SPICE" in scores
                                                                                 else []))}))
    else:
        for name, value in scores.items():
            shown = _("unavailable") if value is None else f"{value:.4f}"
            print(f"{name:<8} {shown}")
    return EXIT_OK


def run_benchmark(args) -> int:
    if args.translation:
        from captioner_gui.benchmark import format_translation_table, run_translation_benchmark

        results = run_translation_benchmark(max(args.repeats, 5), _report)
        print(json.dumps(results, indent=2, ensure_ascii=False) if args.json else format_translation_table(results))
        return EXIT_OK
    if args.soak is not None:
        return run_soak(args)
    if args.latency:
        return run_latency(args)
    if args.describe:
        from captioner_gui.benchmark import format_describe_table, run_describe_benchmark

        results = run_describe_benchmark(args.model, args.models_dir, min(args.repeats, 3), args.precision,
                                         args.device, _report)
        print(json.dumps(results, indent=2) if args.json else format_describe_table(results))
        return EXIT_OK
    from captioner_gui.benchmark import format_table, run_benchmark as measure

    results = measure(args.model, args.models_dir, args.repeats, args.precision, args.device, _report)
    print(json.dumps(results, indent=2) if args.json else format_table(results))
    return EXIT_OK


def run_soak(args) -> int:
    from captioner_gui.app.soak import format_soak, run_soak as soak
    from captioner_gui.engine import CaptionerError

    if args.soak < 2:
        raise CaptionerError(_("A soak needs at least 2 descriptions: --soak 1000, say."))
    with _benchmark_model(args) as model:
        results = soak(model, args.models_dir, args.soak, _report)
    print(json.dumps(results, indent=2) if args.json else format_soak(results))
    return EXIT_FAILED if results["errors"] else EXIT_OK


def run_latency(args) -> int:
    from captioner_gui.app.latency import latency_heading, latency_row, run_latency as latency

    def show(results: dict, key: str) -> None:  # each row as soon as it is measured
        if not args.json:
            print(latency_row(key, results[key]) if len(results) > 2 else
                  latency_heading(results["capture_ms"]) + "\n" + latency_row(key, results[key]), flush=True)

    with _benchmark_model(args) as model:
        from captioner_gui.benchmark import TOKENS

        results = latency(model, args.models_dir, max(1, min(args.repeats, 3)),
                          max_tokens=TOKENS if args.model == "random" else None, report=_report, measured=show)
    if args.json:
        print(json.dumps(results, indent=2))
    return EXIT_OK


@contextlib.contextmanager
def _benchmark_model(args):
    """The model the app-level benchmarks load: the one named, or a real-size random one written for the run."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="captioner-benchmark-model-") as scratch:
        if args.model != "random":
            yield args.model
            return
        from captioner_gui.benchmark import write_random_model_apart

        _report(_("Writing a real-size model with random weights..."))
        yield str(write_random_model_apart(Path(scratch) / "random"))


if __name__ == "__main__":
    raise SystemExit(main())
