"""The ClipCap engine: load a model from its manifest, then caption PIL images. Never imports Qt.

    from captioner_gui.engine import load_model, DecodeOptions
    model = load_model("coco")
    [result] = model.caption([image], DecodeOptions(method="greedy"))

Names are imported when first used, so that code which only lists or downloads models (the app's window) does not
pay for importing torch.
"""

from importlib import import_module
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # what type checkers and editors see; at run time __getattr__ imports each name on first use
    from .errors import (CaptionerError, DownloadCancelled, DownloadError, GPUOutOfMemory, ImageError,
                         ManifestError, ModelFilesMissing)
    from .images import find_images, load_image, load_image_bytes, to_rgb
    from .manifest import Manifest, read_manifest
    from .captioner import Caption, Captioner
    from .options import DEVICES, METHODS, PRECISIONS, DecodeOptions, Target
    from .store import (BUILTINS, default_models_dir, download_model, download_plan, import_model, list_models,
                        load_model)

_WHERE = {
    "DecodeOptions": "options", "DEVICES": "options", "METHODS": "options", "PRECISIONS": "options",
    "Target": "options",
    "CaptionerError": "errors", "DownloadCancelled": "errors", "DownloadError": "errors", "GPUOutOfMemory": "errors",
    "ImageError": "errors",
    "ManifestError": "errors", "ModelFilesMissing": "errors",
    "find_images": "images", "load_image": "images", "load_image_bytes": "images", "to_rgb": "images",
    "Manifest": "manifest", "read_manifest": "manifest",
    "Caption": "captioner", "Captioner": "captioner",
    "BUILTINS": "store", "default_models_dir": "store", "download_model": "store", "download_plan": "store",
    "import_model": "store", "list_models": "store", "load_model": "store",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f".{_WHERE[name]}", __name__), name)
