"""The engine's choices, written once: decoding options, precisions, devices and capture targets.

Imports nothing heavy (no torch), so that the command line, the settings and the app's window can use them without
paying for torch.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from enum import StrEnum
from importlib.util import find_spec
from pathlib import Path

from captioner_gui.i18n import _

from .errors import CaptionerError

METHODS = ("greedy", "beam", "nucleus")  # how a caption is decoded (see decoding.py)
PRECISIONS = ("auto", "fp32", "int8", "fp16", "bf16")  # auto: int8 on the CPU, fp16 on CUDA (see model.py)
DEVICES = ("auto", "cpu", "cuda")  # auto: CUDA when a GPU is usable, else the CPU


@dataclass(frozen=True)
class DecodeOptions:
    method: str = "beam"
    beam_size: int = 5
    top_p: float = 0.9
    temperature: float = 1.0
    seed: int | None = None
    max_tokens: int = 67
    rerank: bool = False  # beam search: say the beam whose caption CLIP finds closest to the picture

    def check(self) -> None:
        if self.method not in METHODS:
            raise CaptionerError(_("Unknown decoding '{method}': use one of {choices}.").format(
                method=self.method, choices=", ".join(METHODS)))
        if self.beam_size < 1:
            raise CaptionerError(_("The beam size must be 1 or more."))
        if not 0.0 < self.top_p <= 1.0:
            raise CaptionerError(_("top-p must be above 0 and at most 1."))
        if self.temperature <= 0.0:
            raise CaptionerError(_("The temperature must be above 0."))
        if self.max_tokens < 1:
            raise CaptionerError(_("The token limit must be 1 or more."))


def _cuda_may_be_usable() -> bool:
    """Whether torch could find a CUDA GPU, told without importing torch (2.5 s): torch must be a CUDA build and
    NVIDIA's driver library must be installed. False means surely not; True is checked by torch itself."""
    spec = find_spec("torch")
    if spec is None or not spec.submodule_search_locations:
        return False
    version = Path(next(iter(spec.submodule_search_locations))) / "version.py"
    try:
        built_for = re.search(r"^cuda(?:: Optional\[str\])? = (.+)$", version.read_text(encoding="utf-8"), re.M)
    except OSError:
        built_for = None
    if built_for is not None and built_for.group(1).strip() == "None":
        return False
    import ctypes.util

    return ctypes.util.find_library("nvcuda" if sys.platform == "win32" else "cuda") is not None


def cuda_usable() -> bool:
    """Whether torch finds a CUDA GPU ("auto" then means CUDA). torch (2.5 s to import) is asked only on a machine
    where it may find one."""
    if not _cuda_may_be_usable():
        return False
    import torch

    return torch.cuda.is_available()


class Target(StrEnum):
    """What a hotkey, the window or `captioner describe-screen` describes. A StrEnum: each member equals its
    string, which is how the history, the settings and the single-instance socket spell it."""

    SCREEN = "screen"
    WINDOW = "window"  # the active window
    REGION = "region"  # a part of the screen the user chooses
    CLIPBOARD = "clipboard"  # the image on the clipboard
    TEXT = "text"  # read the text of the active window (the screen on Wayland)

    @property
    def is_capture(self) -> bool:
        """A picture of the screen (it may show private things, and a newer one replaces an older one)."""
        return self in CAPTURES


CAPTURES = frozenset({Target.SCREEN, Target.WINDOW, Target.REGION})  # the targets that are pictures of the screen
