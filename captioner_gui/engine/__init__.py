"""The ClipCap engine: load a model from its manifest, then caption PIL images. Never imports Qt.

    from captioner_gui.engine import load_model, DecodeOptions
    model = load_model("coco")
    [result] = model.caption([image], DecodeOptions(method="greedy"))
"""

from .decoding import DecodeOptions
from .errors import CaptionerError, DownloadError, ImageError, ManifestError, ModelFilesMissing
from .images import find_images, load_image, to_rgb
from .manifest import Manifest, read_manifest
from .model import Caption, Captioner
from .store import default_models_dir, download_model, import_model, list_models, load_model

__all__ = [
    "Caption", "Captioner", "CaptionerError", "DecodeOptions", "DownloadError", "ImageError", "Manifest",
    "ManifestError", "ModelFilesMissing", "default_models_dir", "download_model", "find_images", "import_model",
    "list_models", "load_image", "load_model", "read_manifest", "to_rgb",
]
