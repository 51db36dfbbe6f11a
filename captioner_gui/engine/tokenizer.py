"""GPT-2's byte-level BPE tokenizer, read from a folder with vocab.json and merges.txt."""

from __future__ import annotations

from pathlib import Path

from captioner_gui.i18n import _

from .errors import ManifestError, ModelFilesMissing
from .language import ENGLISH, stop_text

TOKENIZER_FILES = ("vocab.json", "merges.txt")
END_OF_TEXT = "<|endoftext|>"


class GPT2Tokenizer:
    """GPT-2's byte-level BPE on the tokenizers library alone: the same ids and texts as transformers'
    GPT2TokenizerFast, without the second that importing transformers costs (the CPU path imports no more)."""

    def __init__(self, folder: Path):
        from tokenizers import Tokenizer, decoders, models, pre_tokenizers

        bpe = models.BPE.from_file(str(folder / "vocab.json"), str(folder / "merges.txt"))
        self._tokenizer = Tokenizer(bpe)
        self._tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        self._tokenizer.decoder = decoders.ByteLevel()
        if bpe.token_to_id(END_OF_TEXT) is not None:
            self._tokenizer.add_special_tokens([END_OF_TEXT])  # one token, as GPT-2 has it, not spelled out

    def __len__(self) -> int:
        """The number of tokens, the special one included."""
        return self._tokenizer.get_vocab_size(with_added_tokens=True)

    def encode(self, text: str) -> list[int]:
        return self._tokenizer.encode(text, add_special_tokens=False).ids

    def decode(self, ids: list[int]) -> str:
        return self._tokenizer.decode(ids, skip_special_tokens=False)


def load_tokenizer(folder: Path, hint: str = "") -> GPT2Tokenizer:
    """GPT-2's tokenizer from a folder with vocab.json and merges.txt (no hub access)."""
    for name in TOKENIZER_FILES:
        if not (folder / name).is_file():
            raise ModelFilesMissing(_("Tokenizer file {name} is missing: looked for {path}.").format(
                name=name, path=folder / name) + hint)
    try:
        return GPT2Tokenizer(folder)
    except Exception as exc:  # the tokenizers library raises plain Exceptions for malformed files
        raise ManifestError(_("The tokenizer in {folder} cannot be read ({reason}).").format(folder=folder, reason=exc)
                            ) from exc


def stop_token_id(tokenizer, language: str = ENGLISH) -> int:
    """The token that ends a caption in `language`: "." or, in Chinese, "。"."""
    stop = stop_text(language)
    ids = tokenizer.encode(stop)
    if len(ids) != 1:
        raise ManifestError(_("The tokenizer has no single token for '{stop}', which ends every caption.")
                            .format(stop=stop))
    return ids[0]


def byte_level_alphabet() -> list[str]:
    """GPT-2's 256 byte symbols in its id order ('!' is 0, '.' is 13): the base of every byte-level vocabulary."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    others = [b for b in range(256) if b not in printable]
    return [chr(b) for b in printable] + [chr(256 + n) for n in range(len(others))]
