"""CLIP through open_clip, with open_clip's own preprocessing for the model.

ClipCap itself needs only the image tower. The text tower, when the weights file has it, serves the guard: it
compares the picture with prompts about kinds of pictures, and with the caption written for it.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict
import tempfile
from collections.abc import Callable, Mapping
from contextlib import contextmanager
from pathlib import Path

import torch
from PIL import Image
from torch import nn

from captioner_gui.i18n import _

from .checkpoint import read_clip_weights
from .errors import ManifestError, ModelFilesMissing, telling_line
from .quantize import quantize_linears, release_freed_memory
from .manifest import ClipSpec

CLIP_FOLDER = "clip"  # inside the models folder: clip/<model>-<tag>/<file> for weights fetched by a pretrained tag
# Fields of an open_clip text config that make open_clip fetch a text model or tokenizer from the Hugging Face Hub.
HUB_TEXT_FIELDS = ("hf_tokenizer_name", "hf_model_name", "hf_model_pretrained", "hf_proj_type", "hf_pooler_type")


class ClipTextEncoder(nn.Module):
    """CLIP's text tower: texts -> unit-length vectors comparable with the image vectors."""

    def __init__(self, clip_without_image_tower: nn.Module, tokenizer):
        super().__init__()
        self.clip = clip_without_image_tower
        self.tokenizer = tokenizer

    @torch.inference_mode()
    def forward(self, texts: list[str]) -> torch.Tensor:
        clip = self.clip
        tokens = self.tokenizer(texts).to(clip.positional_embedding.device)
        # Attention is causal, so nothing after the last end-of-text token changes what is read there: a caption
        # of 12 tokens runs over 12 positions, not the 77 the tokenizer pads to.
        length = int(tokens.argmax(dim=-1).max()) + 1 if clip.text_pool_type == "argmax" else tokens.shape[1]
        return self.vectors(tokens[:, :length])

    def vectors(self, tokens: torch.Tensor) -> torch.Tensor:
        """open_clip's encode_text on token ids, except that the working precision comes from the positional
        table: the int8 layers have no weight tensor for open_clip to read it from."""
        from open_clip.transformer import text_global_pool

        clip = self.clip
        length = tokens.shape[1]
        x = clip.token_embedding(tokens).to(clip.positional_embedding.dtype) + clip.positional_embedding[:length]
        mask = clip.attn_mask[:length, :length] if clip.attn_mask is not None else None
        x = clip.ln_final(clip.transformer(x, attn_mask=mask))
        x = text_global_pool(x, tokens, clip.text_pool_type, eos_token_id=getattr(clip, "text_eos_id", None))
        if isinstance(clip.text_projection, nn.Linear):
            x = clip.text_projection(x)
        elif clip.text_projection is not None:
            x = x @ clip.text_projection
        return nn.functional.normalize(x.float(), dim=-1)


class ClipImageEncoder(nn.Module):
    """Turns PIL images into CLIP image vectors (unnormalised, as ClipCap was trained on)."""

    def __init__(self, visual: nn.Module, preprocess, model_name: str, text: ClipTextEncoder | None = None,
                 preprocess_cfg: dict | None = None, weights_path: Path | None = None):
        super().__init__()
        self.visual = visual
        self.preprocess = preprocess
        self.preprocess_cfg = preprocess_cfg or {}  # open_clip's PreprocessCfg as a dict (size, mean, std, ...)
        self.model_name = model_name
        self.text = text  # None when the weights file holds only the image tower
        self.weights_path = weights_path  # the file the weights were read from

    @property
    def output_dim(self) -> int:
        return int(self.visual.output_dim)

    def pixels(self, images: list[Image.Image]) -> torch.Tensor:
        return torch.stack([self.preprocess(image) for image in images])

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.visual(pixels)


@contextmanager
def _quiet_open_clip():
    """open_clip warns on the root logger that a model built without weights is random; we load them next."""
    logging.disable(logging.WARNING)
    try:
        yield
    finally:
        logging.disable(logging.NOTSET)


def resolve_model_name(spec: ClipSpec, config_path: Path | None) -> str:
    """An open_clip model name; a JSON config file is registered with open_clip under its file name."""
    import open_clip

    if config_path is not None:
        if not config_path.is_file():
            raise ModelFilesMissing(_("CLIP model config is missing: looked for {path}.").format(path=config_path))
        _register_config(config_path.stem, read_clip_config(config_path))
        return config_path.stem
    if spec.model not in open_clip.list_models():
        raise ManifestError(_("Unknown CLIP model '{model}' in field 'clip.model' (open_clip knows e.g. ViT-B-32, "
                              "RN50x4).").format(model=spec.model))
    return spec.model


def read_clip_config(path: Path) -> dict:
    """An open_clip model config file, checked enough that building the model cannot fail with a traceback."""
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ManifestError(_("CLIP model config {path} is not valid JSON ({reason}).").format(path=path, reason=exc)
                            ) from None
    if not (isinstance(config, dict) and isinstance(config.get("embed_dim"), int)
            and isinstance(config.get("vision_cfg"), dict) and isinstance(config.get("text_cfg"), dict)):
        raise ManifestError(_("CLIP model config {path} is not an open_clip model config: it needs 'embed_dim' "
                              "(a number), 'vision_cfg' and 'text_cfg' (objects).").format(path=path))
    return config


def offline_model_name(model_name: str) -> str:
    """The open_clip name to build a model and its tokenizer by without the network: the model's own, or, for a
    config that names a text model or tokenizer on the Hub, a copy without those fields (its text tower then
    does not fit the weights, and captions come without the guard's findings)."""
    import open_clip

    config = open_clip.get_model_config(model_name) or {}
    text = config.get("text_cfg") or {}
    if not any(field in text for field in HUB_TEXT_FIELDS):
        return model_name
    offline = {**config, "text_cfg": {k: v for k, v in text.items() if k not in HUB_TEXT_FIELDS}}
    _register_config(f"{model_name}-offline", offline)
    return f"{model_name}-offline"


def _register_config(name: str, config: dict) -> None:
    """Registers a model config with open_clip (which reads configs from files), without Hub fields."""
    import open_clip

    text = config.get("text_cfg") or {}
    config = {**config, "text_cfg": {k: v for k, v in text.items() if k not in HUB_TEXT_FIELDS}}
    with tempfile.TemporaryDirectory() as folder:
        file = Path(folder) / f"{name}.json"
        file.write_text(json.dumps(config), encoding="utf-8")
        open_clip.add_model_config(file)


def pretrained_weights_file(model_name: str, tag: str, models_dir: Path | None) -> tuple[Path, dict]:
    """Where the weights for an open_clip pretrained tag are: our models folder first, then open_clip's cache."""
    import open_clip

    cfg = open_clip.get_pretrained_cfg(model_name, tag)
    if not cfg:
        tags = open_clip.list_pretrained_tags_by_model(model_name)
        if not tags:
            raise ManifestError(_("CLIP model {model} has no pretrained weights '{tag}' (it has none).").format(
                model=model_name, tag=tag))
        raise ManifestError(_("CLIP model {model} has no pretrained weights '{tag}' (it has: {tags}).").format(
            model=model_name, tag=tag, tags=", ".join(tags)))
    repo_id, filename = hub_location(cfg)
    looked = []
    if models_dir is not None:
        folder = models_dir / CLIP_FOLDER / f"{model_name}-{tag}"
        for candidate in (folder / filename, folder / alternative_name(filename)):
            looked.append(str(candidate))
            if candidate.is_file():
                return candidate, cfg
    from huggingface_hub import try_to_load_from_cache

    for name in (filename, alternative_name(filename)):
        cached = try_to_load_from_cache(repo_id, name)
        if isinstance(cached, str):
            return Path(cached), cfg
    looked = list(dict.fromkeys(looked))
    if not looked:
        raise ModelFilesMissing(_("CLIP weights {model} ({tag}) are missing: looked for them in the Hugging Face "
                                  "cache.").format(model=model_name, tag=tag))
    places = looked[0] if len(looked) == 1 else _("{path} and {other}").format(path=looked[0], other=looked[1])
    raise ModelFilesMissing(_("CLIP weights {model} ({tag}) are missing: looked for {places} and in the Hugging "
                              "Face cache.").format(model=model_name, tag=tag, places=places))


def hub_location(cfg: dict) -> tuple[str, str]:
    """open_clip writes hub locations as 'org/repo/' (default file) or 'org/repo/file'; we prefer safetensors."""
    hub = cfg.get("hf_hub", "")
    if not hub:
        raise ManifestError(_("These CLIP weights are not on the Hugging Face Hub; give a weights file in "
                              "'clip.weights'."))
    repo_id, filename = hub.rstrip("/").rsplit("/", 1) if not hub.endswith("/") else (hub.rstrip("/"), "")
    if not filename or filename == "open_clip_pytorch_model.bin":
        filename = "open_clip_model.safetensors"
    return repo_id, filename


def alternative_name(filename: str) -> str:
    return "open_clip_pytorch_model.bin" if filename.endswith(".safetensors") else filename


def load_clip_encoder(
    spec: ClipSpec, weights_path: Path | None, config_path: Path | None, models_dir: Path | None,
    hint: str = "", int8: bool = False,
) -> ClipImageEncoder:
    """Builds CLIP without initialising it (meta device), then loads its weights in place, one block at a time;
    with `int8`, each block's Linear layers are quantized as soon as the block is loaded."""
    import open_clip
    from open_clip.transform import PreprocessCfg, image_transform_v2

    model_name = resolve_model_name(spec, config_path)
    preprocess_overrides: dict = {}
    quick_gelu = bool(spec.quick_gelu)
    if weights_path is None:
        try:
            weights_path, cfg = pretrained_weights_file(model_name, spec.weights, models_dir)
        except ModelFilesMissing as exc:
            raise ModelFilesMissing(f"{exc}{hint}") from None
        if spec.quick_gelu is None:
            quick_gelu = bool(cfg.get("quick_gelu", False))
        preprocess_overrides = {
            k: cfg[k] for k in ("mean", "std", "interpolation", "resize_mode") if k in cfg
        }
    elif not weights_path.is_file():
        raise ModelFilesMissing(_("CLIP weights are missing: looked for {path}.").format(path=weights_path) + hint)

    build_name = offline_model_name(model_name)
    try:
        with _quiet_open_clip(), torch.device("meta"):  # built without memory or random initialisation
            model = open_clip.create_model(build_name, device="meta", force_quick_gelu=quick_gelu)
    except (TypeError, ValueError, KeyError, AssertionError, AttributeError, RuntimeError) as exc:
        raise ManifestError(_("CLIP model '{model}' cannot be built from its config ({kind}: {reason}). Check the "
                              "config file.").format(model=model_name, kind=type(exc).__name__,
                                                     reason=telling_line(exc))) from None
    visual = model.visual
    state, text_state = read_clip_weights(weights_path)
    convert = quantize_linears if int8 else None
    try:
        load_in_blocks(visual, state, convert)
    except (RuntimeError, KeyError) as exc:
        raise ManifestError(_("CLIP weights {path} do not fit CLIP model '{model}': {reason}").format(
            path=weights_path, model=model_name, reason=telling_line(exc))) from None
    visual.eval().requires_grad_(False)
    preprocess_cfg = PreprocessCfg(**{**visual.preprocess_cfg, **preprocess_overrides})
    text = _text_encoder(model, text_state, build_name, convert) if text_state else None
    return ClipImageEncoder(visual, image_transform_v2(preprocess_cfg, is_train=False), model_name, text,
                            asdict(preprocess_cfg), weights_path)


def _text_encoder(model: nn.Module, text_state: Mapping, model_name: str, convert) -> ClipTextEncoder | None:
    """The text tower from the rest of the weights file; None when those weights do not fit it (the guard then
    cannot tell kinds of pictures, and captioning goes on without it)."""
    import open_clip

    model.visual = None
    try:
        load_in_blocks(model, text_state, convert)
    except (RuntimeError, KeyError):
        return None
    if getattr(model, "attn_mask", None) is not None:  # the causal mask is not in files: still on meta
        size = model.context_length
        model.attn_mask = torch.full((size, size), float("-inf")).triu_(1)
    if any(t.is_meta for t in [*model.parameters(), *model.buffers()]):
        return None
    if convert is not None:  # the word table is only looked up: fp16 halves it
        model.token_embedding.half()
    return ClipTextEncoder(model.eval().requires_grad_(False), open_clip.get_tokenizer(model_name))


def load_in_blocks(module: nn.Module, weights: Mapping, convert: Callable[[nn.Module], object] | None) -> None:
    """`module.load_state_dict(weights, strict=True, assign=True)` for a module built on the meta device, one
    block (an item of a ModuleList) at a time, with `convert` applied to each block as soon as it is loaded.
    With weights read lazily, only one block's full-precision weights are in memory at once."""
    expected = module.state_dict().keys()
    missing, unexpected = sorted(expected - weights.keys()), sorted(weights.keys() - expected)
    if missing or unexpected:
        # Said to the user (in "CLIP weights ... do not fit ...").
        raise KeyError(_("missing key {key}").format(key=missing[0]) if missing
                       else _("unexpected key {key}").format(key=unexpected[0]))
    lists: list[str] = []  # the outermost ModuleLists, as key prefixes
    for name, child in module.named_modules():
        if isinstance(child, nn.ModuleList) and not any(name.startswith(outer) for outer in lists):
            lists.append(f"{name}." if name else "")
    # What lies outside the blocks first, while the module has no converted layer (their loading differs).
    module.load_state_dict({k: weights[k] for k in expected if not any(k.startswith(outer) for outer in lists)},
                           strict=False, assign=True)
    for outer in lists:
        for index, block in enumerate(module.get_submodule(outer.rstrip("."))):
            prefix = f"{outer}{index}."
            block.load_state_dict({k: weights[prefix + k] for k in block.state_dict()}, strict=True, assign=True)
            if convert is not None:
                convert(block)
                release_freed_memory()  # the block's full-precision weights are gone: give the memory back
    if convert is not None:
        convert(module)  # Linear layers outside the blocks, if any
