"""Images too big for memory: the app's own pixel limit, and the memory a large accepted image takes (measured
in a child process, against the same process with a small image)."""

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from captioner_gui.engine import ImageError, load_image
from captioner_gui.engine.guard import is_blank

MEASURE = """
import json, sys, time
from captioner_gui.engine import DecodeOptions, load_image, load_model

def status(field):
    with open("/proc/self/status") as file:
        return next(int(line.split()[1]) / 1024 for line in file if line.startswith(field + ":"))

model = load_model(sys.argv[1], device="cpu")
with open("/proc/self/clear_refs", "w") as file:
    file.write("5")  # the peak (VmHWM) starts again from here: loading's own peak does not hide the image's
before, started = status("VmRSS"), time.perf_counter()
try:
    [result] = model.caption([load_image(sys.argv[2])], DecodeOptions(method="greedy", max_tokens=3))
    outcome = "blank" if result.blank else result.text
except Exception as exc:
    outcome = f"{type(exc).__name__}: {exc}"
print(json.dumps({"outcome": outcome, "extra_mb": round(status("VmHWM") - before),
                  "model_mb": round(before), "seconds": round(time.perf_counter() - started, 2)}))
"""


def measure(model_folder, image_path):
    result = subprocess.run([sys.executable, "-c", MEASURE, str(model_folder), str(image_path)],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("size, mode", [((13000, 13000), "RGB"), ((8000, 8000), "RGBA")])
def test_an_image_over_the_limit_is_refused_in_one_line_and_little_memory(tiny_mlp, tmp_path, size, mode):
    path = tmp_path / "big.png"
    Image.new(mode, size).save(path)
    small = tmp_path / "small.png"
    Image.new("RGB", (64, 48), (200, 10, 10)).save(small)
    big, baseline = measure(tiny_mlp.folder, path), measure(tiny_mlp.folder, small)
    print(f"{size} {mode}: {big}, baseline {baseline}")
    assert big["outcome"].startswith("ImageError") and "too large" in big["outcome"]
    assert big["extra_mb"] - baseline["extra_mb"] < 300 and big["seconds"] < 5


@pytest.mark.parametrize("mode", ["RGBA", "RGB"])
def test_an_8k_screenshot_is_kept_at_full_size_within_the_memory_budget(tiny_mlp, tmp_path, mode):
    screen = Image.new(mode, (7680, 4320), (255, 255, 255))
    screen.paste((0, 0, 0), (100, 100, 160, 120))  # a word on an empty page: not blank
    path = tmp_path / "screen.png"
    screen.save(path)
    loaded = load_image(path)
    assert loaded.size == (7680, 4320) and loaded.mode == "RGB"  # full size, for reading its text
    assert not is_blank(loaded)
    small = tmp_path / "small.png"
    Image.new("RGB", (64, 48), (200, 10, 10)).save(small)
    big, baseline = measure(tiny_mlp.folder, path), measure(tiny_mlp.folder, small)
    print(f"8K {mode}: {big}, baseline {baseline}")
    assert not big["outcome"].startswith(("ImageError", "MemoryError"))
    assert big["extra_mb"] - baseline["extra_mb"] < 300


def test_a_large_image_under_the_limit_is_reduced_right_after_decoding(tmp_path):
    path = tmp_path / "wide.png"
    Image.new("L", (9000, 5000), 128).save(path)  # 45 million pixels: accepted, but more than an 8K screen
    image = load_image(path)
    assert image.size == (4500, 2500) and image.getpixel((10, 10)) == (128, 128, 128)


def test_a_huge_jpeg_is_decoded_at_a_reduced_scale(tmp_path):
    path = tmp_path / "huge.jpg"
    Image.new("RGB", (12000, 9000), (20, 120, 220)).save(path, quality=80)  # 108 million pixels
    image = load_image(path)
    assert image.width * image.height <= 36_000_000 and image.width >= 3000


def test_the_blank_check_reads_the_whole_screen(tmp_path):
    screen = Image.new("RGB", (7680, 4320), (0, 0, 0))
    assert is_blank(screen)
    screen.paste((255, 255, 255), (5000, 3000, 5010, 3006))  # 60 pixels stand out: a short word
    assert not is_blank(screen)
    noise = np.clip(np.random.default_rng(0).normal(40, 2, (1080, 1920)), 0, 255).astype(np.uint8)
    assert is_blank(Image.fromarray(noise))  # faint noise on a dark screen


def test_the_limit_message_says_what_to_do(tmp_path):
    path = tmp_path / "big.png"
    Image.new("1", (9000, 9000)).save(path)
    with pytest.raises(ImageError, match=r"too large \(9000x9000, 81 million pixels; the limit is 60 million, an "
                                         r"8K screen has 33\)\. Save a smaller copy"):
        load_image(path)
