"""GPT-2's byte-level BPE tokenizer, read from a folder with vocab.json and merges.txt."""

from __future__ import annotations

from pathlib import Path

from .errors import ManifestError, ModelFilesMissing

TOKENIZER_FILES = ("vocab.json", "merges.txt")
STOP_TEXT = "."  # ClipCap's captions end at the first full stop


def load_tokenizer(folder: Path, hint: str = ""):
    """Returns a transformers GPT2TokenizerFast built from the folder's files (no hub access)."""
    from transformers import GPT2TokenizerFast

    for name in TOKENIZER_FILES:
        if not (folder / name).is_file():
            raise ModelFilesMissing(f"Tokenizer file {name} is missing: looked for {folder / name}.{hint}")
    try:
        return GPT2TokenizerFast.from_pretrained(str(folder), local_files_only=True)
    except Exception as exc:  # the tokenizers library raises plain Exceptions for malformed files
        raise ManifestError(f"The tokenizer in {folder} cannot be read ({exc}).") from exc


def stop_token_id(tokenizer) -> int:
    ids = tokenizer.encode(STOP_TEXT)
    if len(ids) != 1:
        raise ManifestError(f"The tokenizer has no single token for '{STOP_TEXT}', which ends every caption.")
    return ids[0]


def byte_level_alphabet() -> list[str]:
    """GPT-2's 256 byte symbols in its id order ('!' is 0, '.' is 13): the base of every byte-level vocabulary."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    others = [b for b in range(256) if b not in printable]
    return [chr(b) for b in printable] + [chr(256 + n) for n in range(len(others))]
