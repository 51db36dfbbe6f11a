"""The `captioner` command: caption images, manage models.

Every error a user can cause ends in one line on stderr ("captioner: ...") and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from pathlib import Path

from captioner_gui import __version__

EXIT_OK, EXIT_FAILED = 0, 1


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "run", None):
        parser.print_help()
        return EXIT_FAILED
    _quiet_libraries()
    from captioner_gui.engine import CaptionerError

    try:
        return args.run(args)
    except CaptionerError as exc:
        print(f"captioner: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("captioner: interrupted.", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `captioner caption ... | head`
        sys.stderr.close()
        return EXIT_OK


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
                        help="the models folder (default: $CAPTIONER_MODELS, models/ of a source checkout, "
                             "or the user's data folder)")

    parser = argparse.ArgumentParser(prog="captioner", description="Describe images with ClipCap, offline.")
    parser.add_argument("--version", action="version", version=f"captioner {__version__}")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")

    caption = commands.add_parser("caption", parents=[common], help="print a caption for each image",
                                  description="Print one caption per image. A folder means every image in it.")
    caption.add_argument("paths", nargs="+", type=Path, metavar="IMAGE", help="image files or folders")
    caption.add_argument("--model", default="coco", help="a model name, model folder or manifest (default: coco)")
    caption.add_argument("--decoding", choices=("greedy", "beam", "nucleus"), default="beam")
    caption.add_argument("--beam-size", type=int, default=5)
    caption.add_argument("--top-p", type=float, default=0.9, help="nucleus sampling's probability mass")
    caption.add_argument("--temperature", type=float, default=1.0)
    caption.add_argument("--seed", type=int, default=None, help="makes nucleus sampling repeatable")
    caption.add_argument("--max-tokens", type=int, default=67)
    caption.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                         help="auto: CUDA when available, else the CPU")
    caption.add_argument("--batch-size", type=int, default=8, help="images captioned together (default 8)")
    caption.add_argument("--recursive", action="store_true", help="also look into subfolders of folders")
    caption.add_argument("--json", action="store_true", help="print a JSON list, one object per image")
    caption.set_defaults(run=run_caption)

    models = commands.add_parser("models", help="list, download or import models")
    models_commands = models.add_subparsers(title="models commands", metavar="ACTION")

    listing = models_commands.add_parser("list", parents=[common], help="show installed models")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(run=run_models_list)

    download = models_commands.add_parser("download", parents=[common],
                                          help="fetch a released model (coco, conceptual) from the Hugging Face Hub")
    download.add_argument("name", help="coco or conceptual")
    download.set_defaults(run=run_models_download)

    importing = models_commands.add_parser(
        "import", parents=[common], help="install a checkpoint file you already have",
        description="Copy a ClipCap checkpoint into the models folder and write its manifest. A built-in name "
                    "(coco, conceptual, coco-transformer) brings that model's settings.")
    importing.add_argument("file", type=Path)
    importing.add_argument("--name", required=True)
    importing.add_argument("--mapping", choices=("mlp", "transformer"))
    importing.add_argument("--prefix-length", type=int)
    importing.add_argument("--clip-length", type=int)
    importing.add_argument("--mapping-layers", type=int)
    importing.add_argument("--normalize-prefix", action=argparse.BooleanOptionalAction, default=None)
    importing.add_argument("--clip-model", help="an open_clip model name (ViT-B-32, RN50x4, ...) or a JSON config")
    importing.add_argument("--clip-weights", help="'openai' (downloaded if missing) or a CLIP weights file")
    importing.add_argument("--tokenizer", type=Path, help="a folder with vocab.json and merges.txt")
    importing.add_argument("--n-head", type=int, help="GPT-2's attention heads (default 12)")
    importing.set_defaults(run=run_models_import)
    models.set_defaults(run=lambda args: (models.print_help(), EXIT_FAILED)[1])
    return parser


def _models_dir(args) -> Path:
    from captioner_gui.engine import default_models_dir

    return (args.models_dir or default_models_dir()).expanduser()


# ---------------------------------------------------------------------------------------------------- caption


def collect_inputs(paths: list[Path], recursive: bool) -> list[Path]:
    """Files as given, folders expanded to their images; a missing path stays in the list to be reported."""
    from captioner_gui.engine import find_images

    inputs = []
    for path in paths:
        if path.is_dir():
            found = find_images(path, recursive)
            if not found:
                print(f"captioner: {path}: no images in this folder"
                      f"{'' if recursive else ' (--recursive looks into subfolders)'}.", file=sys.stderr)
            inputs += found
        else:
            inputs.append(path)
    return inputs


def one_line(text: str) -> str:
    """A caption on one line: control characters (which a random or damaged model can produce) become spaces."""
    return " ".join(re.sub(r"[\x00-\x1f\x7f]", " ", text).split())


def run_caption(args) -> int:
    from tqdm import tqdm

    from captioner_gui.engine import CaptionerError, DecodeOptions, load_image, load_model

    options = DecodeOptions(method=args.decoding, beam_size=args.beam_size, top_p=args.top_p,
                            temperature=args.temperature, seed=args.seed, max_tokens=args.max_tokens)
    options.check()
    if args.batch_size < 1:
        raise CaptionerError("The batch size must be 1 or more.")
    inputs = collect_inputs(args.paths, args.recursive)
    if not inputs:
        raise CaptionerError("No images to caption.")
    model = load_model(args.model, _models_dir(args), args.device)

    results: list[dict] = []
    failed = 0
    show_path = len(inputs) > 1 or any(p.is_dir() for p in args.paths)
    progress = tqdm(total=len(inputs), unit="image", file=sys.stderr, leave=False,
                    disable=len(inputs) < 2 or not sys.stderr.isatty())
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
        captions = iter(model.caption(images, options) if images else [])
        loads = iter(load_seconds)
        for entry in entries:
            if "error" in entry:
                failed += 1
                progress.write(f"captioner: {entry['error']}", file=sys.stderr)
            else:
                caption = next(captions)
                entry.update(caption=caption.text, tokens=caption.tokens, score=round(caption.score, 6),
                             seconds=round(caption.seconds + next(loads), 6))
                if not args.json:
                    text = one_line(caption.text)
                    line = f"{entry['image']}: {text}" if show_path else text
                    progress.write(line, file=sys.stdout)
                    sys.stdout.flush()
            results.append(entry)
        progress.update(len(batch))
    progress.close()
    if args.json:
        json.dump(results, sys.stdout, indent=2, ensure_ascii=False)
        print()
    return EXIT_FAILED if failed else EXIT_OK


# ---------------------------------------------------------------------------------------------------- models


def _human_size(size: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size} B"


def run_models_list(args) -> int:
    from captioner_gui.engine import list_models

    models_dir = _models_dir(args)
    infos = list_models(models_dir)
    if args.json:
        print(json.dumps([
            {"name": i.name, "folder": str(i.folder), "size_bytes": i.size_bytes, "complete": i.complete,
             "missing": i.missing, **({"problem": i.problem} if i.problem else {})}
            for i in infos
        ], indent=2))
        return EXIT_OK
    if not infos:
        print(f"No models in {models_dir}. Get one with: captioner models download coco")
        return EXIT_OK
    width = max(len(i.name) for i in infos)
    for info in infos:
        if info.problem:
            status = f"broken: {info.problem}"
        elif info.complete:
            status = "complete"
        else:
            status = f"incomplete, missing {', '.join(info.missing)}"
        print(f"{info.name:<{width}}  {_human_size(info.size_bytes):>9}  {status}")
    print(f"(in {models_dir})")
    return EXIT_OK


def run_models_download(args) -> int:
    from captioner_gui.engine import download_model

    models_dir = _models_dir(args)
    manifest = download_model(args.name, models_dir, report=lambda message: print(message, file=sys.stderr))
    print(f"Model '{manifest.name}' is ready in {manifest.folder}.")
    return EXIT_OK


def run_models_import(args) -> int:
    from captioner_gui.engine import import_model

    manifest = import_model(
        args.file, args.name, _models_dir(args), mapping=args.mapping, prefix_length=args.prefix_length,
        clip_length=args.clip_length, mapping_layers=args.mapping_layers, normalize_prefix=args.normalize_prefix,
        clip_model=args.clip_model, clip_weights=args.clip_weights, tokenizer=args.tokenizer, n_head=args.n_head,
        report=lambda message: print(message, file=sys.stderr),
    )
    print(f"Model '{manifest.name}' is ready in {manifest.folder}.")
    return EXIT_OK


if __name__ == "__main__":
    raise SystemExit(main())
