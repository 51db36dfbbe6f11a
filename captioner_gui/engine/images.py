"""Reading images from disk and turning any PIL image into the upright RGB picture CLIP expects."""

from __future__ import annotations

import io
import math
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, PngImagePlugin, UnidentifiedImageError

from captioner_gui.i18n import _

from .errors import ImageError

IMAGE_SUFFIXES = (
    ".jpg", ".jpeg", ".png", ".gif", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm", ".pnm", ".ico",
    ".jfif", ".tga", ".avif",
)
# An image is decoded whole, so the number of its pixels bounds the memory it takes: the app takes images up to
# 60 million pixels (240 MB at the 4 bytes a pixel of transparent or CMYK images). Pillow's own guard, far higher
# (179 million), stays as a second line. JPEGs larger than this are decoded at a reduced scale instead.
MAX_PIXELS = 60_000_000
# Images are kept at full size up to this (an 8K screen, 7680x4320, has 33.2 million pixels: its text stays
# readable); larger ones are reduced right after decoding. CLIP itself looks at 224 pixels.
FULL_SIZE_PIXELS = 36_000_000


def load_image(path: str | Path) -> Image.Image:
    """Opens an image file and returns it as upright RGB; raises ImageError with a readable reason."""
    path = Path(path)
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise ImageError(_("{path}: no such file.").format(path=path)) from None
    except OSError as exc:
        raise ImageError(_("{path}: cannot be read ({reason}).").format(path=path, reason=exc.strerror or exc)
                         ) from None
    if path.is_dir():
        raise ImageError(_("{path}: is a folder, not an image.").format(path=path))
    if size == 0:
        raise ImageError(_("{path}: the file is empty.").format(path=path))
    return _open(path, str(path))


def load_image_bytes(data: bytes, name: str | None = None) -> Image.Image:
    """An image held in memory (the clipboard's), as upright RGB; raises ImageError naming it `name` (by default
    "The image", in the user's language)."""
    name = _("The image") if name is None else name
    if not data:
        raise ImageError(_("{name}: is empty.").format(name=name))
    return _open(io.BytesIO(data), name)


def _open(source, name: str) -> Image.Image:
    try:
        with warnings.catch_warnings():
            # Images between 1x and 2x Pillow's pixel limit only warn; they are large but real photos.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(source) as opened:
                _decode_reduced(opened)
                _check_size(opened, name)
                opened.load()
                image = _reduced(opened)
                rgb = to_rgb(image)
                return rgb if rgb is not opened else opened.copy()  # the file's image is closed on leaving
    except Image.DecompressionBombError:
        raise ImageError(_("{name}: the image is too large (over {limit} million pixels, an 8K screen has 33 "
                           "million). Save a smaller copy and try again.").format(
                               name=name, limit=f"{MAX_PIXELS / 1e6:.0f}")) from None
    except UnidentifiedImageError:
        raise ImageError(_("{name}: not an image, or a kind of image this program cannot read.").format(name=name)
                         ) from None
    except PermissionError:
        raise ImageError(_("{name}: permission denied.").format(name=name)) from None
    except ValueError as exc:
        if "MAX_TEXT" not in str(exc):  # Pillow's words for a PNG's text chunks over its limits
            raise _damaged(name, exc) from None
        raise ImageError(_("{name}: a text chunk (notes stored with the picture) is larger than the limit: {chunk} "
                           "MB for a compressed one, {total} MB in all. Save a copy without its notes and try "
                           "again.").format(
                               name=name, chunk=f"{PngImagePlugin.MAX_TEXT_CHUNK / 2**20:g}",
                               total=f"{PngImagePlugin.MAX_TEXT_MEMORY / 2**20:g}")) from None
    except (OSError, SyntaxError, EOFError) as exc:
        raise _damaged(name, exc) from None


def _damaged(name: str, exc: Exception) -> ImageError:
    # Pillow says "image file is truncated", "broken data stream", ... for damaged files.
    return ImageError(_("{name}: the image is damaged or truncated ({reason}).").format(name=name, reason=exc))


def _decode_reduced(image: Image.Image) -> None:
    """A JPEG over FULL_SIZE_PIXELS is decoded at 1/2, 1/4 or 1/8 scale (the largest that fits), never whole."""
    if image.format != "JPEG" or image.width * image.height <= FULL_SIZE_PIXELS:
        return
    scale = next((s for s in (2, 4, 8) if image.width * image.height / s**2 <= FULL_SIZE_PIXELS), 8)
    image.draft(image.mode, (math.ceil(image.width / scale), math.ceil(image.height / scale)))


def _check_size(image: Image.Image, name: str) -> None:
    pixels = image.width * image.height
    if pixels > MAX_PIXELS:
        raise ImageError(_("{name}: the image is too large ({width}x{height}, {pixels} million pixels; the limit is "
                           "{limit} million, an 8K screen has 33). Save a smaller copy and try again.").format(
                               name=name, width=image.width, height=image.height, pixels=f"{pixels / 1e6:.0f}",
                               limit=f"{MAX_PIXELS / 1e6:.0f}"))


def _reduced(image: Image.Image) -> Image.Image:
    """An image over FULL_SIZE_PIXELS, reduced by a whole factor right after decoding (before any conversion
    makes copies of it at full size); others as they are."""
    pixels = image.width * image.height
    if pixels <= FULL_SIZE_PIXELS:
        return image
    factor = math.ceil(math.sqrt(pixels / FULL_SIZE_PIXELS))
    if image.mode in ("1", "P", "PA") or image.mode.startswith("I;16"):  # averaging palette indices means nothing
        size = (max(1, image.width // factor), max(1, image.height // factor))
        reduced = image.resize(size, Image.Resampling.NEAREST)
    else:
        reduced = image.reduce(factor)
    reduced.info.update(image.info)  # the EXIF orientation, a palette's transparency
    return reduced


def to_rgb(image: Image.Image) -> Image.Image:
    """Any PIL image -> upright 8-bit RGB: first frame, EXIF rotation applied, transparency on white."""
    if getattr(image, "n_frames", 1) > 1:
        image.seek(0)
    if image.width == 0 or image.height == 0:
        raise ImageError(_("the image has no pixels (zero width or height)."))
    if image.getexif().get(0x0112, 1) != 1:  # an EXIF orientation other than "upright"
        image = ImageOps.exif_transpose(image)
    mode = image.mode
    if mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        image = _high_depth_to_l(image)
        mode = "L"
    if mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    elif mode in ("LA", "PA", "La", "RGBa") or (mode in ("L", "RGB") and "transparency" in image.info):
        image = image.convert("RGBA")
    if image.mode == "RGBA":  # on white, without full-size copies beyond the result
        background = Image.new("RGB", image.size, (255, 255, 255))
        background.paste(image, (0, 0), image)
        return background
    return image.convert("RGB") if image.mode != "RGB" else image


def _high_depth_to_l(image: Image.Image) -> Image.Image:
    """16-bit, 32-bit and float greyscale scaled into 0..255 (Pillow's own convert would clip them to white)."""
    pixels = np.asarray(image, dtype=np.float64)
    if image.mode.startswith("I;16"):
        pixels = pixels / 257.0
    elif image.mode == "F" and pixels.size and pixels.max() <= 1.0 and pixels.min() >= 0.0:
        pixels = pixels * 255.0
    elif pixels.size and pixels.max() > 255:
        pixels = pixels / (65535.0 / 255.0 if pixels.max() <= 65535 else pixels.max() / 255.0)
    return Image.fromarray(np.clip(pixels, 0, 255).round().astype(np.uint8))


def find_images(folder: Path, recursive: bool = False) -> list[Path]:
    """Image files in a folder (by extension), sorted, hidden files skipped."""
    pattern = "**/*" if recursive else "*"
    found = [
        p for p in folder.glob(pattern)
        if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
        and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    ]
    return sorted(found)
