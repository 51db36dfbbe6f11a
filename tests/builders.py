"""Tiny and full-size ClipCap models in the released checkpoints' layout, built by the tests themselves.

Nothing here downloads: a GPT-2-format tokenizer is written from a word list, CLIP is an open_clip config with
random weights (fixed seed), GPT-2 is built from a config.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import open_clip
import torch
from PIL import Image
from safetensors.torch import save_file
from transformers import GPT2Config, GPT2LMHeadModel

from reference_clipcap import ClipCaptionModel, reference_greedy

def noise_image(seed: int, size=(64, 48)) -> Image.Image:
    """A picture of random pixels (never blank to the guard), the same for the same seed."""
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))


WORDS = (
    "a an the of on in with and two three red blue green yellow circle circles square squares triangle "
    "triangles above below left right next to small big man woman dog cat table plate bananas bunch sitting "
    "standing street car photo picture"
).split()

TINY_CLIP = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 2, "width": 64, "patch_size": 8, "pool_type": "avg"},
    # The guard reads prompts with open_clip's own tokenizer, so the text tower has CLIP's 49,408 tokens.
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible byte -> printable character table."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


def write_tokenizer(folder: Path, words=WORDS, size: int | None = None) -> Path:
    """A byte-level BPE vocabulary: the 256 byte symbols (so '.' is id 13, as in GPT-2), then merges that build
    each word with and without a leading space, then (to reach `size`, e.g. GPT-2's 50257) merges of letter
    pairs, then <|endoftext|>."""
    folder.mkdir(parents=True, exist_ok=True)
    vocab = {ch: i for i, ch in enumerate(bytes_to_unicode().values())}
    merges: list[str] = []
    for word in words:
        for symbols in ("Ġ" + word, word):
            current = symbols[0]
            for ch in symbols[1:]:
                merged = current + ch
                if merged not in vocab:
                    vocab[merged] = len(vocab)
                    merges.append(f"{current} {ch}")
                current = merged
    symbols = list(bytes_to_unicode().values())
    pairs = ((a, b) for a in symbols for b in symbols)
    while size is not None and len(vocab) < size - 1:
        a, b = next(pairs)
        if a + b not in vocab:
            vocab[a + b] = len(vocab)
            merges.append(f"{a} {b}")
    vocab["<|endoftext|>"] = len(vocab)
    (folder / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8")
    return folder


def vocab_size(tokenizer_folder: Path) -> int:
    return len(json.loads((tokenizer_folder / "vocab.json").read_text()))


def make_clip(model: str, folder: Path, seed: int = 0) -> tuple[torch.nn.Module, str, Path]:
    """A random-weight open_clip model; returns (model, manifest 'clip.model' value, weights file)."""
    folder.mkdir(parents=True, exist_ok=True)
    if model == "tiny":
        config = folder / "tiny-clip.json"
        config.write_text(json.dumps(TINY_CLIP))
        open_clip.add_model_config(config)
        model, model_value = "tiny-clip", "tiny-clip.json"
    else:
        model_value = model
    torch.manual_seed(seed)
    clip = open_clip.create_model(model).eval()
    weights = folder / "clip.safetensors"  # both towers, as open_clip's released files
    save_file({k: v.contiguous() for k, v in clip.state_dict().items()}, str(weights))
    return clip, model_value, weights


def make_gpt2(vocab: int, n_layer: int = 2, n_embd: int = 64, n_head: int = 4, seed: int = 0,
              init_range: float = 0.25) -> GPT2LMHeadModel:
    """A random GPT-2. The tiny ones get large initial weights, so that their captions depend on the image."""
    torch.manual_seed(seed)
    config = GPT2Config(vocab_size=vocab, n_layer=n_layer, n_embd=n_embd, n_head=n_head, n_positions=1024,
                        initializer_range=init_range, bos_token_id=vocab - 1, eos_token_id=vocab - 1)
    return GPT2LMHeadModel(config).eval()


def released_state_dict(model: ClipCaptionModel) -> dict[str, torch.Tensor]:
    """The model's weights as the released .pt files hold them, obsolete attention buffers included."""
    state = dict(model.state_dict())
    n_positions = model.gpt.config.n_positions
    for i in range(model.gpt.config.n_layer):
        state[f"gpt.transformer.h.{i}.attn.bias"] = torch.tril(
            torch.ones(n_positions, n_positions, dtype=torch.uint8)).view(1, 1, n_positions, n_positions)
        state[f"gpt.transformer.h.{i}.attn.masked_bias"] = torch.tensor(-1e4)
    return state


@dataclass
class BuiltModel:
    folder: Path
    manifest: Path
    weights: Path
    reference: ClipCaptionModel  # the reference implementation with the same weights
    clip: torch.nn.Module  # the whole open_clip model with the same weights
    clip_preprocess: object
    normalize_prefix: bool


def build_model_folder(folder: Path, *, clip_model: str = "tiny", mapping: str = "mlp", prefix_length: int = 4,
                       clip_length: int | None = None, mapping_layers: int = 2, normalize_prefix: bool = False,
                       gpt_layers: int = 2, gpt_width: int = 64, gpt_heads: int = 4, gpt_vocab: int | None = None,
                       gpt_init_range: float = 0.25, seed: int = 0, tokenizer: Path | None = None,
                       weights_name: str = "weights.pt") -> BuiltModel:
    """Writes a model folder (released-layout .pt, tokenizer, CLIP weights, hand-written manifest)."""
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = tokenizer or write_tokenizer(folder / "tokenizer", size=gpt_vocab)
    clip, clip_value, clip_weights = make_clip(clip_model, folder / "clip", seed)
    clip_dim = clip.visual.output_dim
    gpt = make_gpt2(gpt_vocab or vocab_size(tokenizer), gpt_layers, gpt_width, gpt_heads, seed, gpt_init_range)
    torch.manual_seed(seed + 1)
    reference = ClipCaptionModel(gpt, prefix_length, clip_dim, mapping, clip_length, mapping_layers).eval()
    torch.save(released_state_dict(reference), folder / weights_name)

    manifest = {"version": 1, "name": folder.name, "weights": weights_name, "mapping": mapping,
                "prefix_length": prefix_length}
    if mapping == "transformer":
        manifest |= {"clip_length": clip_length, "mapping_layers": mapping_layers}
    manifest |= {"normalize_prefix": normalize_prefix,
                 "clip": {"model": f"clip/{clip_value}" if clip_value.endswith(".json") else clip_value,
                          "weights": "clip/clip.safetensors"},
                 "tokenizer": str(Path(tokenizer).resolve()) if tokenizer.parent != folder else tokenizer.name}
    if gpt_heads != 12:
        manifest["gpt2"] = {"n_head": gpt_heads}
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2))
    _, _, preprocess = open_clip.create_model_and_transforms(clip_value.removesuffix(".json"))
    return BuiltModel(folder, folder / "manifest.json", folder / weights_name, reference, clip, preprocess,
                      normalize_prefix)


def swap_token_rows(built: BuiltModel, a: int, b: int) -> None:
    """Swaps two tokens' embeddings (tied to the output layer, so their logits swap too) and rewrites the file."""
    with torch.no_grad():
        wte = built.reference.gpt.transformer.wte.weight
        wte[[a, b]] = wte[[b, a]]
    torch.save(released_state_dict(built.reference), built.weights)
    built.weights.with_suffix(".safetensors").unlink(missing_ok=True)


def reference_clip_vector(built: BuiltModel, image) -> torch.Tensor:
    """CLIP's image vector computed by open_clip itself (its own preprocessing and encode_image)."""
    with torch.no_grad():
        return built.clip.encode_image(built.clip_preprocess(image.convert("RGB")).unsqueeze(0)).float()


def reference_prefix(built: BuiltModel, image) -> torch.Tensor:
    with torch.no_grad():
        return built.reference.prefix_embeds(reference_clip_vector(built, image), built.normalize_prefix)


# ---------------------------------------------------------------------------------------------------- training

TRAINING_CLIP = {
    "embed_dim": 128,
    "vision_cfg": {"image_size": 64, "layers": 2, "width": 128, "patch_size": 8, "pool_type": "avg"},
    # The guard reads prompts with open_clip's own tokenizer, so the text tower has CLIP's 49,408 tokens.
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}


def write_training_clip(folder: Path, seed: int = 0) -> tuple[Path, Path]:
    """A small random CLIP for the learning tests: (config JSON, image-tower weights)."""
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / "train-clip.json"
    config.write_text(json.dumps(TRAINING_CLIP))
    open_clip.add_model_config(config)
    torch.manual_seed(seed)
    clip = open_clip.create_model("train-clip").eval()
    weights = folder / "train-clip.safetensors"
    save_file({f"visual.{k}": v.contiguous() for k, v in clip.visual.state_dict().items()}, str(weights))
    return config, weights


def train_tokenizer(captions: list[str], folder: Path, vocab_size: int = 400) -> Path:
    """A byte-level BPE tokenizer trained on the captions, saved as GPT-2's vocab.json and merges.txt."""
    from tokenizers import ByteLevelBPETokenizer

    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = ByteLevelBPETokenizer()
    tokenizer.train_from_iterator(captions, vocab_size=vocab_size, min_frequency=1,
                                  special_tokens=["<|endoftext|>"], show_progress=False)
    tokenizer.save_model(str(folder))
    return folder


def write_lm_config(path: Path, vocab: int, n_layer: int = 2, n_embd: int = 128, n_head: int = 4) -> Path:
    path.write_text(json.dumps({"model_type": "gpt2", "n_layer": n_layer, "n_embd": n_embd, "n_head": n_head,
                                "vocab_size": vocab, "n_positions": 128, "bos_token_id": 0, "eos_token_id": 0}))
    return path


def pretrain_lm(captions: list[str], tokenizer_folder: Path, config: Path, out: Path, epochs: int = 8,
                seed: int = 0) -> Path:
    """A tiny GPT-2 trained on the caption text alone, as GPT-2 was pretrained on text; saved as the Hub's
    files (config.json, model.safetensors) so that `--lm FOLDER` reads it like the real one."""
    from transformers import GPT2Config, GPT2TokenizerFast

    tokenizer = GPT2TokenizerFast.from_pretrained(str(tokenizer_folder))
    ids = [tokenizer.encode(c) for c in captions]
    length = max(map(len, ids))
    tokens = torch.zeros(len(ids), length, dtype=torch.long)
    mask = torch.zeros(len(ids), length, dtype=torch.long)
    for i, row in enumerate(ids):
        tokens[i, : len(row)] = torch.tensor(row)
        mask[i, : len(row)] = 1
    torch.manual_seed(seed)
    lm = GPT2LMHeadModel(GPT2Config.from_json_file(str(config)))
    optimizer = torch.optim.AdamW(lm.parameters(), lr=3e-3)
    for _ in range(epochs):
        for batch in torch.randperm(len(ids)).split(64):
            loss = lm(input_ids=tokens[batch], attention_mask=mask[batch],
                      labels=tokens[batch].masked_fill(mask[batch] == 0, -100)).loss
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    lm.save_pretrained(str(out))
    return out


def build_model_that_stops(folder: Path, image, stop: int = 13) -> tuple[BuiltModel, list[int], int]:
    """A model whose greedy caption of `image` ends after k words: the full stop swapped with the first word that
    the caption uses for the first time at step k (2 <= k < 12). Returns the model, the caption it gave before the
    swap and k."""
    built = build_model_folder(folder, seed=3)
    free = reference_greedy(built.reference, reference_prefix(built, image), stop, 12)
    k = next(i for i in range(2, 12) if free[i] not in free[:i])
    assert stop not in free[:k + 1]
    swap_token_rows(built, stop, free[k])
    return built, free, k


def record_rows(backend) -> list[int]:
    """The rows each later `step` of a decoding back end is fed, in order (the list fills as it decodes)."""
    rows: list[int] = []
    step = backend.step
    backend.step = lambda tokens, cache: (rows.append(len(tokens)), step(tokens, cache))[1]
    return rows
