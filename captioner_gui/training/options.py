"""The settings of a training run (no torch here, so that the command line starts fast)."""

from __future__ import annotations

from dataclasses import dataclass

BPE = "bpe"  # the --tokenizer value that asks for a BPE learned from the captions (bpe.py)
AUTO = "auto"  # the language: found from the training captions (Chinese when most hold Han characters)
BPE_VOCAB_SIZE = 16000  # at most: fewer where the captions give fewer (a merge must be seen twice); two tokens
# at most for each Han character (its three bytes are merged in two steps), so room for some 7,000 characters


@dataclass
class TrainOptions:
    mapping: str = "mlp"
    prefix_length: int = 10
    clip_length: int = 10
    layers: int = 8
    normalize_prefix: bool | None = None  # None: as the paper's released models (on for transformer)
    freeze_lm: bool = False
    lm: str = "gpt2"  # "gpt2" (the models folder's GPT-2), a weights file or folder, or a GPT-2 config JSON
    tokenizer: str | None = None  # default: the models folder's gpt2-tokenizer; "bpe": learned from the captions
    vocab_size: int = BPE_VOCAB_SIZE  # with tokenizer "bpe": at most this many tokens
    language: str = AUTO  # the captions' language ("en", "zh"), recorded in the manifest
    epochs: int = 10
    batch_size: int = 40
    lr: float = 2e-5
    warmup: int = 5000
    accumulate: int = 1
    seed: int = 0
    device: str = "auto"
