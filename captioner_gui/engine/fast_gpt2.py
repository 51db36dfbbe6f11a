"""A lean GPT-2 for captioning: the same weights as transformers' GPT2LMHeadModel, less work per token.

Decoding a caption reads every GPT-2 weight once per token, so on a CPU its speed is set by the bytes of the
weights and by the Python run for each step. This module:
- keeps GPT-2's Conv1D layers as plain nn.Linear (so that torch's dynamic int8 quantization applies to them,
  the output layer included: a quarter of the bytes of fp32);
- keeps keys and values in one preallocated cache per layer (no concatenation per step);
- computes logits for the last position only;
- does nothing else per step (no masks, no generation machinery).
The decoding module drives it as a Backend (FastPrefixLM), as it drives transformers' model. On the CPU, the
onnxruntime graphs (onnx_model.py) are the default; this serves int8 where they cannot be used, and fp16/bf16 on
CUDA.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .quantize import quantize_linears, release_freed_memory


class KVCache:
    """Keys and values for every layer, (batch, heads, max_length, head_dim), filled up to `length`."""

    def __init__(self, layers: int, batch: int, heads: int, max_length: int, head_dim: int, dtype, device):
        shape = (batch, heads, max_length, head_dim)
        self.keys = [torch.empty(shape, dtype=dtype, device=device) for _ in range(layers)]
        self.values = [torch.empty(shape, dtype=dtype, device=device) for _ in range(layers)]
        self.length = 0

    def batch_repeat_interleave(self, repeats: int) -> None:
        """Each row becomes `repeats` rows (the beams of one image share its prefix)."""
        self.keys = [k.repeat_interleave(repeats, dim=0) for k in self.keys]
        self.values = [v.repeat_interleave(repeats, dim=0) for v in self.values]

    def reorder_cache(self, rows: torch.Tensor) -> None:
        """Keeps the rows named, in that order, repeats allowed (decoding.Backend.reorder): in place while the count
        of rows stays, in new buffers when it changes (rows that stopped leave; a beam can go on twice)."""
        if len(rows) != self.keys[0].shape[0]:
            self.keys = [k[rows] for k in self.keys]
            self.values = [v[rows] for v in self.values]
            return
        n = self.length
        for layer in range(len(self.keys)):
            self.keys[layer][:, :, :n] = self.keys[layer][rows, :, :n]
            self.values[layer][:, :, :n] = self.values[layer][rows, :, :n]


class Block(nn.Module):
    def __init__(self, width: int, heads: int, inner: int, eps: float):
        super().__init__()
        self.heads = heads
        self.ln_1 = nn.LayerNorm(width, eps=eps)
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)
        self.ln_2 = nn.LayerNorm(width, eps=eps)
        self.fc = nn.Linear(width, inner)
        self.fc_proj = nn.Linear(inner, width)

    def forward(self, x: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, start: int) -> torch.Tensor:
        b, t, c = x.shape
        h = self.heads
        q, k, v = self.qkv(self.ln_1(x)).view(b, t, 3, h, c // h).permute(2, 0, 3, 1, 4)
        end = start + t
        keys[:, :, start:end] = k
        values[:, :, start:end] = v
        # The first call sees the whole prefix (causal); later calls add one token that sees everything before it.
        attended = F.scaled_dot_product_attention(q, keys[:, :, :end], values[:, :, :end], is_causal=t > 1)
        x = x + self.proj(attended.transpose(1, 2).reshape(b, t, c))
        return x + self.fc_proj(F.gelu(self.fc(self.ln_2(x)), approximate="tanh"))


class FastGPT2(nn.Module):
    """GPT-2's forward pass for decoding. With int8, each layer is quantized as soon as it is built, so that no
    full-precision copy of GPT-2 ever exists as a whole.

    `weight(name)` gives a tensor by its transformers name ("transformer.h.0.attn.c_attn.weight", ...)."""

    def __init__(self, config, weight: Callable[[str], torch.Tensor], int8: bool = False, tied: bool = True):
        super().__init__()
        self.config = config
        self.width, self.heads = config.n_embd, config.n_head
        self.max_length = config.n_positions
        inner = config.n_inner or 4 * config.n_embd
        # The output layer first: with int8, the full-precision word table can then go before the layers come.
        words = weight("transformer.wte.weight")
        with torch.device("meta"):
            lm_head = nn.Linear(self.width, config.vocab_size, bias=False)
        lm_head.weight = nn.Parameter(words if tied else weight("lm_head.weight"), requires_grad=False)
        self.lm_head = quantize_linears(lm_head) if int8 else lm_head  # GPT-2 ties it to the word table
        # With int8 the word table is only looked up: fp16 halves it and changes no caption.
        self.wte = nn.Embedding.from_pretrained(words.half() if int8 else words, freeze=True)
        del words, lm_head
        self.wpe = nn.Embedding.from_pretrained(weight("transformer.wpe.weight"), freeze=True)
        blocks = []
        with torch.no_grad():
            for i in range(config.n_layer):
                name = f"transformer.h.{i}."
                with torch.device("meta"):
                    block = Block(self.width, self.heads, inner, config.layer_norm_epsilon)
                for norm in ("ln_1", "ln_2"):
                    getattr(block, norm).load_state_dict(
                        {"weight": weight(name + norm + ".weight"), "bias": weight(name + norm + ".bias")}, assign=True)
                for linear, conv in ((block.qkv, "attn.c_attn"), (block.proj, "attn.c_proj"),
                                     (block.fc, "mlp.c_fc"), (block.fc_proj, "mlp.c_proj")):
                    # transformers' Conv1D stores weights as (in, out); nn.Linear as (out, in).
                    linear.weight = nn.Parameter(weight(name + conv + ".weight").t().contiguous(), requires_grad=False)
                    linear.bias = nn.Parameter(weight(name + conv + ".bias"), requires_grad=False)
                blocks.append(quantize_linears(block) if int8 else block)
                if i % 4 == 3:
                    release_freed_memory()  # the fp32 weights of these layers are gone: give the memory back
        self.blocks = nn.ModuleList(blocks)
        self.ln_f = nn.LayerNorm(self.width, eps=config.layer_norm_epsilon)
        self.ln_f.load_state_dict({"weight": weight("transformer.ln_f.weight"),
                                   "bias": weight("transformer.ln_f.bias")})
        self.requires_grad_(False).eval()

    @classmethod
    def from_transformers(cls, gpt, int8: bool = False) -> "FastGPT2":
        state = gpt.state_dict()
        tied = gpt.lm_head.weight.data_ptr() == gpt.transformer.wte.weight.data_ptr()
        return cls(gpt.config, lambda name: state[name].detach(), int8, tied)

    def new_cache(self, batch: int, length: int, dtype, device) -> KVCache:
        return KVCache(len(self.blocks), batch, self.heads, min(length, self.max_length), self.width // self.heads,
                       dtype, device)

    def forward(self, embeds: torch.Tensor, cache: KVCache) -> torch.Tensor:
        """Embeddings of the new positions (B, T, D) -> logits of the last position (B, vocab)."""
        start, t = cache.length, embeds.shape[1]
        if start + t > cache.keys[0].shape[2]:
            raise ValueError("the caption reached GPT-2's context length")
        x = embeds.to(self.wpe.weight.dtype) + self.wpe.weight[start:start + t]
        for block, keys, values in zip(self.blocks, cache.keys, cache.values):
            x = block(x, keys, values, start)
        cache.length = start + t
        return self.lm_head(self.ln_f(x[:, -1]))


class TorchBackend:
    """What the torch back ends share as decoding Backends: tokens come in and logits go out as numpy arrays; the
    cache (FastGPT2's KVCache or transformers' own) repeats and reorders its rows in place."""

    device: torch.device

    def tensor(self, rows: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(rows)).to(self.device)

    def repeat(self, cache, times: int):
        cache.batch_repeat_interleave(times)
        return cache

    def reorder(self, cache, rows: np.ndarray):
        cache.reorder_cache(self.tensor(rows))
        return cache


class FastPrefixLM(TorchBackend):
    """FastGPT2 as a decoding back end (decoding.Backend): start from prefix embeddings, then one token per step."""

    def __init__(self, model: FastGPT2):
        self.model = model
        self.embed = model.wte
        self.device = model.wpe.weight.device

    @torch.inference_mode()
    def start(self, prefix: torch.Tensor, max_new_tokens: int) -> tuple[np.ndarray, KVCache]:
        cache = self.model.new_cache(prefix.shape[0], prefix.shape[1] + max_new_tokens, prefix.dtype, prefix.device)
        return self.model(prefix, cache).float().cpu().numpy(), cache

    @torch.inference_mode()
    def step(self, tokens: np.ndarray, cache: KVCache) -> tuple[np.ndarray, KVCache]:
        return self.model(self.embed(self.tensor(tokens))[:, None], cache).float().cpu().numpy(), cache
