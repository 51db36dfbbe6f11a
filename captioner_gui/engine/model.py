"""ClipCap on torch: CLIP vector -> mapping network -> prefix -> GPT-2; its loading, and TorchCaptioner, the form that
runs it (fp32 exact, and CUDA)."""

from __future__ import annotations

import gc
import inspect
import re
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

from captioner_gui.i18n import N_, _

from .checkpoint import StateDict, WeightsReader, load_weights, weights_reader
from .derived import weights_copy_places
from .clip_encoder import ClipImageEncoder, load_clip_encoder
from .captioner import Captioner
from .errors import CaptionerError, GPUOutOfMemory, ManifestError
from .fast_gpt2 import FastGPT2, FastPrefixLM, TorchBackend
from .images import to_rgb
from .manifest import Manifest
from .mapping import MLPMapper, TransformerMapper
from .options import DEVICES, PRECISIONS
from .quantize import release_freed_memory
from .tokenizer import load_tokenizer


class ClipCap(nn.Module):
    """The trainable part: `clip_project` (the mapper) and `gpt`, named as in the released checkpoints."""

    def __init__(self, clip_project: nn.Module, gpt: nn.Module, prefix_length: int, normalize_prefix: bool):
        super().__init__()
        self.clip_project = clip_project
        self.gpt = gpt
        self.prefix_length = prefix_length
        self.normalize_prefix = normalize_prefix

    def prefix(self, clip_vectors: torch.Tensor) -> torch.Tensor:
        """(B, d_clip) -> (B, K, D) prefix embeddings."""
        clip_vectors = clip_vectors.float()
        if self.normalize_prefix:
            clip_vectors = clip_vectors / clip_vectors.norm(dim=-1, keepdim=True)
        weight = next(self.clip_project.parameters(), None)  # an int8 mapper has none: it computes in fp32
        return self.clip_project(clip_vectors.to(weight.dtype if weight is not None else torch.float32))


def gpt2_config_from_weights(state: StateDict, n_head: int):
    """GPT-2's depth and width as the weights have them; only the head count is not visible in the shapes."""
    from transformers import GPT2Config

    if "gpt.transformer.wte.weight" not in state or "gpt.transformer.wpe.weight" not in state:
        raise ManifestError(_("The weights hold no GPT-2 (no 'gpt.transformer.wte.weight' / 'wpe.weight' keys)."))
    vocab_size, n_embd = state["gpt.transformer.wte.weight"].shape
    n_positions = state["gpt.transformer.wpe.weight"].shape[0]
    layers = {int(m.group(1)) for key in state if (m := re.match(r"gpt\.transformer\.h\.(\d+)\.", key))}
    if not layers:
        raise ManifestError(_("The weights hold no GPT-2 blocks ('gpt.transformer.h.N.*')."))
    if n_embd % n_head:
        raise ManifestError(_("Field 'gpt2.n_head' is {heads}, which does not divide GPT-2's width {width}.").format(
            heads=n_head, width=n_embd))
    inner = state.get("gpt.transformer.h.0.mlp.c_fc.weight")
    special = vocab_size - 1
    return GPT2Config(
        vocab_size=vocab_size, n_positions=n_positions, n_embd=n_embd, n_layer=max(layers) + 1, n_head=n_head,
        n_inner=None if inner is None else inner.shape[1], bos_token_id=special, eos_token_id=special,
    )


def build_mapper(mapping: str, clip_dim: int, embed_dim: int, prefix_length: int, clip_length: int | None = None,
                 layers: int | None = None) -> nn.Module:
    """The mapping network: "mlp", or "transformer" (which also needs clip_length and layers)."""
    if mapping == "mlp":
        return MLPMapper(clip_dim, embed_dim, prefix_length)
    return TransformerMapper(clip_dim, embed_dim, prefix_length, clip_length, layers)


def manifest_mapper(manifest: Manifest, clip_dim: int, embed_dim: int) -> nn.Module:
    return build_mapper(manifest.mapping, clip_dim, embed_dim, manifest.prefix_length, manifest.clip_length,
                        manifest.mapping_layers)


def build_clipcap(manifest: Manifest, state: StateDict, clip_dim: int, source: Path | str) -> ClipCap:
    """Builds the modules without initialising them, checks every key and shape, then loads the weights in place."""
    from transformers import GPT2LMHeadModel

    config = gpt2_config_from_weights(state, manifest.gpt2_n_head)
    with torch.device("meta"):
        model = ClipCap(manifest_mapper(manifest, clip_dim, config.n_embd), GPT2LMHeadModel(config),
                        manifest.prefix_length, manifest.normalize_prefix)
    check_state_fits({key: tuple(t.shape) for key, t in model.state_dict().items()}, state, manifest, clip_dim,
                     source)
    model.load_state_dict(state, strict=True, assign=True)
    head, embedding = model.gpt.lm_head.weight, model.gpt.transformer.wte.weight
    if head.data_ptr() == embedding.data_ptr():
        model.gpt.lm_head.weight = embedding  # one parameter again, as GPT-2 ties them
    return model.eval().requires_grad_(False)


def gpt2_shapes(config) -> dict[str, tuple[int, ...]]:
    """The shape of every tensor of transformers' GPT2LMHeadModel for a config, by name (Conv1D layers store
    (in, out)). What importing and building that model would tell, without the half second its import costs."""
    width, inner, vocab = config.n_embd, config.n_inner or 4 * config.n_embd, config.vocab_size
    shapes = {"transformer.wte.weight": (vocab, width), "transformer.wpe.weight": (config.n_positions, width)}
    for i in range(config.n_layer):
        block = f"transformer.h.{i}."
        shapes |= {block + "ln_1.weight": (width,), block + "ln_1.bias": (width,),
                   block + "attn.c_attn.weight": (width, 3 * width), block + "attn.c_attn.bias": (3 * width,),
                   block + "attn.c_proj.weight": (width, width), block + "attn.c_proj.bias": (width,),
                   block + "ln_2.weight": (width,), block + "ln_2.bias": (width,),
                   block + "mlp.c_fc.weight": (width, inner), block + "mlp.c_fc.bias": (inner,),
                   block + "mlp.c_proj.weight": (inner, width), block + "mlp.c_proj.bias": (width,)}
    return shapes | {"transformer.ln_f.weight": (width,), "transformer.ln_f.bias": (width,),
                     "lm_head.weight": (vocab, width)}


def check_state_fits(expected: dict[str, tuple[int, ...]], state: StateDict, manifest: Manifest,
                     clip_dim: int | None, source: Path | str) -> None:
    """Every key the model needs is in the weights with its shape, and nothing else is; else a message that names
    the key and the manifest fields that decide it. `clip_dim` is None when only GPT-2's keys are checked."""
    context = (f"mapping '{manifest.mapping}', prefix_length {manifest.prefix_length}"
               + (f", clip_length {manifest.clip_length}, mapping_layers {manifest.mapping_layers}"
                  if manifest.mapping == "transformer" else "")
               + (", " + _("CLIP vectors of {size}").format(size=clip_dim) if clip_dim is not None else ""))
    found = ("mlp" if "clip_project.model.0.weight" in state
             else "transformer" if "clip_project.linear.weight" in state else None)
    if found and found != manifest.mapping:
        raise ManifestError(_("{source} holds a '{found}' mapping network, but field 'mapping' says '{mapping}'.")
                            .format(source=source, found=found, mapping=manifest.mapping))
    missing = [k for k in expected if k not in state]
    if missing:
        raise ManifestError(_("{source}: key '{key}' is missing; the manifest ({context}) needs it.").format(
            source=source, key=missing[0], context=context))
    unexpected = [k for k in state if k not in expected]
    if unexpected:
        raise ManifestError(_("{source}: key '{key}' is not used by the manifest's model ({context}).").format(
            source=source, key=unexpected[0], context=context))
    for key, shape in expected.items():
        if tuple(state[key].shape) != shape:
            raise ManifestError(_("{source}: key '{key}' has shape {shape}, but the manifest ({context}) needs "
                                  "{needed}.").format(source=source, key=key, shape=list(state[key].shape),
                                                      context=context, needed=list(shape)))


def resolve_precision(choice: str, device: torch.device) -> str:
    """auto: int8 on the CPU (a quarter of the bytes to read per token), fp16 on CUDA; fp32 is exact."""
    if choice not in PRECISIONS:
        raise CaptionerError(_("Unknown precision '{precision}': use one of {choices}.").format(
            precision=choice, choices=", ".join(PRECISIONS)))
    if choice == "auto":
        return "fp16" if device.type == "cuda" else "int8"
    if choice == "int8" and device.type != "cpu":
        raise CaptionerError(_("int8 is the CPU's precision: on CUDA use fp16, bf16 or fp32."))
    if choice in ("fp16", "bf16") and device.type != "cuda":
        raise CaptionerError(_("{precision} is for CUDA GPUs (this CPU has no fast {precision}): use int8 or fp32.")
                             .format(precision=choice))
    return choice


def resolve_device(choice: str = "auto") -> torch.device:
    if choice == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if choice == "cuda":
        if not torch.cuda.is_available():
            raise CaptionerError(_("CUDA was asked for, but no CUDA GPU is usable here: use --device cpu (or auto)."))
        return torch.device("cuda")
    if choice == "cpu":
        return torch.device("cpu")
    raise CaptionerError(_("Unknown device '{device}': use {choices} or {last}.").format(
        device=choice, choices=", ".join(DEVICES[:-1]), last=DEVICES[-1]))


def device_name(device: torch.device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"


@contextmanager
def gpu_memory(message: str) -> Iterator[None]:
    """Turns torch's OutOfMemoryError into the engine's GPUOutOfMemory with `message`."""
    try:
        yield
    except torch.OutOfMemoryError:
        raise GPUOutOfMemory(message) from None


DESCRIBING_OOM = N_("The GPU ran out of memory while describing. Use the CPU, or close other programs.")


class PrefixLM(TorchBackend):
    """transformers' GPT-2 (a GPT2LMHeadModel) as a decoding Backend, exact: prefix embeddings, then one token at
    a time."""

    def __init__(self, gpt):
        self.gpt = gpt
        self.embed = gpt.get_input_embeddings()
        self.device = self.embed.weight.device
        # transformers 5 calls the key/value cache `cache`; earlier releases called it `past_key_values`.
        self.cache_name = "cache" if "cache" in inspect.signature(gpt.forward).parameters else "past_key_values"

    @torch.inference_mode()
    def start(self, prefix: torch.Tensor, max_new_tokens: int):
        return self._run(prefix, None)

    @torch.inference_mode()
    def step(self, tokens: np.ndarray, cache):
        return self._run(self.embed(self.tensor(tokens)[:, None]), cache)

    def _run(self, embeds: torch.Tensor, cache):
        out = self.gpt(inputs_embeds=embeds, use_cache=True, logits_to_keep=1, **{self.cache_name: cache})
        return out.logits[:, -1].float().cpu().numpy(), getattr(out, self.cache_name)


class TorchCaptioner(Captioner):
    """The model on torch: transformers' GPT-2 in fp32 (exact), or the lean FastGPT2 in int8, fp16 or bf16."""

    backend = "torch"

    def __init__(self, manifest: Manifest, clip: ClipImageEncoder, clipcap: ClipCap, tokenizer,
                 device: torch.device, precision: str = "fp32"):
        """`clip` and `clipcap` as set_device_and_precision left them."""
        super().__init__(manifest, tokenizer, precision, device_name(device))
        self.device = device
        self.clip, self.clipcap = clip, clipcap
        gpt = clipcap.gpt
        self.lm = FastPrefixLM(gpt) if isinstance(gpt, FastGPT2) else PrefixLM(gpt)

    @property
    def has_text(self) -> bool:
        return self.clip.text is not None

    @torch.inference_mode()
    def encode(self, images: list[Image.Image]) -> np.ndarray:
        pixels = self.clip.pixels([to_rgb(image) for image in images]).to(self.device)
        return self.clip(pixels.to(next(self.clip.parameters()).dtype)).float().cpu().numpy()

    @torch.inference_mode()
    def prefix(self, vectors: np.ndarray) -> torch.Tensor:
        return self.clipcap.prefix(torch.from_numpy(np.ascontiguousarray(vectors)).to(self.device))

    def encode_text(self, texts: list[str]) -> np.ndarray:
        return self.clip.text(texts).float().cpu().numpy()

    def describing(self):
        return gpu_memory(_(DESCRIBING_OOM))


def _gpt_keys(config) -> dict[str, tuple[int, ...]]:
    """GPT-2's tensors as a ClipCap checkpoint names them."""
    return {f"gpt.{key}": shape for key, shape in gpt2_shapes(config).items()}


def gpt2_int8_builder(manifest: Manifest, reader: WeightsReader) -> Callable[[], FastGPT2]:
    """Checks GPT-2's keys and shapes in the weights, then returns what builds it in int8, one layer at a time
    as its weights are read (see WeightsReader). The builder needs nothing of CLIP and imports nothing, so it can
    run on another thread while CLIP loads (transformers' lazy imports are not thread-safe)."""
    from torch.ao.nn.quantized import dynamic  # noqa: F401  imported here, on the calling thread

    shapes = {key: shape for key, shape in reader.shapes().items() if key.startswith("gpt.")}
    config = gpt2_config_from_weights(shapes, manifest.gpt2_n_head)
    check_state_fits(_gpt_keys(config), shapes, manifest, None, reader.path)
    return lambda: FastGPT2(config, lambda name: reader["gpt." + name], int8=True, tied=reader.tied)


def build_clipcap_int8(manifest: Manifest, reader: WeightsReader, clip_dim: int, gpt: FastGPT2) -> ClipCap:
    """The int8 model around a GPT-2 from gpt2_int8_builder: every key checked, then the mapper loaded. The mapper
    stays fp32: it runs once per image, and its output, the prefix, steers every word."""
    with torch.device("meta"):
        mapper = manifest_mapper(manifest, clip_dim, gpt.config.n_embd)
    expected = {f"clip_project.{key}": tuple(t.shape) for key, t in mapper.state_dict().items()}
    check_state_fits(expected | _gpt_keys(gpt.config), reader.shapes(), manifest, clip_dim, reader.path)
    mapper.load_state_dict({k: reader[f"clip_project.{k}"] for k in mapper.state_dict()}, assign=True)
    return ClipCap(mapper, gpt, manifest.prefix_length, manifest.normalize_prefix).eval().requires_grad_(False)


def own_memory(module: nn.Module) -> None:
    """Copies what a module still holds of a memory-mapped weights file into ordinary memory, so that the
    file's pages (most of them replaced by int8 copies) are released instead of staying resident."""
    with torch.no_grad():
        for tensor in [*module.parameters(), *module.buffers()]:
            tensor.data = tensor.data.clone()


def load_captioner(manifest: Manifest, models_dir: Path | None = None, device: str = "auto",
                   hint: str = "", precision: str = "auto") -> TorchCaptioner:
    """Loads everything a manifest names; `hint` is appended to missing-file messages (how to get the files).

    Two ways in, by the weights' form: int8 with a safetensors file streams GPT-2 in layer by layer; otherwise the
    weights are loaded whole (fp32 keeps transformers' GPT-2 memory-mapped). Then set_device_and_precision."""
    started = time.perf_counter()
    torch_device = resolve_device(device)
    precision = resolve_precision(precision, torch_device)
    tokenizer = load_tokenizer(manifest.tokenizer_path, hint)
    places = weights_copy_places(manifest)
    reader = weights_reader(manifest.weights_path, hint, places) if precision == "int8" else None
    if reader is not None:
        clip, clipcap = load_int8_streamed(manifest, reader, models_dir, hint)
    else:
        clip = load_clip_encoder(manifest.clip, manifest.clip_weights_path, manifest.clip_model_path, models_dir,
                                 hint, int8=precision == "int8")
        clipcap = build_clipcap(manifest, load_weights(manifest.weights_path, hint, places), clip.output_dim,
                                manifest.weights_path)
    with gpu_memory(_("Not enough memory on {device} for model '{name}'; try --device cpu.").format(
            device=device_name(torch_device), name=manifest.name)):
        clip, clipcap = set_device_and_precision(clip, clipcap, torch_device, precision)
        captioner = TorchCaptioner(manifest, clip, clipcap, tokenizer, torch_device, precision)
    captioner.load_seconds = time.perf_counter() - started
    return captioner


def load_int8_streamed(manifest: Manifest, reader: WeightsReader, models_dir: Path | None,
                       hint: str) -> tuple[ClipImageEncoder, ClipCap]:
    """CLIP and ClipCap in int8, GPT-2 converted layer by layer as its weights are read."""
    build_gpt2 = gpt2_int8_builder(manifest, reader)
    # GPT-2's conversion runs in torch's C++ code, without the GIL, so it overlaps with what CLIP needs: the
    # imports of open_clip and torchvision (about 2 s of Python) and CLIP's own conversion.
    with ThreadPoolExecutor(1, thread_name_prefix="gpt2-int8") as pool:
        gpt = pool.submit(build_gpt2)
        clip = load_clip_encoder(manifest.clip, manifest.clip_weights_path, manifest.clip_model_path, models_dir,
                                 hint, int8=True)
        return clip, build_clipcap_int8(manifest, reader, clip.output_dim, gpt.result())


def set_device_and_precision(clip: ClipImageEncoder, clipcap: ClipCap, device: torch.device,
                             precision: str) -> tuple[ClipImageEncoder, ClipCap]:
    """The one place where a loaded model gets its precision and device: fp32 keeps transformers' GPT-2 (exact);
    int8, fp16 and bf16 decode with the lean FastGPT2 (int8 quantized on the CPU, fp16 and bf16 cast for CUDA)."""
    if device.type == "cuda" and precision == "fp32":
        torch.backends.cudnn.conv.fp32_precision = "ieee"  # exact means exact: no TF32 in CLIP's convolutions
    if precision != "fp32" and not isinstance(clipcap.gpt, FastGPT2):
        clipcap.gpt = FastGPT2.from_transformers(clipcap.gpt, int8=precision == "int8")
        if precision == "int8":
            own_memory(clipcap)  # no safetensors form could be written: the loaded weights' file can go
    if precision in ("fp16", "bf16"):
        dtype = torch.float16 if precision == "fp16" else torch.bfloat16
        clip, clipcap = clip.to(device, dtype), clipcap.to(device, dtype)
    gc.collect()  # transformers' model sits in reference cycles: free what was converted now
    release_freed_memory()
    return clip.to(device), clipcap.to(device)
