"""`captioner train --tokenizer bpe`: a byte-level BPE tokenizer learned from the training captions.

GPT-2's own tokenizer was learned on English web text: it spends two or three tokens on most Chinese characters
(each is three bytes of UTF-8), and its tokens' embeddings say nothing of Chinese. A byte-level BPE learned on the
captions themselves gives each Han character in them (seen twice at least) a token of its own, and English words
their usual pieces. Chinese text is split into characters before BPE learns: GPT-2's split takes a run of Han
characters as one word, and BPE would then learn pieces of clauses that cut across words ("正方形在三个蓝色的小"),
each too rare to learn well. Merges never join two characters, so GPT-2's own split, which the model's loader
uses, gives the same tokens. Saved as GPT-2's files (vocab.json, merges.txt); characters it never saw are spelled
with the 256 byte tokens.
"""

from __future__ import annotations

from pathlib import Path

from captioner_gui.engine.language import HAN_RANGES
from captioner_gui.engine.tokenizer import END_OF_TEXT

from .options import BPE_VOCAB_SIZE


def train_bpe(captions: list[str], folder: Path, vocab_size: int = BPE_VOCAB_SIZE) -> Path:
    """Learns a byte-level BPE of at most `vocab_size` tokens (the 256 bytes and <|endoftext|> included) from the
    captions, written to `folder` as vocab.json and merges.txt."""
    from tokenizers import ByteLevelBPETokenizer, Regex, pre_tokenizers

    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = ByteLevelBPETokenizer()  # GPT-2's byte mapping and word split, no space added in front
    # Each Han character apart (see above), then GPT-2's split.
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(f"[{HAN_RANGES}]"), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False)])
    tokenizer.train_from_iterator(captions, vocab_size=vocab_size, min_frequency=2, special_tokens=[END_OF_TEXT],
                                  show_progress=False)
    tokenizer.save_model(str(folder))
    return folder
