"""The manifest: one JSON file per model folder that says how to build and load the model.

Example (paths are relative to the manifest file):

    {"version": 1, "name": "coco", "weights": "coco_weights.pt", "mapping": "mlp", "prefix_length": 10,
     "normalize_prefix": false, "clip": {"model": "ViT-B-32", "weights": "openai"},
     "tokenizer": "../gpt2-tokenizer"}

Transformer models add "clip_length" and "mapping_layers". Optional: "gpt2": {"n_head": N} (default 12),
"clip": {"quick_gelu": true} for a CLIP weights file trained with QuickGELU (OpenAI's ViTs were), and "language":
the language the model writes its captions in ("zh" for Chinese; absent means English, as the released models).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from captioner_gui.i18n import _

from .errors import ManifestError, ModelFilesMissing
from .language import ENGLISH, LANGUAGE_CODE

MANIFEST_NAME = "manifest.json"
MANIFEST_VERSION = 1
MAPPINGS = ("mlp", "transformer")
WEIGHT_SUFFIXES = (".pt", ".pth", ".bin", ".safetensors", ".ckpt")

_TOP_FIELDS = {
    "version", "name", "weights", "mapping", "prefix_length", "clip_length", "mapping_layers",
    "normalize_prefix", "clip", "tokenizer", "gpt2", "language",
}
_CLIP_FIELDS = {"model", "weights", "quick_gelu"}
_GPT2_FIELDS = {"n_head"}


@dataclass(frozen=True)
class ClipSpec:
    model: str  # an open_clip model name, or a path to an open_clip JSON model config
    weights: str  # an open_clip pretrained tag ("openai") or a path to a weights file
    quick_gelu: bool | None = None  # None: as the pretrained tag says (False for a file)

    def weights_is_file(self) -> bool:
        return is_path_like(self.weights)

    def model_is_file(self) -> bool:
        return self.model.endswith(".json")


@dataclass(frozen=True)
class Manifest:
    path: Path  # the manifest file itself; relative paths are resolved against its folder
    name: str
    weights: str
    mapping: str
    prefix_length: int
    normalize_prefix: bool
    clip: ClipSpec
    tokenizer: str
    clip_length: int | None = None
    mapping_layers: int | None = None
    gpt2_n_head: int = 12
    language: str | None = None  # the captions' language, "en" or "zh"; None: not said, which means English
    # The models folder in use. Only when the model's folder lies in it may the manifest reach the folders beside
    # its own (the shared tokenizer and CLIP weights): a model folder given by its path reaches nothing beside it.
    models_dir: Path | None = None

    @property
    def caption_language(self) -> str:
        return self.language or ENGLISH

    @property
    def folder(self) -> Path:
        return self.path.parent

    @property
    def in_models_dir(self) -> bool:
        """Whether the model's folder is one of the models folder in use."""
        return self.models_dir is not None and self.folder.parent == Path(self.models_dir).resolve()

    def resolve(self, relative: str) -> Path:
        """A path of the manifest, made absolute. It must stay inside the model's folder, or inside the models
        folder in use when the model's folder is one of its own (where the shared tokenizer and CLIP weights
        are): a manifest never reaches elsewhere."""
        path = (self.folder / relative).resolve()
        roots = (self.folder, self.folder.parent) if self.in_models_dir else (self.folder,)
        if not any(path.is_relative_to(root) for root in roots):
            raise ManifestError(_("{path}: the path '{relative}' leads outside the model's folder and the models "
                                  "folder. Import the file instead: captioner models import FILE --name {name}").format(
                                      path=self.path, relative=relative, name=self.name))
        return path

    def check_paths(self) -> None:
        """Raises ManifestError when a path leads outside the model's folder and the models folder."""
        paths = [self.weights, self.tokenizer]
        paths += [self.clip.weights] if self.clip.weights_is_file() else []
        paths += [self.clip.model] if self.clip.model_is_file() else []
        for path in paths:
            self.resolve(path)

    @property
    def weights_path(self) -> Path:
        return self.resolve(self.weights)

    @property
    def tokenizer_path(self) -> Path:
        return self.resolve(self.tokenizer)

    @property
    def clip_weights_path(self) -> Path | None:
        return self.resolve(self.clip.weights) if self.clip.weights_is_file() else None

    @property
    def clip_model_path(self) -> Path | None:
        return self.resolve(self.clip.model) if self.clip.model_is_file() else None

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "version": MANIFEST_VERSION,
            "name": self.name,
            "weights": self.weights,
            "mapping": self.mapping,
            "prefix_length": self.prefix_length,
        }
        if self.mapping == "transformer":
            data["clip_length"] = self.clip_length
            data["mapping_layers"] = self.mapping_layers
        data["normalize_prefix"] = self.normalize_prefix
        clip: dict[str, Any] = {"model": self.clip.model, "weights": self.clip.weights}
        if self.clip.quick_gelu is not None:
            clip["quick_gelu"] = self.clip.quick_gelu
        data["clip"] = clip
        data["tokenizer"] = self.tokenizer
        if self.gpt2_n_head != 12:
            data["gpt2"] = {"n_head": self.gpt2_n_head}
        if self.language is not None:
            data["language"] = self.language
        return data

    def save(self) -> None:
        """Writes the manifest atomically, so that a crash never leaves half a file."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(self.to_json(), indent=2) + "\n", encoding="utf-8")
        tmp.replace(self.path)


def is_path_like(value: str) -> bool:
    """A weights value is a file path when it looks like one; otherwise it is an open_clip pretrained tag."""
    return "/" in value or "\\" in value or value.lower().endswith(WEIGHT_SUFFIXES)


def read_manifest(path: Path, models_dir: Path | None = None) -> Manifest:
    """Reads and checks a manifest file; every problem names the file and the field. `models_dir`: the models
    folder in use (see Manifest.models_dir)."""
    path = Path(path)
    if not path.is_file():
        raise ModelFilesMissing(_("No manifest at {path}.").format(path=path))
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ManifestError(_("{path} is not valid JSON ({reason}).").format(path=path, reason=exc)) from exc
    return manifest_from_dict(data, path, models_dir)


def manifest_from_dict(data: Any, path: Path, models_dir: Path | None = None) -> Manifest:
    where = str(path)
    if not isinstance(data, dict):
        raise ManifestError(_("{where}: the manifest must be a JSON object.").format(where=where))
    _reject_unknown(data, _TOP_FIELDS, where, "")
    version = _field(data, "version", int, where)
    if version != MANIFEST_VERSION:
        raise ManifestError(_("{where}: field 'version' is {version}; this captioner reads version {supported}.")
                            .format(where=where, version=version, supported=MANIFEST_VERSION))
    mapping = _field(data, "mapping", str, where)
    if mapping not in MAPPINGS:
        raise ManifestError(_("{where}: field 'mapping' is '{mapping}'; it must be one of {choices}.").format(
            where=where, mapping=mapping, choices=", ".join(MAPPINGS)))
    clip = _field(data, "clip", dict, where)
    _reject_unknown(clip, _CLIP_FIELDS, where, "clip.")
    gpt2 = data.get("gpt2", {})
    if not isinstance(gpt2, dict):
        raise ManifestError(_("{where}: field 'gpt2' must be an object.").format(where=where))
    _reject_unknown(gpt2, _GPT2_FIELDS, where, "gpt2.")

    is_transformer = mapping == "transformer"
    manifest = Manifest(
        path=path.resolve(),
        name=_field(data, "name", str, where),
        weights=_field(data, "weights", str, where),
        mapping=mapping,
        prefix_length=_positive(data, "prefix_length", where),
        normalize_prefix=_field(data, "normalize_prefix", bool, where),
        clip=ClipSpec(
            model=_field(clip, "model", str, where, "clip."),
            weights=_field(clip, "weights", str, where, "clip."),
            quick_gelu=_field(clip, "quick_gelu", bool, where, "clip.", required=False),
        ),
        tokenizer=_field(data, "tokenizer", str, where),
        clip_length=_positive(data, "clip_length", where, required=is_transformer),
        mapping_layers=_positive(data, "mapping_layers", where, required=is_transformer),
        gpt2_n_head=_positive(gpt2, "n_head", where, "gpt2.", required=False) or 12,
        language=_field(data, "language", str, where, required=False),
        models_dir=models_dir,
    )
    if manifest.language is not None and not LANGUAGE_CODE.fullmatch(manifest.language):
        raise ManifestError(_("{where}: field 'language' is '{value}'; it must be a language code such as 'en' or "
                              "'zh'.").format(where=where, value=manifest.language))
    if not is_transformer:
        for name in ("clip_length", "mapping_layers"):
            if name in data:
                raise ManifestError(_("{where}: field '{field}' is only for mapping 'transformer'.").format(
                    where=where, field=name))
    manifest.check_paths()
    return manifest


def _reject_unknown(data: dict, known: set[str], where: str, prefix: str) -> None:
    unknown = sorted(set(data) - known)
    if unknown:
        raise ManifestError(_("{where}: unknown field '{field}' (known: {known}).").format(
            where=where, field=prefix + unknown[0], known=", ".join(prefix + k for k in sorted(known))))


def _field(data: dict, name: str, kind: type, where: str, prefix: str = "", required: bool = True) -> Any:
    if name not in data:
        if required:
            raise ManifestError(_("{where}: missing field '{field}'.").format(where=where, field=prefix + name))
        return None
    value = data[name]
    # bool is a subclass of int in Python; a manifest that says "prefix_length": true is wrong.
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ManifestError(_("{where}: field '{field}' must be {kind}, not {value}.").format(
            where=where, field=prefix + name, kind=kind.__name__, value=json.dumps(value, ensure_ascii=False)))
    if kind is str and not value.strip():
        raise ManifestError(_("{where}: field '{field}' is empty.").format(where=where, field=prefix + name))
    return value


def _positive(data: dict, name: str, where: str, prefix: str = "", required: bool = True) -> int | None:
    value = _field(data, name, int, where, prefix, required)
    if value is not None and value < 1:
        raise ManifestError(_("{where}: field '{field}' must be a positive whole number, not {value}.").format(
            where=where, field=prefix + name, value=value))
    return value
