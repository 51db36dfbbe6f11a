"""Writes a loaded model's CPU form for onnxruntime: four graphs and a few tables in the model's `onnx/` folder.

Done once, on the first load on the CPU, from the model's own fp32 weights (torch and open_clip are needed here
and nowhere on the CPU path after). Each graph's Linear layers are then quantized to int8 with a scale per output
channel (onnxruntime's dynamic quantization: activations quantized on the fly, computed by MLAS), and the int8
graphs are checked against the fp32 model before the folder is marked complete.

    image.onnx   pixels (B, 3, S, S) -> CLIP image vectors (B, d)
    text.onnx    CLIP token ids (B, L) -> unit text vectors (B, d)        (when the CLIP file has a text tower)
    mapper.onnx  CLIP image vectors (B, d) -> prefix embeddings (B, K, D)
    gpt2.onnx    embeddings (B, T, D) + cache (layers, B, heads, P, head_dim) x 2 -> last logits (B, vocab) + cache
    words.npy    GPT-2's word table in fp16 (looked up for each new token; memory-mapped)
    clip_tokenizer.json, export.json (sizes, preprocessing, and the fingerprint of the weights it came from)
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .errors import CaptionerError
from .fast_gpt2 import FastGPT2

OPSET = 17
QUANTIZED = ("MatMul", "Gemm")


class GPT2Step(nn.Module):
    """GPT-2 as one graph call: the new positions' embeddings and the cache so far -> the last position's logits
    and the cache with the new positions added. The first call feeds the prefix with an empty cache."""

    def __init__(self, gpt: FastGPT2):
        super().__init__()
        self.gpt = gpt

    def forward(self, embeds: torch.Tensor, *cache: torch.Tensor):
        """`cache` is each layer's keys, then each layer's values, (B, heads, P, head_dim); one tensor a layer, so
        that no layer's cache is copied to cut or stack it."""
        gpt = self.gpt
        layers = len(gpt.blocks)
        batch, new, width = embeds.shape
        past = cache[0].shape[2]
        heads = gpt.heads
        # Query i (at position past + i) sees every key up to its own position.
        rows = torch.arange(new)[:, None] + past
        sees = torch.arange(past + new)[None, :] <= rows
        x = embeds + gpt.wpe.weight[past:past + new]
        keys, values = [], []
        for block, past_keys, past_values in zip(gpt.blocks, cache[:layers], cache[layers:]):
            q, k, v = block.qkv(block.ln_1(x)).view(batch, new, 3, heads, width // heads).permute(2, 0, 3, 1, 4)
            k, v = torch.cat((past_keys, k), dim=2), torch.cat((past_values, v), dim=2)
            scores = (q @ k.transpose(-1, -2)) / math.sqrt(width // heads)
            weights = scores.masked_fill(~sees, float("-inf")).softmax(dim=-1)
            x = x + block.proj((weights @ v).transpose(1, 2).reshape(batch, new, width))
            x = x + block.fc_proj(F.gelu(block.fc(block.ln_2(x)), approximate="tanh"))
            keys.append(k)
            values.append(v)
        # The last position only, kept 3-D so that the output layer is a MatMul like the others.
        logits = gpt.lm_head(gpt.ln_f(x[:, -1:]))[:, 0]
        return (logits, *keys, *values)


class Prefix(nn.Module):
    """The mapper with ClipCap's optional normalisation of the CLIP vector first."""

    def __init__(self, clipcap):
        super().__init__()
        self.clipcap = clipcap

    def forward(self, vectors: torch.Tensor) -> torch.Tensor:
        return self.clipcap.prefix(vectors)


class TextTower(nn.Module):
    """CLIP's text tower from token ids (already cut after the last end-of-text token) to unit vectors."""

    def __init__(self, text_encoder):
        super().__init__()
        self.clip = text_encoder.clip

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        from open_clip.transformer import text_global_pool

        clip = self.clip
        length = tokens.shape[1]
        x = clip.token_embedding(tokens) + clip.positional_embedding[:length]
        mask = clip.attn_mask[:length, :length] if clip.attn_mask is not None else None
        x = clip.ln_final(clip.transformer(x, attn_mask=mask))
        x = text_global_pool(x, tokens, clip.text_pool_type, eos_token_id=getattr(clip, "text_eos_id", None))
        if isinstance(clip.text_projection, nn.Linear):
            x = clip.text_projection(x)
        elif clip.text_projection is not None:
            x = x @ clip.text_projection
        return F.normalize(x, dim=-1)


def export_graph(module: nn.Module, inputs: tuple, path: Path, input_names: list[str], output_names: list[str],
                 dynamic_axes: dict) -> None:
    """One fp32 graph, with torch's TorchScript exporter (the newer exporter needs onnxscript and is slower)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's deprecation notice and tracer warnings on shapes
        torch.onnx.export(module, inputs, str(path), input_names=input_names, output_names=output_names,
                          dynamic_axes=dynamic_axes, opset_version=OPSET, do_constant_folding=True, dynamo=False)


def quantize(fp32_path: Path, int8_path: Path) -> None:
    """Per-channel int8 weights for every MatMul and Gemm with constant weights; activations stay fp32 between
    layers and are quantized on the fly (MLAS's dynamic int8 kernels)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(str(fp32_path), str(int8_path), per_channel=True, weight_type=QuantType.QInt8,
                     op_types_to_quantize=list(QUANTIZED), extra_options={"MatMulConstBOnly": True})
