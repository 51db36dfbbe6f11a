"""`captioner prepare`: one CLIP vector per image, written to an embeddings folder (EMB) that training reads.

    EMB/index.json             the CLIP model used, the images (id, file, split, captions) and those skipped
    EMB/embeddings.safetensors "vectors": (images, d_clip) float32, row i for index["images"][i]
    EMB/parts/                 while running: one file per finished chunk, so an interrupted run resumes
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from captioner_gui.engine.clip_encoder import load_clip_encoder
from captioner_gui.engine.errors import CaptionerError
from captioner_gui.engine.images import load_image
from captioner_gui.engine.manifest import ClipSpec, is_path_like
from captioner_gui.engine.model import resolve_device
from captioner_gui.i18n import _

from .datasets import read_dataset

INDEX = "index.json"
VECTORS = "embeddings.safetensors"
CHUNK = 256  # images per resumable part


@dataclass
class Embeddings:
    clip: ClipSpec
    images: list[dict]  # {"id", "file", "split", "captions"}
    vectors: torch.Tensor  # (len(images), d_clip)

    def split(self, name: str) -> list[int]:
        return [i for i, image in enumerate(self.images) if image["split"] == name]


def clip_spec(model: str, weights: str, quick_gelu: bool | None = None) -> ClipSpec:
    """A ClipSpec whose file paths are absolute, so that the EMB folder can be read from anywhere."""
    if is_path_like(weights):
        weights = str(Path(weights).expanduser().resolve())
    if model.endswith(".json"):
        model = str(Path(model).expanduser().resolve())
    return ClipSpec(model, weights, quick_gelu)


def prepare_embeddings(data: Path, out: Path, images_root: Path | None = None, clip_model: str = "ViT-B-32",
                       clip_weights: str = "openai", batch_size: int = 64, device: str = "auto",
                       models_dir: Path | None = None, progress: bool = True) -> Path:
    records = read_dataset(data, images_root)
    if not records:
        raise CaptionerError(_("{path} lists no images.").format(path=data))
    spec = clip_spec(clip_model, clip_weights)
    torch_device = resolve_device(device)
    encoder = load_clip_encoder(spec, Path(spec.weights) if spec.weights_is_file() else None,
                                Path(spec.model) if spec.model_is_file() else None, models_dir).to(torch_device)
    out.mkdir(parents=True, exist_ok=True)
    parts = out / "parts"
    run_key = _run_key(records, spec)
    if (parts / "run.txt").is_file() and (parts / "run.txt").read_text() != run_key:
        shutil.rmtree(parts)  # a different data set or CLIP: the old parts cannot be reused
    parts.mkdir(exist_ok=True)
    (parts / "run.txt").write_text(run_key)

    from tqdm import tqdm

    bar = tqdm(total=len(records), unit="image", desc="CLIP", disable=not progress, file=sys.stderr)
    kept: list[dict] = []
    failed: list[dict] = []
    vectors: list[torch.Tensor] = []
    for chunk_start in range(0, len(records), CHUNK):
        chunk = records[chunk_start:chunk_start + CHUNK]
        part = parts / f"part-{chunk_start // CHUNK:05d}.safetensors"
        meta = part.with_suffix(".json")
        if part.is_file() and meta.is_file():
            done = json.loads(meta.read_text())
            kept += done["kept"]
            failed += done["failed"]
            if done["kept"]:
                vectors.append(load_file(str(part))["vectors"])
            bar.update(len(chunk))
            continue
        chunk_kept, chunk_failed, chunk_vectors = [], [], []
        for start in range(0, len(chunk), batch_size):
            batch, images = [], []
            for record in chunk[start:start + batch_size]:
                captions = [c.strip() for c in record.captions if c.strip()]
                try:
                    images.append(load_image(record.path))
                except CaptionerError as exc:
                    chunk_failed.append({"file": str(record.path), "reason": str(exc)})
                    bar.write(_("skipped: {reason}").format(reason=exc), file=sys.stderr)
                    continue
                batch.append({"id": record.id, "file": str(record.path.resolve()), "split": record.split,
                              "captions": captions})
            if images:
                with torch.inference_mode():
                    pixels = encoder.pixels(images).to(torch_device)
                    chunk_vectors.append(encoder(pixels).float().cpu())
                chunk_kept += batch
            bar.update(len(chunk[start:start + batch_size]))
        tensor = torch.cat(chunk_vectors) if chunk_vectors else torch.empty(0)
        save_file({"vectors": tensor.contiguous()}, str(part))
        meta.write_text(json.dumps({"kept": chunk_kept, "failed": chunk_failed}))
        kept += chunk_kept
        failed += chunk_failed
        if chunk_vectors:
            vectors.append(tensor)
    bar.close()
    if not kept:
        raise CaptionerError(_("None of the images could be read; nothing was written."))
    save_file({"vectors": torch.cat(vectors).contiguous()}, str(out / (VECTORS + ".tmp")))
    (out / (VECTORS + ".tmp")).replace(out / VECTORS)
    index = {"version": 1, "data": str(Path(data).resolve()),
             "clip": {"model": spec.model, "weights": spec.weights, "quick_gelu": spec.quick_gelu},
             "dim": encoder.output_dim, "images": kept, "skipped": failed}
    (out / INDEX).write_text(json.dumps(index), encoding="utf-8")
    shutil.rmtree(parts)
    return out


def _run_key(records, spec: ClipSpec) -> str:
    digest = hashlib.sha256(json.dumps([spec.model, spec.weights, [str(r.path) for r in records]]).encode())
    return digest.hexdigest()


def load_embeddings(folder: Path) -> Embeddings:
    folder = Path(folder)
    if not (folder / INDEX).is_file() or not (folder / VECTORS).is_file():
        raise CaptionerError(_("{folder} is not a finished embeddings folder (run captioner prepare first, or "
                               "again to finish an interrupted run).").format(folder=folder))
    index = json.loads((folder / INDEX).read_text(encoding="utf-8"))
    clip = index["clip"]
    vectors = load_file(str(folder / VECTORS))["vectors"]
    return Embeddings(ClipSpec(clip["model"], clip["weights"], clip.get("quick_gelu")), index["images"], vectors)
