"""What the built-in models' files must be: for each file on the Hugging Face Hub, the revision it is taken at,
its size and its SHA-256. Downloads are checked against this table, not only against what the Hub answers, and
`captioner models verify` checks installed files against it.

Where a digest could not be found in a public record, the file is left unpinned here (never guessed); its
SHA-256 is then recorded in its folder when it is installed (see `checksums.json`), so that later damage is still
found.

CAPTIONER_PINS_FILE names a JSON file that replaces this table ({"repo/filename": {"revision", "size", "sha256"}}):
for tests against a stand-in Hub, and for private mirrors.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from captioner_gui.i18n import _

from .errors import CaptionerError


@dataclass(frozen=True)
class Pin:
    revision: str  # a Hub commit ("main" only where none is known)
    size: int | None  # bytes; None when unknown
    sha256: str | None  # None: unpinned, checked against the hash recorded on install
    approximate_size: int | None = None  # for showing before a download where the exact size is unknown

    @property
    def shown_size(self) -> int | None:
        return self.size or self.approximate_size


GPT2_REVISION = "607a30d783dfa663caf39e06633721c8d4cfcd7e"
CLIP_VIT_B_32_REVISION = "a6f597a30f7b82c51704746581f9a4e41421e878"

# Sources of the digests: the Hub's LFS metadata of timm/vit_base_patch32_clip_224.openai at its revision, as
# recorded by several public projects that pin it; GPT-2's vocab.json and merges.txt are byte for byte OpenAI's
# encoder.json and vocab.bpe, whose digests tiktoken pins (tiktoken_ext/openai_public.py), as projects pinning
# openai-community/gpt2 at this revision record; config.json and model.safetensors from the same records.
BUILTIN_PINS: dict[tuple[str, str], Pin] = {
    ("timm/vit_base_patch32_clip_224.openai", "open_clip_model.safetensors"): Pin(
        CLIP_VIT_B_32_REVISION, 605_143_284, "e6d1bd7789aa45192b3bf90570a789b478bae1b74ebcce7eddd908e83a2b7c31"),
    ("openai-community/gpt2", "vocab.json"): Pin(
        GPT2_REVISION, 1_042_301, "196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783"),
    ("openai-community/gpt2", "merges.txt"): Pin(
        GPT2_REVISION, 456_318, "1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5"),
    ("openai-community/gpt2", "config.json"): Pin(
        GPT2_REVISION, 665, "0daed7749b4f02b8f76240d5444551d7b08712dab4d0adb8239c56ba823bb7b4"),
    ("openai-community/gpt2", "model.safetensors"): Pin(
        GPT2_REVISION, 548_105_171, "248dfc3911869ec493c76e65bf2fcf7f615828b0254c12b473182f0f81d3a707"),
    # Unpinned: no public record of these files' digests or revisions was found. Their hash is recorded on
    # install. The approximate size is the released checkpoints' (636 MB, see the project's notes).
    ("akhaliq/CLIP-prefix-captioning-COCO-weights", "coco_weights.pt"): Pin(
        "main", None, None, approximate_size=636_000_000),
    ("akhaliq/CLIP-prefix-captioning-conceptual-weights", "conceptual_weights.pt"): Pin(
        "main", None, None, approximate_size=636_000_000),
}
UNPINNED = Pin("main", None, None)


def pins() -> dict[tuple[str, str], Pin]:
    """The table in force: the built-in one, or the file CAPTIONER_PINS_FILE names."""
    override = os.environ.get("CAPTIONER_PINS_FILE")
    if not override:
        return BUILTIN_PINS
    try:
        data = json.loads(Path(override).read_text(encoding="utf-8"))
        return {tuple(key.rsplit("/", 1)): Pin(value.get("revision", "main"), value.get("size"), value.get("sha256"))
                for key, value in data.items()}
    except (OSError, ValueError, AttributeError, TypeError) as exc:
        raise CaptionerError(_("CAPTIONER_PINS_FILE {path} cannot be read ({reason}).").format(path=override,
                                                                                             reason=exc)) from None


def pin_for(repo_id: str, filename: str) -> Pin:
    return pins().get((repo_id, filename), UNPINNED)
