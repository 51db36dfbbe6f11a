"""The models folder: one folder per model with its manifest, plus shared tokenizer and CLIP weights.

    models/
      coco/manifest.json, coco_weights.pt (+ .safetensors copy)
      gpt2-tokenizer/vocab.json, merges.txt
      clip/ViT-B-32-openai/open_clip_model.safetensors

Downloads go through huggingface_hub (progress bar, resume of an interrupted file, the HF_ENDPOINT variable).
"""

from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from captioner_gui.i18n import N_, _

from .errors import CaptionerError, DownloadCancelled, DownloadError, ModelFilesMissing, first_line
from .integrity import problem_with, record, recorded
from .manifest import MANIFEST_NAME, WEIGHT_SUFFIXES, ClipSpec, Manifest, read_manifest
from .pins import Pin, pin_for
from .staging import held
from .tokenizer import TOKENIZER_FILES
from .translation import FOLDER as TRANSLATIONS_FOLDER  # the translation models' folder: never a model's name

TOKENIZER_FOLDER = "gpt2-tokenizer"
GPT2_FOLDER = "gpt2"  # GPT-2's pretrained weights, for training
TOKENIZER_REPO = "openai-community/gpt2"
PROJECT_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class BuiltinModel:
    """A released ClipCap checkpoint and where it comes from."""

    name: str
    filename: str
    mapping: str
    prefix_length: int
    clip_model: str
    normalize_prefix: bool
    hub_repo: str | None = None  # None: no Hub mirror, the user imports the file
    clip_length: int | None = None
    mapping_layers: int | None = None
    source: str = ""  # where to get the file without a mirror, marked with N_ (said with _ where it is used)

    def manifest(self, folder: Path, weights: str | None = None, clip_weights: str = "openai") -> Manifest:
        return Manifest(
            path=folder / MANIFEST_NAME, name=self.name, weights=weights or self.filename, mapping=self.mapping,
            prefix_length=self.prefix_length, normalize_prefix=self.normalize_prefix,
            clip=ClipSpec(self.clip_model, clip_weights), tokenizer=f"../{TOKENIZER_FOLDER}",
            clip_length=self.clip_length, mapping_layers=self.mapping_layers, models_dir=folder.parent,
        )


BUILTINS = {
    m.name: m
    for m in (
        BuiltinModel("coco", "coco_weights.pt", "mlp", 10, "ViT-B-32", False,
                     hub_repo="akhaliq/CLIP-prefix-captioning-COCO-weights"),
        BuiltinModel("conceptual", "conceptual_weights.pt", "mlp", 10, "ViT-B-32", False,
                     hub_repo="akhaliq/CLIP-prefix-captioning-conceptual-weights"),
        BuiltinModel("coco-transformer", "transformer_weights.pt", "transformer", 40, "RN50x4", True,
                     clip_length=40, mapping_layers=8,
                     source=N_("the ClipCap authors' Google Drive (linked from "
                               "github.com/rmokady/CLIP_prefix_caption)")),
    )
}


def default_models_dir() -> Path:
    """CAPTIONER_MODELS, else the models an offline bundle carries, else `models/` of a source checkout, else the
    user's data folder."""
    if os.environ.get("CAPTIONER_MODELS"):
        return Path(os.environ["CAPTIONER_MODELS"]).expanduser()
    if getattr(sys, "frozen", False):  # a PyInstaller bundle: an offline bundle carries a models folder
        bundled = Path(sys._MEIPASS) / "models"
        if any(bundled.glob(f"*/{MANIFEST_NAME}")):
            return bundled
    if (PROJECT_ROOT / "pyproject.toml").is_file() and (PROJECT_ROOT / "models").is_dir():
        return PROJECT_ROOT / "models"
    from platformdirs import user_data_path

    return user_data_path("captioner", appauthor=False) / "models"


def get_hint(name: str) -> str:
    """How to get a missing model, for error messages."""
    if name in BUILTINS and BUILTINS[name].hub_repo:
        return " " + _("Get it with: captioner models download {name}").format(name=name)
    if name in BUILTINS:
        return " " + _("Import the file you have with: captioner models import FILE --name {name}").format(name=name)
    return " " + _("Import it with: captioner models import FILE --name {name}").format(name=name)


def find_manifest(spec: str, models_dir: Path) -> Path:
    """A model given as a name (in the models folder), a model folder, or a manifest file."""
    path = Path(spec).expanduser()
    if path.is_file():
        return path
    if path.is_dir():
        if (path / MANIFEST_NAME).is_file():
            return path / MANIFEST_NAME
        raise ModelFilesMissing(_("{path} is a folder without a {file}.").format(path=path, file=MANIFEST_NAME))
    by_name = models_dir / spec / MANIFEST_NAME
    if by_name.is_file():
        return by_name
    if os.sep in spec or "/" in spec or spec.endswith(".json"):
        raise ModelFilesMissing(_("No model at {path}.").format(path=path))
    raise ModelFilesMissing(_("Model '{name}' is not installed: looked for {path}.").format(name=spec, path=by_name)
                            + get_hint(spec))


def load_model(spec: str = "coco", models_dir: Path | None = None, device: str = "auto", precision: str = "auto"):
    """The engine's entry: a model name, folder or manifest -> a loaded Captioner.

    precision: auto (int8 on the CPU, fp16 on CUDA), fp32 (exact), int8, fp16 or bf16. int8 on the CPU runs on
    onnxruntime (onnx_model.py) and imports no torch; the rest runs on torch (model.py)."""
    from .derived import remove_leftovers
    from .onnx_model import load_onnx_captioner, uses_cpu_form

    models_dir = models_dir or default_models_dir()
    recover_interrupted_imports(models_dir)
    manifest = read_manifest(find_manifest(spec, models_dir), models_dir)
    remove_leftovers(manifest)
    if uses_cpu_form(device, precision):
        return load_onnx_captioner(manifest, models_dir, get_hint(manifest.name))
    from .model import load_captioner

    return load_captioner(manifest, models_dir, device, get_hint(manifest.name), precision)


# ---------------------------------------------------------------------------------------------------- listing


@dataclass
class ModelInfo:
    name: str
    folder: Path
    size_bytes: int
    complete: bool
    missing: list[str] = field(default_factory=list)
    problem: str = ""
    damaged: list[str] = field(default_factory=list)  # what differs from what was installed


def manifest_files(manifest: Manifest, models_dir: Path) -> tuple[list[Path], list[str]]:
    """The files a model needs that exist, and descriptions of those that do not."""
    from .checkpoint import safetensors_copy_of
    from .clip_encoder import pretrained_weights_file

    present, missing = [], []
    weights = manifest.weights_path
    copy = safetensors_copy_of(weights)
    found = [p for p in dict.fromkeys((weights, copy)) if p.is_file()]
    present += found
    if not found:
        missing.append(str(weights))
    for name in TOKENIZER_FILES:
        file = manifest.tokenizer_path / name
        (present.append(file) if file.is_file() else missing.append(str(file)))
    if manifest.clip_weights_path is not None:
        file = manifest.clip_weights_path
        (present.append(file) if file.is_file() else missing.append(str(file)))
    else:
        try:
            present.append(pretrained_weights_file(manifest.clip.model, manifest.clip.weights, models_dir)[0])
        except CaptionerError:
            missing.append(_("CLIP {model} ({weights}) weights").format(model=manifest.clip.model,
                                                                         weights=manifest.clip.weights))
    return present, missing


def list_models(models_dir: Path) -> list[ModelInfo]:
    infos = []
    if not models_dir.is_dir():
        return infos
    for manifest_path in installed_manifests(models_dir):
        folder = manifest_path.parent
        try:
            manifest = read_manifest(manifest_path, models_dir)
        except CaptionerError as exc:
            infos.append(ModelInfo(folder.name, folder, _size(folder.glob("*")), False, problem=str(exc)))
            continue
        present, missing = manifest_files(manifest, models_dir)
        damaged = damaged_files(present, models_dir, hash_it=False)
        infos.append(ModelInfo(folder.name, folder, _size(present), not missing, missing, damaged=damaged))
    return infos


def installed_manifests(models_dir: Path) -> list[Path]:
    """The manifests of the models folder's models. Hidden folders are the work of an import that has not
    finished (or was cut off): never a model."""
    return sorted(p for p in models_dir.glob(f"*/{MANIFEST_NAME}") if not p.parent.name.startswith("."))


def expected_of(path: Path, models_dir: Path) -> Pin | None:
    """What a file must be: its pin when it is a built-in model's file from the Hub, else what was recorded when
    it was installed, else None (nothing known: only its header can be checked)."""
    pin = _pinned_locations(models_dir).get(path.resolve())
    if pin is not None and pin.sha256:
        return pin
    return recorded(path)


def damaged_files(files: list[Path], models_dir: Path, hash_it: bool = True) -> list[str]:
    """What is wrong with each damaged file among a model's files (one phrase each)."""
    problems = []
    for file in files:
        problem = problem_with(file, expected_of(file, models_dir), hash_it)
        if problem:
            problems.append(problem)
    return problems


def _pinned_locations(models_dir: Path) -> dict[Path, Pin]:
    """Where the built-in models' Hub files land in the models folder, with their pins."""
    locations = {}
    for builtin in BUILTINS.values():
        try:
            remotes = files_for(builtin, models_dir)
        except CaptionerError:
            continue
        for remote in remotes:
            locations[remote.path.resolve()] = pin_for(remote.repo_id, remote.filename)
    for remote in _gpt2_files(models_dir):
        locations[remote.path.resolve()] = pin_for(remote.repo_id, remote.filename)
    return locations


@dataclass
class ModelCheck:
    name: str
    files: int  # how many files were checked
    missing: list[str] = field(default_factory=list)
    damaged: list[str] = field(default_factory=list)
    problem: str = ""  # a manifest that cannot be read

    @property
    def ok(self) -> bool:
        return not (self.missing or self.damaged or self.problem)


def verify_models(models_dir: Path, name: str | None = None) -> list[ModelCheck]:
    """Checks every file of the installed models (or of one) against its pin or its recorded digest, and every
    safetensors file's header against the file."""
    from .checkpoint import safetensors_copy_of

    manifests = installed_manifests(models_dir) if models_dir.is_dir() else []
    if name is not None:
        manifests = [m for m in manifests if m.parent.name == name]
        if not manifests:
            raise ModelFilesMissing(_("Model '{name}' is not installed in {folder}.").format(
                name=name, folder=models_dir) + get_hint(name))
    checks = []
    for manifest_path in manifests:
        try:
            manifest = read_manifest(manifest_path, models_dir)
        except CaptionerError as exc:
            checks.append(ModelCheck(manifest_path.parent.name, 0, problem=str(exc)))
            continue
        present, missing = manifest_files(manifest, models_dir)
        copy = safetensors_copy_of(manifest.weights_path)
        files = list(dict.fromkeys([*present, *([copy] if copy.is_file() else [])]))
        checks.append(ModelCheck(manifest.name, len(files), missing, damaged_files(files, models_dir)))
    return checks


def human_size(size: float) -> str:
    """1234567 -> '1.2 MB' (decimal units, as the Hub and file managers show sizes)."""
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size} B"


def _size(paths) -> int:
    return sum(p.stat().st_size for p in paths if p.is_file())


# ---------------------------------------------------------------------------------------------------- download


@dataclass(frozen=True)
class RemoteFile:
    repo_id: str
    filename: str
    folder: Path  # where it lands

    @property
    def path(self) -> Path:
        return self.folder / self.filename


def tokenizer_files(models_dir: Path) -> list[RemoteFile]:
    """GPT-2's tokenizer, shared by every model in the folder."""
    return [RemoteFile(TOKENIZER_REPO, name, models_dir / TOKENIZER_FOLDER) for name in TOKENIZER_FILES]


def clip_file(model: str, tag: str, models_dir: Path) -> RemoteFile:
    """The Hub file of an open_clip pretrained tag, in the folder where the loader looks first."""
    import open_clip

    from .clip_encoder import CLIP_FOLDER, hub_location

    repo, filename = hub_location(open_clip.get_pretrained_cfg(model, tag))
    return RemoteFile(repo, filename, models_dir / CLIP_FOLDER / f"{model}-{tag}")


def files_for(builtin: BuiltinModel, models_dir: Path) -> list[RemoteFile]:
    """What a built-in model needs from the Hub: its checkpoint, the tokenizer and the CLIP weights."""
    files = [RemoteFile(builtin.hub_repo, builtin.filename, models_dir / builtin.name)] if builtin.hub_repo else []
    return files + tokenizer_files(models_dir) + [clip_file(builtin.clip_model, "openai", models_dir)]


def download_file(remote: RemoteFile, tqdm_class=None) -> Path:
    """Fetches one file into its folder (resuming a partial download) and checks it against the Hub's hash."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import (EntryNotFoundError, LocalEntryNotFoundError, OfflineModeIsEnabled,
                                        RepositoryNotFoundError)

    pin = pin_for(remote.repo_id, remote.filename)
    remote.folder.mkdir(parents=True, exist_ok=True)
    try:
        path = Path(hf_hub_download(remote.repo_id, remote.filename, revision=pin.revision, local_dir=remote.folder,
                                    tqdm_class=tqdm_class))
    except DownloadCancelled:
        raise
    except (LocalEntryNotFoundError, OfflineModeIsEnabled):
        raise DownloadError(_("Cannot reach the Hugging Face Hub (offline?). Connect and try again, or import files "
                              "you already have with: captioner models import FILE --name NAME")) from None
    except (RepositoryNotFoundError, EntryNotFoundError) as exc:
        raise DownloadError(_("{repo}/{file} is not on the Hub ({reason}).").format(
            repo=remote.repo_id, file=remote.filename, reason=type(exc).__name__)) from None
    except OSError as exc:
        raise DownloadError(_("Could not save {file} in {folder} ({reason}).").format(
            file=remote.filename, folder=remote.folder, reason=exc.strerror or exc)) from None
    except Exception as exc:  # httpx and the hub raise many kinds for network trouble
        raise DownloadError(_("Download of {file} failed: {reason}").format(file=remote.filename,
                                                                           reason=first_line(exc))) from None
    _check_download(remote, path, pin)
    return path


def _check_download(remote: RemoteFile, path: Path, pin: Pin) -> None:
    """A pinned file must have the pin's size and SHA-256, whatever the Hub says. An unpinned one is checked
    against the SHA-256 the Hub gives for large files (when it gives one), and its digest is recorded beside it,
    so that `models verify` finds later damage. A file that does not match is removed."""
    from .integrity import file_sha256

    expected = pin.sha256 or _hub_sha256(remote, pin.revision)
    if (pin.size is not None and path.stat().st_size != pin.size) or (expected and file_sha256(path) != expected):
        path.unlink()
        raise DownloadError(_("{file} arrived damaged (checksum mismatch) and was removed; try again.").format(
            file=remote.filename))
    if not pin.sha256:
        record([path])


def _hub_sha256(remote: RemoteFile, revision: str) -> str:
    """The SHA-256 the Hub gives as ETag for a large file; '' for small files (a git hash) or no answer."""
    from huggingface_hub import get_hf_file_metadata, hf_hub_url

    try:
        etag = get_hf_file_metadata(hf_hub_url(remote.repo_id, remote.filename, revision=revision)).etag or ""
    except Exception:
        return ""  # the file arrived; this second check needs the network once more
    return etag if len(etag) == 64 and all(c in "0123456789abcdef" for c in etag) else ""


def _fetch_unless_sound(remote: RemoteFile, models_dir: Path, tqdm_class, report) -> None:
    """Downloads a file unless it is there and sound: a file left by a download that was cut off between its
    arrival and its check, or damaged since, is fetched again."""
    if remote.path.is_file() and not problem_with(remote.path, expected_of(remote.path, models_dir)):
        return
    remote.path.unlink(missing_ok=True)
    report(_("Downloading {file} from {repo}").format(file=remote.filename, repo=remote.repo_id))
    download_file(remote, tqdm_class)


def download_gpt2(models_dir: Path, tqdm_class=None, report: Callable[[str], None] = lambda message: None) -> Path:
    """GPT-2 124M's pretrained weights and tokenizer, which `captioner train` starts from."""
    for remote in _gpt2_files(models_dir):
        _fetch_unless_sound(remote, models_dir, tqdm_class, report)
    return models_dir / GPT2_FOLDER


def _gpt2_files(models_dir: Path) -> list[RemoteFile]:
    folder = models_dir / GPT2_FOLDER
    return tokenizer_files(models_dir) + [RemoteFile(TOKENIZER_REPO, n, folder)
                                          for n in ("config.json", "model.safetensors")]


@dataclass(frozen=True)
class PlannedFile:
    remote: RemoteFile
    size: int | None  # bytes, from the pinned table (approximate where the exact size is not known)


def download_plan(name: str, models_dir: Path) -> list[PlannedFile]:
    """What `download_model(name)` would fetch, with the sizes of the pinned table: nothing is asked of the Hub."""
    builtin = BUILTINS.get(name)
    if builtin is None or not builtin.hub_repo:
        raise CaptionerError(get_hint(name).strip())
    wanted = [remote for remote in files_for(builtin, models_dir) if not remote.path.is_file()]
    return [PlannedFile(remote, pin_for(remote.repo_id, remote.filename).shown_size) for remote in wanted]


def download_model(name: str, models_dir: Path, tqdm_class=None,
                   report: Callable[[str], None] = lambda message: None) -> Manifest | Path:
    """Fetches a built-in model and everything it needs, checks that it loads, and writes its manifest.
    'gpt2' fetches the pretrained GPT-2 that training starts from."""
    if name == GPT2_FOLDER:
        return download_gpt2(models_dir, tqdm_class, report)
    if name not in BUILTINS:
        raise CaptionerError(_("Unknown model '{name}': the downloadable ones are {names} (and gpt2 for training).")
                             .format(name=name, names=", ".join(n for n, b in BUILTINS.items() if b.hub_repo)))
    builtin = BUILTINS[name]
    if not builtin.hub_repo:
        raise CaptionerError(_("'{name}' has no download mirror: get {file} from {source}, then run captioner models "
                               "import {file} --name {name}").format(name=name, file=builtin.filename,
                                                                    source=_(builtin.source)))
    installed = models_dir / name / MANIFEST_NAME
    if installed.is_file():
        try:
            manifest = read_manifest(installed, models_dir)
            if not manifest_files(manifest, models_dir)[1]:
                report(_("Model '{name}' is already installed.").format(name=name))
                return manifest
        except CaptionerError:
            pass  # a broken manifest is rewritten below
    for remote in files_for(builtin, models_dir):
        if remote.folder.name == name:  # the checkpoint: hf_hub_download resumes or confirms it, then it is checked
            report(_("Downloading {file} from {repo}").format(file=remote.filename, repo=remote.repo_id))
            download_file(remote, tqdm_class)
        else:  # shared files (tokenizer, CLIP), perhaps brought by an earlier download
            _fetch_unless_sound(remote, models_dir, tqdm_class, report)
    manifest = builtin.manifest(models_dir / name)
    verify_weights(manifest, models_dir)
    _record_safetensors_copy(manifest)
    manifest.save()  # last: a download cut off before this line leaves no model that the next start trusts
    return manifest


def _record_safetensors_copy(manifest: Manifest) -> None:
    from .checkpoint import safetensors_copy_of

    copy = safetensors_copy_of(manifest.weights_path)
    if copy != manifest.weights_path and copy.is_file():
        record([copy])


def verify_weights(manifest: Manifest, models_dir: Path) -> None:
    """Checks that the checkpoint fits the manifest (keys and shapes) and writes its safetensors copy."""
    from .checkpoint import load_weights
    from .clip_encoder import load_clip_encoder
    from .model import build_clipcap

    clip = load_clip_encoder(manifest.clip, manifest.clip_weights_path, manifest.clip_model_path, models_dir)
    build_clipcap(manifest, load_weights(manifest.weights_path), clip.output_dim, manifest.weights_path)


# ---------------------------------------------------------------------------------------------------- import


def import_model(
    file: Path, name: str, models_dir: Path, *, mapping: str | None = None, prefix_length: int | None = None,
    clip_length: int | None = None, mapping_layers: int | None = None, normalize_prefix: bool | None = None,
    clip_model: str | None = None, clip_weights: Path | str | None = None, tokenizer: Path | None = None,
    n_head: int | None = None, tqdm_class=None, report: Callable[[str], None] = lambda message: None,
) -> Manifest:
    """Copies a checkpoint the user has into the models folder and writes its manifest.

    A built-in name (coco, conceptual, coco-transformer) brings that model's settings; options override them.
    A missing tokenizer or CLIP weights file is fetched from the Hub unless given as a file.
    """
    file = Path(file).expanduser()
    if not file.is_file():
        raise CaptionerError(_("{path}: no such file.").format(path=file))
    if not name or any(c in name for c in '/\\:*?"<>|') or name.startswith("."):
        raise CaptionerError(_("'{name}' cannot be a model name: use letters, digits, '-' and '_'.").format(name=name))
    if name == TRANSLATIONS_FOLDER:  # replacing it would take the translation models away
        raise CaptionerError(_("'{name}' is the folder of the translation models: choose another model name.").format(
            name=name))
    base = BUILTINS.get(name)
    mapping = mapping or (base.mapping if base else "mlp")
    if mapping == "transformer":
        clip_length = clip_length or (base.clip_length if base and base.clip_length else 10)
        mapping_layers = mapping_layers or (base.mapping_layers if base and base.mapping_layers else 8)
    else:
        clip_length = mapping_layers = None
    normalize_prefix = normalize_prefix if normalize_prefix is not None else bool(base and base.normalize_prefix)
    clip_model = clip_model or (base.clip_model if base else "ViT-B-32")
    if tokenizer is not None:
        for needed in TOKENIZER_FILES:
            if not (Path(tokenizer) / needed).is_file():
                raise CaptionerError(_("{folder} has no {file}: give a folder with vocab.json and merges.txt.").format(
                    folder=tokenizer, file=needed))

    # Everything is assembled and checked in a staging folder beside the final one (same depth, so the same
    # relative paths), and only then moved into place: a failed import leaves no half-made model behind.
    folder = models_dir / name
    staging = models_dir / f".{name}.importing"
    models_dir.mkdir(parents=True, exist_ok=True)
    with held(staging):  # a load meanwhile sees that this import runs, and leaves its folders alone
        _recover_interrupted_import(models_dir, name)
        staging.mkdir()
        try:
            weights = _copy_file(file, staging, file.name if file.suffix in WEIGHT_SUFFIXES else file.name + ".pt")
            if clip_model.endswith(".json"):  # an open_clip model config of the user's own
                clip_model = _copy_file(Path(clip_model), staging, Path(clip_model).name)
            clip_value = "openai"
            if clip_weights is not None and str(clip_weights) != "openai":
                clip_value = _copy_file(Path(clip_weights), staging, "clip-" + Path(clip_weights).name)
            manifest = Manifest(
                path=staging.resolve() / MANIFEST_NAME, name=name, weights=weights, mapping=mapping,
                prefix_length=prefix_length or (base.prefix_length if base else 10),
                normalize_prefix=normalize_prefix, clip=ClipSpec(clip_model, clip_value),
                tokenizer=(_copy_tokenizer(Path(tokenizer), staging) if tokenizer is not None
                           else f"../{TOKENIZER_FOLDER}"),
                clip_length=clip_length, mapping_layers=mapping_layers, gpt2_n_head=n_head or 12,
                models_dir=models_dir,
            )
            _fetch_missing_shared(manifest, models_dir, tqdm_class, report)
            verify_weights(manifest, models_dir)
            record([p for p in staging.rglob("*")
                    if p.is_file() and p.name not in (MANIFEST_NAME, "checksums.json")])
            manifest.save()
            if folder.exists():
                replaced = models_dir / f".{name}.replaced"
                shutil.rmtree(replaced, ignore_errors=True)
                folder.rename(replaced)
                staging.rename(folder)
                shutil.rmtree(replaced, ignore_errors=True)
            else:
                staging.rename(folder)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return read_manifest(folder / MANIFEST_NAME, models_dir)


def _recover_interrupted_import(models_dir: Path, name: str) -> None:
    """Clears what an import cut off (by a crash or kill) left, while holding its staging folder's lock: its
    staging folder goes, and a model it had moved aside to replace comes back, so that nothing the user had is
    lost (or goes, when the new one was already in place)."""
    shutil.rmtree(models_dir / f".{name}.importing", ignore_errors=True)
    replaced = models_dir / f".{name}.replaced"
    if replaced.is_dir() and not (models_dir / name).exists():
        replaced.rename(models_dir / name)
    shutil.rmtree(replaced, ignore_errors=True)


def recover_interrupted_imports(models_dir: Path) -> None:
    """What every load does first: clears what imports that no longer run left in the models folder (an import
    that runs holds its staging folder's lock, and is left alone)."""
    names = {path.name[1:].rsplit(".", 1)[0] for pattern in (".*.importing", ".*.replaced")
             for path in (models_dir.glob(pattern) if models_dir.is_dir() else ())}
    for name in sorted(names):
        try:
            with held(models_dir / f".{name}.importing", wait=False) as ours:
                if ours:
                    _recover_interrupted_import(models_dir, name)
        except OSError:
            pass  # a models folder that cannot be written: nothing can be cleared there


def _copy_tokenizer(source: Path, model_folder: Path) -> str:
    """Copies a tokenizer folder the user gave into the model's folder; returns the manifest's value."""
    target = model_folder / "tokenizer"
    target.mkdir()
    for needed in TOKENIZER_FILES:
        _copy_file(source / needed, target, needed)
    return "tokenizer"


def _copy_file(source: Path, folder: Path, name: str) -> str:
    """Copies a file the user gave into a model folder; returns its name there."""
    source = Path(source).expanduser()
    if not source.is_file():
        raise CaptionerError(_("{path}: no such file.").format(path=source))
    try:
        shutil.copy2(source, folder / name)
    except OSError as exc:
        raise CaptionerError(_("Could not copy {path} into {folder} ({reason}).").format(
            path=source, folder=folder, reason=exc.strerror or exc)) from None
    return name


def _fetch_missing_shared(manifest: Manifest, models_dir: Path, tqdm_class, report) -> None:
    from .clip_encoder import pretrained_weights_file

    wanted = []
    if manifest.tokenizer == f"../{TOKENIZER_FOLDER}":
        wanted += [remote for remote in tokenizer_files(models_dir) if not remote.path.is_file()]
    if manifest.clip_weights_path is None:
        try:
            pretrained_weights_file(manifest.clip.model, manifest.clip.weights, models_dir)
        except ModelFilesMissing:
            wanted.append(clip_file(manifest.clip.model, manifest.clip.weights, models_dir))
    for remote in wanted:
        _fetch_unless_sound(remote, models_dir, tqdm_class, report)
