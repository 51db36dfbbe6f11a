"""Reading and writing weights.

Released ClipCap files are pickles: they are read with `torch.load(weights_only=True)` only (unpickling anything
else would run code), cleaned, and kept as a `.safetensors` copy that later loads memory-map: beside them, or in
the user's cache where their folder cannot be written (derived.py).
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from captioner_gui.i18n import _

from .errors import ManifestError, ModelFilesMissing, first_line
from .staging import staged

if TYPE_CHECKING:
    from .derived import Places

StateDict = dict[str, torch.Tensor]

# Buffers that old transformers releases kept in GPT-2's attention; current ones reject them as unexpected keys.
OBSOLETE_SUFFIXES = (".attn.bias", ".attn.masked_bias")
TIED_HEAD = "gpt.lm_head.weight"
TIED_EMBEDDING = "gpt.transformer.wte.weight"


def safetensors_copy_of(path: Path, folder: Path | None = None) -> Path:
    """The .safetensors copy of a released .pt: beside it, or in `folder` (its model's folder in the cache)."""
    return (folder or path.parent) / path.with_suffix(".safetensors").name


def fresh_copy(path: Path, places: Places | None = None) -> Path | None:
    """The .safetensors copy of a released .pt, if one exists that is not older than the .pt: beside it, or in
    the first of `places` (see derived.Places) that holds one."""
    for folder in places.holding() if places else [path.parent]:
        copy = safetensors_copy_of(path, folder)
        if copy.is_file() and (not path.exists() or copy.stat().st_mtime >= path.stat().st_mtime):
            return copy
    return None


def load_weights(path: Path, hint: str = "", places: Places | None = None) -> StateDict:
    """Reads a ClipCap checkpoint (.safetensors, or a released .pt that gets a .safetensors copy on first load, in
    the first of `places` that can be written: beside it by default)."""
    if path.suffix != ".safetensors":
        path = fresh_copy(path, places) or path
    if not path.is_file():
        raise ModelFilesMissing(_("Model weights are missing: looked for {path}.").format(path=path) + hint)
    if path.suffix == ".safetensors":
        return untie(read_safetensors(path))
    state = clean_released_state(read_torch_pickle(path))
    keep_copy(state, path, places)
    return state


def keep_copy(state: StateDict, path: Path, places: Places | None = None) -> Path | None:
    """Writes the .safetensors copy of a released .pt in the first of `places` where it can be written. None where
    it can be written nowhere (read-only or full): that only costs speed, the .pt loads again next time."""
    from safetensors import SafetensorError

    for folder in places or [path.parent]:
        copy = safetensors_copy_of(path, folder)
        try:
            folder.mkdir(parents=True, exist_ok=True)
            save_safetensors(state, copy)
            return copy
        except (OSError, SafetensorError):  # safetensors says that the disk is full or read-only in its own way
            continue
    return None


def read_safetensors(path: Path) -> StateDict:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path))  # memory-mapped: pages are read as the model touches them
    except (SafetensorError, OSError, ValueError, TypeError) as exc:
        raise ManifestError(damaged_message(path, _reason(exc))) from None


def damaged_message(path: Path, reason: str) -> str:
    """The one line for a weights file that cannot be trusted."""
    return _("{path} is damaged ({reason}). Download or import the model again.").format(path=path, reason=reason)


def _reason(exc: BaseException) -> str:
    return first_line(exc).removeprefix("Error while deserializing header: ")


def read_safetensors_header(path: Path) -> dict:
    """The JSON header of a safetensors file, after the safetensors library has checked it against the file: every
    tensor's byte range lies in the file, the ranges follow each other without gap or overlap up to the file's
    end, and each range holds exactly shape x dtype bytes. A cut or altered file fails here, before any tensor
    is read. The header's length is returned under '__header_size__'."""
    import json
    import struct

    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt"):
            pass
        with path.open("rb") as file:
            (size,) = struct.unpack("<Q", file.read(8))
            header = json.loads(file.read(size))
    except FileNotFoundError:
        raise ModelFilesMissing(_("Model weights are missing: looked for {path}.").format(path=path)) from None
    except (SafetensorError, OSError, ValueError, TypeError, struct.error) as exc:
        raise ManifestError(damaged_message(path, _("cut short or altered: {reason}").format(reason=_reason(exc)))
                            ) from None
    header["__header_size__"] = size
    return header


def read_torch_pickle(path: Path) -> StateDict:
    try:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError:  # files from before torch 1.6 are not zip archives and cannot be memory-mapped
            state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise ManifestError(_("{path} holds more than plain tensors and is refused, since loading it could run code "
                              "({reason}).").format(path=path, reason=exc)) from exc
    except (RuntimeError, EOFError, OSError, ValueError) as exc:
        raise ManifestError(_("{path} is not a readable PyTorch checkpoint ({reason}). Download it again.").format(
            path=path, reason=exc)) from exc
    for key in ("state_dict", "model"):  # checkpoints saved by training scripts sometimes nest the weights
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ManifestError(_("{path} does not hold a dictionary of tensors (a state dict).").format(path=path))
    return state


def clean_released_state(state: StateDict) -> StateDict:
    """Drops the obsolete GPT-2 attention buffers and a `module.` prefix left by DataParallel."""
    cleaned = {}
    for key, tensor in state.items():
        if key.startswith("module."):
            key = key[len("module."):]
        if key.startswith("gpt.") and key.endswith(OBSOLETE_SUFFIXES):
            continue
        cleaned[key] = tensor
    return untie(cleaned)


def untie(state: StateDict) -> StateDict:
    """GPT-2's output layer shares the token embedding; a file may hold it once or twice."""
    if TIED_HEAD not in state and TIED_EMBEDDING in state:
        state = dict(state)
        state[TIED_HEAD] = state[TIED_EMBEDDING]
    return state


def save_safetensors(state: StateDict, path: Path) -> None:
    """Writes atomically (a temporary file, then a rename), storing a tied output layer once."""
    from safetensors.torch import save_file

    head, embedding = state.get(TIED_HEAD), state.get(TIED_EMBEDDING)
    if head is not None and embedding is not None and (head is embedding or torch.equal(head, embedding)):
        state = {k: v for k, v in state.items() if k != TIED_HEAD}
    tensors = {k: v.detach().contiguous().cpu() for k, v in state.items()}
    # In a locked temporary folder (see staging.py): safetensors writes a temporary file of its own beside the file.
    with staged(path.parent, f".{path.name}-") as work:
        work.mkdir()
        save_file(tensors, str(work / path.name))
        os.replace(work / path.name, path)


def read_clip_weights(path: Path) -> tuple[RenamedWeights, RenamedWeights]:
    """An open_clip weights file (whole CLIP or image tower only) -> (image tower's weights, the rest: the text
    tower's, empty for an image-tower file). A safetensors file is read one tensor at a time, when asked for."""
    if path.suffix == ".safetensors":
        source, copy = WeightsReader(path), False
    else:
        source, copy = read_torch_pickle(path), True  # memory-mapped tensors: copied as they are taken
    names = {k[len("module."):] if k.startswith("module.") else k: k for k in source.keys()}
    visual = {k[len("visual."):]: original for k, original in names.items() if k.startswith("visual.")}
    if not visual:
        raise ManifestError(_("{path} holds no CLIP image-tower weights (no 'visual.' keys).").format(path=path))
    text = {k: original for k, original in names.items() if not k.startswith("visual.")}
    return RenamedWeights(source, visual, copy), RenamedWeights(source, text, copy)


class RenamedWeights(Mapping):
    """A read-only view of some of a file's tensors under other names; each is read when asked for, so that a
    model can be loaded (and converted) one layer at a time."""

    def __init__(self, source, names: dict[str, str], copy: bool):
        self.source, self.names, self.copy = source, names, copy

    def __getitem__(self, key: str) -> torch.Tensor:
        tensor = self.source[self.names[key]]
        return tensor.clone() if self.copy else tensor

    def __iter__(self):
        return iter(self.names)

    def __len__(self) -> int:
        return len(self.names)


_SAFETENSORS_DTYPES = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16, "F64": torch.float64,
                       "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8,
                       "U8": torch.uint8, "BOOL": torch.bool}


class WeightsReader:
    """Reads a safetensors file one tensor at a time into ordinary memory (no memory map).

    For loads that convert weights as they go (int8): each full-precision tensor lives only while its layer is
    converted, so the whole file is never resident at once."""

    def __init__(self, path: Path):
        self.path = path
        header = read_safetensors_header(path)
        self.data_start = 8 + header.pop("__header_size__")
        self.entries = {k: v for k, v in header.items() if k != "__metadata__"}
        unusable = sorted({e["dtype"] for e in self.entries.values()} - _SAFETENSORS_DTYPES.keys())
        if unusable:
            raise ManifestError(damaged_message(path, _("it holds tensors of type {dtype}, which captioner cannot "
                                                        "use").format(dtype=unusable[0])))

    @property
    def tied(self) -> bool:
        """Whether GPT-2's output layer is its token embedding (stored once)."""
        return TIED_HEAD not in self.entries

    def keys(self) -> list[str]:
        keys = list(self.entries)
        return keys + ([TIED_HEAD] if TIED_HEAD not in self.entries and TIED_EMBEDDING in self.entries else [])

    def shapes(self) -> StateDict:
        """Every tensor as an empty 'meta' tensor of the right shape: enough to check a model against the file."""
        return {k: torch.empty(self._entry(k)["shape"], dtype=_SAFETENSORS_DTYPES[self._entry(k)["dtype"]],
                               device="meta") for k in self.keys()}

    def _entry(self, key: str) -> dict:
        return self.entries[TIED_EMBEDDING if key == TIED_HEAD and key not in self.entries else key]

    def __getitem__(self, key: str) -> torch.Tensor:
        entry = self._entry(key)
        start, end = entry["data_offsets"]
        dtype = _SAFETENSORS_DTYPES[entry["dtype"]]
        tensor = torch.empty(entry["shape"], dtype=dtype)
        with self.path.open("rb") as file:
            file.seek(self.data_start + start)
            read = file.readinto(tensor.view(-1).view(torch.uint8).numpy())  # straight into the tensor's memory
        if read != end - start:  # the file shrank since it was opened
            raise ManifestError(damaged_message(self.path, _("tensor {key} is cut short").format(key=key)))
        return tensor


def weights_reader(path: Path, hint: str = "", places: Places | None = None) -> WeightsReader | None:
    """A reader for a checkpoint's safetensors form (made from a released .pt on first use, see load_weights);
    None where no safetensors form can be written anywhere, so that the caller loads it whole."""
    if path.suffix != ".safetensors":
        if fresh_copy(path, places) is None:
            load_weights(path, hint, places)  # converts the .pt once
        path = fresh_copy(path, places)
        if path is None:
            return None
    if not path.is_file():
        raise ModelFilesMissing(_("Model weights are missing: looked for {path}.").format(path=path) + hint)
    return WeightsReader(path)
