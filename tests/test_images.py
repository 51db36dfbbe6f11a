"""Every kind of image a user may hand over is captioned as an upright RGB picture, or reported clearly."""

import io

import numpy as np
import pytest
from PIL import Image

from captioner_gui.engine import ImageError, load_image


def save(path, image, **params):
    image.save(path, **params)
    return path


def test_plain_rgb_png(tmp_path):
    image = load_image(save(tmp_path / "a.png", Image.new("RGB", (40, 30), (10, 200, 30))))
    assert image.mode == "RGB" and image.size == (40, 30) and image.getpixel((0, 0)) == (10, 200, 30)


def test_cmyk_jpeg_becomes_rgb(tmp_path):
    image = load_image(save(tmp_path / "c.jpg", Image.new("CMYK", (32, 32), (0, 255, 255, 0))))
    assert image.mode == "RGB"
    r, g, b = image.getpixel((16, 16))
    assert r > 200 and g < 60 and b < 60  # magenta and yellow ink make red


def test_sixteen_bit_greyscale_keeps_its_tones(tmp_path):
    pixels = np.full((20, 20), 32768, dtype=np.uint16)  # mid-grey in 16 bits
    image = load_image(save(tmp_path / "g16.png", Image.fromarray(pixels)))
    assert image.mode == "RGB"
    assert image.getpixel((5, 5)) == (128, 128, 128)  # not clipped to white


def test_palette_image(tmp_path):
    image = load_image(save(tmp_path / "p.gif", Image.new("RGB", (10, 10), (0, 0, 255)).convert("P")))
    assert image.mode == "RGB" and image.getpixel((1, 1))[2] > 200


def test_transparency_is_flattened_on_white(tmp_path):
    rgba = Image.new("RGBA", (10, 10), (255, 0, 0, 0))
    rgba.putpixel((0, 0), (255, 0, 0, 255))
    image = load_image(save(tmp_path / "t.png", rgba))
    assert image.getpixel((5, 5)) == (255, 255, 255)
    assert image.getpixel((0, 0)) == (255, 0, 0)


def test_transparent_palette_gif(tmp_path):
    p = Image.new("P", (8, 8), 1)
    p.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    image = load_image(save(tmp_path / "t.gif", p, transparency=1))
    assert image.getpixel((3, 3)) == (255, 255, 255)


def test_exif_rotated_photo_is_turned_upright(tmp_path):
    wide = Image.new("RGB", (60, 20), (0, 0, 0))
    wide.paste((255, 255, 255), (0, 0, 10, 20))  # white band on the left
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to view"
    image = load_image(save(tmp_path / "r.jpg", wide, exif=exif, quality=95))
    assert image.size == (20, 60)
    assert sum(image.getpixel((10, 5))) > 600  # the white band is now on top


def test_animated_gif_gives_its_first_frame(tmp_path):
    frames = [Image.new("RGB", (10, 10), c) for c in ((255, 0, 0), (0, 255, 0), (0, 0, 255))]
    path = tmp_path / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100)
    image = load_image(path)
    assert image.getpixel((5, 5))[0] > 200 and image.getpixel((5, 5))[1] < 50


@pytest.mark.parametrize("content, fragment", [
    (b"", "empty"),
    (b"this is not a picture at all", "not an image"),
])
def test_files_that_are_not_images(tmp_path, content, fragment):
    path = tmp_path / "x.png"
    path.write_bytes(content)
    with pytest.raises(ImageError, match=fragment):
        load_image(path)


def test_truncated_image(tmp_path):
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (200, 200, 3), dtype=np.uint8)).save(buffer, "PNG")
    path = tmp_path / "cut.png"
    path.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    with pytest.raises(ImageError, match="damaged or truncated"):
        load_image(path)


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(ImageError, match="no such file"):
        load_image(tmp_path / "nope.jpg")
    with pytest.raises(ImageError, match="folder"):
        load_image(tmp_path)


def test_decompression_bomb_is_refused(tmp_path):
    # A 1-bit PNG of 20000 x 20000 pixels is a few kilobytes on disk and 400 million pixels in memory.
    path = save(tmp_path / "bomb.png", Image.new("1", (20000, 20000)))
    assert path.stat().st_size < 200_000
    with pytest.raises(ImageError, match="too large"):
        load_image(path)


@pytest.mark.parametrize("kind", ["tEXt", "zTXt"])
def test_a_png_with_a_text_chunk_over_the_limit_says_so(tmp_path, kind):
    """A PNG whose picture is fine but whose notes (a 65 MB tEXt chunk, a zTXt chunk of 2 MB once unpacked) are
    over Pillow's limits: said as that, not as a damaged file."""
    import struct
    import zlib

    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 10, 10)).save(buffer, "PNG")
    png = buffer.getvalue()
    text = b"x" * (65 * 2**20) if kind == "tEXt" else b"\0" + zlib.compress(b"x" * (2 * 2**20))
    data = b"Comment\0" + text
    chunk = struct.pack(">I", len(data)) + kind.encode() + data + struct.pack(">I", zlib.crc32(kind.encode() + data))
    path = tmp_path / "notes.png"
    path.write_bytes(png[:33] + chunk + png[33:])  # after the header chunk
    with pytest.raises(ImageError) as raised:
        load_image(path)
    assert "text chunk" in str(raised.value) and "larger than the limit" in str(raised.value)
    assert "damaged" not in str(raised.value)
