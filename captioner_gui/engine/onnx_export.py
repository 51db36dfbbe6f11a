"""Writes a loaded model's CPU form for onnxruntime: four graphs and a few tables in the model's `onnx/` folder.

Done once, on the first load on the CPU, from the model's own fp32 weights (torch and open_clip are needed here
and nowhere on the CPU path after). CLIP's towers and the mapper are exported by torch and their Linear layers
quantized to int8 (see `quantize`); GPT-2's two graphs are written node by node from its weights, in int8
(onnx_gpt2.py). The int8 graphs are checked against the fp32 model before the folder is put in place.

    image.onnx   pixels (B, 3, S, S) -> CLIP image vectors (B, d)
    text.onnx    CLIP token ids (B, L) -> unit text vectors (B, d)        (when the CLIP file has a text tower)
    mapper.onnx  CLIP image vectors (B, d) -> prefix embeddings (B, K, D)
    gpt2.onnx    embeddings (B, T, D) + each layer's keys and values (B, heads, P, head_dim) -> the last position's
                 logits (B, vocab) + keys and values one position longer; gpt2_rows.onnx, the same quantized for
                 several rows at a time
    words.npy    GPT-2's word table in fp16 (looked up for each new token; memory-mapped)
    clip_tokenizer.json, export.json (sizes, preprocessing, and the fingerprint of the weights it came from)
"""

from __future__ import annotations

import json
import math
import os
import shutil
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw
from torch import nn

from captioner_gui.i18n import _

from .derived import CPU_FORM_WORK, Places
from .errors import CaptionerError, first_line
from .fast_gpt2 import FastGPT2
from .manifest import Manifest
from .onnx_gpt2 import BLOCK, OPSET, write_gpt2_step
from .onnx_model import (CLIP_TOKENIZER, FACTS, FOLDER, FORMAT, GPT2, GPT2_ROWS, IMAGE, MAPPER, TEXT, WORDS, cache_names,
                         file_stamp)
from .staging import staged
from .tokenizer import TOKENIZER_FILES


class Prefix(nn.Module):
    """The mapper, with ClipCap's optional normalisation of the CLIP vector first (ClipCap.prefix). It holds the
    mapper alone: exporting a module that holds GPT-2 too changes that GPT-2's results afterwards."""

    def __init__(self, clipcap):
        super().__init__()
        self.mapper = clipcap.clip_project
        self.normalize = clipcap.normalize_prefix

    def forward(self, vectors: torch.Tensor) -> torch.Tensor:
        if self.normalize:
            vectors = vectors / vectors.norm(dim=-1, keepdim=True)
        # (B, 1, d): the mapper's first layer then exports as a MatMul, which the int8 quantizer takes (not a Gemm).
        return self.mapper(vectors[:, None])


class TextTower(nn.Module):
    """CLIP's text tower from token ids (already cut after the last end-of-text token) to unit vectors."""

    def __init__(self, text_encoder):
        super().__init__()
        self.text_encoder = text_encoder

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.text_encoder.vectors(tokens)


class TracedAttention(nn.Module):
    """nn.MultiheadAttention's self-attention, written so that the exporter keeps batch and length free (torch's
    own version bakes the traced sizes into its reshapes). Same weights, same result."""

    def __init__(self, attention: nn.MultiheadAttention):
        super().__init__()
        self.attention = attention

    def forward(self, query, key, value, need_weights=False, attn_mask=None):
        mha = self.attention
        x = query if mha.batch_first else query.transpose(0, 1)
        batch, length, width = x.shape
        heads = mha.num_heads
        q, k, v = F.linear(x, mha.in_proj_weight, mha.in_proj_bias).reshape(batch, length, 3, heads, -1).permute(
            2, 0, 3, 1, 4)
        scores = (q @ k.transpose(-1, -2)) / math.sqrt(mha.head_dim)
        if attn_mask is not None:
            scores = scores + attn_mask
        out = mha.out_proj((scores.softmax(dim=-1) @ v).transpose(1, 2).reshape(batch, length, width))
        return (out if mha.batch_first else out.transpose(0, 1)), None


def traceable(module: nn.Module) -> nn.Module:
    """Swaps every self-attention nn.MultiheadAttention in `module` for TracedAttention, in place."""
    for parent in list(module.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, nn.MultiheadAttention) and child._qkv_same_embed_dim:
                setattr(parent, name, TracedAttention(child))
    return module


def export_graph(module: nn.Module, inputs: tuple, path: Path, input_names: list[str], output_names: list[str],
                 dynamic_axes: dict) -> None:
    """One fp32 graph, with torch's TorchScript exporter (the newer exporter needs onnxscript and is slower)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's deprecation notice and tracer warnings on shapes
        torch.onnx.export(module, inputs, str(path), input_names=input_names, output_names=output_names,
                          dynamic_axes=dynamic_axes, opset_version=OPSET, do_constant_folding=True, dynamo=False)


def quantize(fp32_path: Path, int8_path: Path, one_row: bool) -> None:
    """int8 weights for every MatMul with constant weights, computed by MLAS's int8 kernels, two ways:
    - `one_row` (the mapper, one vector a picture): a scale per output channel and per block of BLOCK inputs,
      MatMulNBits with the activations quantized on the fly (accuracy level 4), as GPT-2's graph for one row has
      (onnx_gpt2.py). At batch 1 it reads the weights twice as fast as the per-channel dynamic quantization below,
      and stays closer to fp32.
    - else (CLIP's towers: 50 patches or a dozen words at once): a scale per output channel, DynamicQuantizeMatMul,
      whose matrix-matrix kernels are faster there."""
    import logging

    import onnx
    from onnxruntime.quantization import QuantType, matmul_nbits_quantizer, quantize_dynamic

    root = logging.getLogger()  # where the quantizers give advice a user cannot act on
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        if one_row:
            config = matmul_nbits_quantizer.DefaultWeightOnlyQuantConfig(block_size=BLOCK, is_symmetric=True,
                                                                          accuracy_level=4, bits=8)
            quantizer = matmul_nbits_quantizer.MatMulNBitsQuantizer(
                onnx.load(str(fp32_path)), bits=8, block_size=BLOCK, is_symmetric=True, accuracy_level=4,
                algo_config=config)
            quantizer.process()
            quantizer.model.save_model_to_file(str(int8_path), False)
        else:
            quantize_dynamic(str(fp32_path), str(int8_path), per_channel=True, weight_type=QuantType.QInt8,
                             op_types_to_quantize=["MatMul", "Gemm"], extra_options={"MatMulConstBOnly": True})
    finally:
        root.setLevel(level)


class CpuFormUnavailable(CaptionerError):
    """The model has a part that its CPU form cannot hold (or its folder cannot be written): torch's int8 serves."""


LOGIT_LIMIT = 1.0  # int8's logits may differ from fp32's by at most this many standard deviations of the logits
CHECK_TEXTS = ("a photo of a dog on a sofa.", "a screenshot of a computer application.")


def export_model(manifest: Manifest, models_dir: Path | None, hint: str = "",
                 places: Places | None = None) -> Path:
    """Writes the model's CPU form into the `onnx/` folder of the first of `places` that can be written (the
    model's folder, then its folder in the cache; see derived.py), replacing an outdated one, and returns it.
    Everything is written into a temporary folder beside it first, checked, and only then put in place."""
    from .model import load_captioner

    model = load_captioner(manifest, models_dir, "cpu", hint, "fp32")
    preprocess = preprocess_facts(model.clip.preprocess_cfg)
    reference = fp32_results(model)  # first: the exporter may change the modules it is given
    refused = []
    for place in places or [manifest.folder]:
        try:
            place.mkdir(parents=True, exist_ok=True)
            with staged(place, CPU_FORM_WORK) as work:  # locked while it is written: see staging.py
                work.mkdir()
                write_cpu_form(model, manifest, work, preprocess, reference)
                folder = place / FOLDER
                if folder.exists():
                    shutil.rmtree(folder)
                work.rename(folder)
                return folder
        except OSError as exc:  # read-only, or full: the next place
            refused.append(_("its folder {folder} cannot be written ({reason})").format(
                folder=place, reason=exc.strerror or exc))
    raise CpuFormUnavailable("; ".join(refused))


def write_cpu_form(model, manifest: Manifest, work: Path, preprocess: dict, reference: dict) -> None:
    """The graphs, checked, and the facts, into the folder `work`. An OSError says that it cannot be written."""
    try:
        with torch.inference_mode(False), torch.no_grad():
            facts = write_graphs(model, work) | {"preprocess": preprocess}
    except (CaptionerError, MemoryError, OSError):
        raise
    except Exception as exc:  # a part the exporter or the quantizer cannot write
        raise CpuFormUnavailable(_("its graphs cannot be written ({reason})").format(reason=first_line(exc))
                                 ) from None
    facts["check"] = check(reference, manifest, work, facts)
    sources = [manifest.weights_path, model.clip.weights_path, manifest.clip_model_path,
               *(manifest.tokenizer_path / name for name in TOKENIZER_FILES)]
    facts |= {"format": FORMAT, "manifest": manifest.path.read_text(encoding="utf-8"),
              "sources": {source_name(path, manifest): file_stamp(path) for path in sources if path is not None}}
    (work / FACTS).write_text(json.dumps(facts, indent=1), encoding="utf-8")


def source_name(path: Path, manifest: Manifest) -> str:
    """A file the CPU form was written from, as its facts name it: relative to the model's folder when it lies in
    the models folder (a copied or moved model is then checked against its own files), else absolute."""
    path = path.resolve()
    if path.is_relative_to(manifest.folder.resolve().parent):
        return os.path.relpath(path, manifest.folder.resolve())
    return str(path)


def preprocess_facts(cfg: dict) -> dict:
    """open_clip's preprocessing, as onnx_model.clip_pixels repeats it: a square size, 'shortest' or 'squash'."""
    size = cfg.get("size", 224)
    if isinstance(size, (tuple, list)):
        if len(set(size)) != 1:
            raise CpuFormUnavailable(_("CLIP's input is not square ({size})").format(size=size))
        size = size[0]
    if cfg.get("resize_mode", "shortest") not in ("shortest", "squash"):
        raise CpuFormUnavailable(_("CLIP's resize mode '{mode}' is not repeated here").format(mode=cfg["resize_mode"]))
    return {"size": int(size), "mean": list(cfg["mean"]), "std": list(cfg["std"]),
            "interpolation": cfg.get("interpolation", "bicubic"), "resize_mode": cfg.get("resize_mode", "shortest")}


def write_graphs(model, folder: Path) -> dict:
    """The four graphs (three when CLIP has no text tower), quantized, and the tables; returns their facts."""
    gpt = FastGPT2.from_transformers(model.clipcap.gpt)
    layers, heads, head_dim = len(gpt.blocks), gpt.heads, gpt.width // gpt.heads
    past, present = cache_names(layers)
    # Two int8 forms of GPT-2: one for a row or two at a time (greedy), one for more rows (beams, pictures).
    bytes_per_step = write_gpt2_step(gpt, folder / GPT2, True, past, present)
    write_gpt2_step(gpt, folder / GPT2_ROWS, False, past, present)
    size = model.clip.preprocess_cfg.get("size", 224)
    size = size[0] if isinstance(size, (tuple, list)) else size
    int8_graph(traceable(model.clip.visual), (torch.zeros(1, 3, size, size),), folder / IMAGE, False, ["pixels"],
               ["vectors"], {"pixels": {0: "batch"}, "vectors": {0: "batch"}})
    int8_graph(Prefix(model.clipcap), (torch.zeros(1, model.clip.output_dim),), folder / MAPPER, True, ["vectors"],
               ["prefix"], {"vectors": {0: "batch"}, "prefix": {0: "batch"}})
    text = model.clip.text
    if text is not None:
        from .clip_tokenizer import write_clip_tokenizer

        try:
            write_clip_tokenizer(text.tokenizer, folder / CLIP_TOKENIZER)
        except ValueError as exc:
            raise CpuFormUnavailable(_("CLIP's tokenizer is not one this form can repeat ({reason})").format(
                reason=exc)) from None
        tokens = text.tokenizer(list(CHECK_TEXTS))[:, :8]
        int8_graph(traceable(TextTower(text)), (tokens,), folder / TEXT, False, ["tokens"], ["vectors"],
                   {"tokens": {0: "batch", 1: "length"}, "vectors": {0: "batch"}})
    np.save(folder / WORDS, model.clipcap.gpt.transformer.wte.weight.detach().half().numpy())
    return {"text": text is not None, "text_pool": getattr(text.clip, "text_pool_type", "argmax") if text else None,
            "gpt2": {"layers": layers, "heads": heads, "head_dim": head_dim, "bytes_per_step": bytes_per_step}}


def int8_graph(module: nn.Module, inputs: tuple, path: Path, one_row: bool, input_names: list[str],
               output_names: list[str], dynamic_axes: dict) -> None:
    """The module's fp32 graph, quantized into `path` (`one_row`: see `quantize`)."""
    fp32 = path.with_suffix(".fp32.onnx")
    export_graph(module, inputs, fp32, input_names, output_names, dynamic_axes)
    quantize(fp32, path, one_row)
    fp32.unlink()


def check_picture() -> Image.Image:
    """A picture with shapes and colours, for the check."""
    picture = Image.new("RGB", (320, 240), (200, 220, 240))
    draw = ImageDraw.Draw(picture)
    draw.ellipse((40, 40, 160, 200), fill=(180, 60, 30))
    draw.rectangle((180, 100, 300, 220), fill=(30, 120, 60))
    return picture


def fp32_results(model) -> dict:
    """What the check compares the int8 graphs with: for the check picture and its mirror image (a batch of two),
    CLIP's image vectors and GPT-2's first logits; CLIP's text vectors of CHECK_TEXTS."""
    pictures = [check_picture(), check_picture().transpose(Image.Transpose.FLIP_LEFT_RIGHT)]
    vectors = model.encode(pictures)
    return {"pictures": pictures, "vectors": vectors, "logits": model.lm.start(model.prefix(vectors), 1)[0],
            "texts": model.encode_text(list(CHECK_TEXTS)) if model.has_text else None}


def check(reference: dict, manifest: Manifest, folder: Path, facts: dict) -> dict:
    """The int8 graphs against the fp32 model (fp32_results). Raises CpuFormUnavailable when int8 strays too far,
    or when a graph cannot run (a batch of two included)."""
    from .onnx_model import OnnxCaptioner
    from .decoding import max_logit_error

    (folder / FACTS).write_text(json.dumps(facts), encoding="utf-8")
    try:
        cpu = OnnxCaptioner(manifest, folder)
        vectors = cpu.encode(reference["pictures"])
        logits = cpu.lm.start(cpu.prefix(vectors), 1)[0]
        rows = [0, 1, 0]  # more rows than ONE_ROW: GPT-2's graph for several rows
        rows_logits = cpu.lm.start(cpu.prefix(vectors[rows]), 1)[0]
        texts = cpu.encode_text(list(CHECK_TEXTS)) if cpu.has_text else None
    except Exception as exc:  # onnxruntime's errors are plain Exceptions
        raise CpuFormUnavailable(_("onnxruntime cannot run its graphs ({reason})").format(reason=first_line(exc))
                                 ) from None
    logit_error = max(max_logit_error(reference["logits"], logits),
                      max_logit_error(reference["logits"][rows], rows_logits))
    result = {"logit_error": round(logit_error, 4), "image_cosine": round(cosine(reference["vectors"], vectors), 4)}
    if texts is not None:
        result["text_cosine"] = round(cosine(reference["texts"], texts), 4)
    if logit_error > LOGIT_LIMIT:
        raise CpuFormUnavailable(_("int8 moves its logits by {amount} standard deviations").format(
            amount=f"{logit_error:.2f}"))
    return result


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    """The smallest cosine between corresponding rows."""
    return float(((a * b).sum(-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))).min())
