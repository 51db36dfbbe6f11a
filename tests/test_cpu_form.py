"""The CPU's default form: int8 graphs on onnxruntime, written once from the model's weights, checked against fp32,
and run without importing torch, open_clip or transformers."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from builders import noise_image
from captioner_gui.engine import CaptionerError, DecodeOptions, load_model
from captioner_gui.engine.onnx_model import FACTS, FOLDER, GPT2, OnnxCaptioner, clip_pixels
from captioner_gui.engine.decoding import max_logit_error


def model_copy(built, tmp_path):
    folder = tmp_path / "model"
    shutil.copytree(built.folder, folder, ignore=shutil.ignore_patterns(FOLDER))
    return folder


def pictures():
    return [noise_image(seed, size) for seed, size in ((1, (64, 48)), (2, (40, 90)), (3, (120, 120)), (4, (33, 17)))]


def cosines(a, b):
    return (a * b).sum(-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))


@pytest.mark.parametrize("variant", ["tiny_mlp", "tiny_transformer"])
def test_the_cpu_default_is_the_int8_graphs_and_they_stay_close_to_fp32(variant, request):
    built = request.getfixturevalue(variant)
    fast = load_model(str(built.folder), device="cpu")
    exact = load_model(str(built.folder), device="cpu", precision="fp32")
    assert isinstance(fast, OnnxCaptioner) and fast.precision == "int8" and fast.backend == "onnxruntime"
    assert exact.backend == "torch"
    images = pictures()
    vectors, exact_vectors = fast.encode(images), exact.encode(images)
    assert cosines(vectors, exact_vectors).min() > 0.99
    error = max_logit_error(exact.lm.start(exact.prefix(exact_vectors), 5)[0],
                            fast.lm.start(fast.prefix(vectors), 5)[0])
    assert 0 < error < 0.5  # quantized, yet within half a standard deviation of the logits
    texts = ["a photo.", "a red circle above a blue square next to a small dog."]
    assert cosines(fast.encode_text(texts), exact.encode_text(texts)).min() > 0.99
    check = json.loads((built.folder / FOLDER / FACTS).read_text())["check"]
    assert check["logit_error"] < 0.5 and check["image_cosine"] > 0.99 and check["text_cosine"] > 0.99
    # Random weights put many words near a tie, so captions are compared on a trained model (test_training).
    for options in (DecodeOptions(method="greedy", max_tokens=10), DecodeOptions(beam_size=3, max_tokens=10),
                    DecodeOptions(method="nucleus", max_tokens=10, seed=1)):
        assert all(c.tokens and c.kind and -1 <= c.agreement <= 1 for c in fast.caption(images, options))


@pytest.mark.parametrize("rows", [1, 3])  # GPT-2's graph for one row, and its graph for several rows
def test_gpt2_s_graph_follows_fp32_step_after_step_with_its_cache(tiny_transformer, rows):
    """The step graph is written node by node from the weights (onnx_gpt2.py): positions, causal attention over the
    cache and the cache it returns must agree with fp32's at every step, not only at the first."""
    fast = load_model(str(tiny_transformer.folder), device="cpu")
    exact = load_model(str(tiny_transformer.folder), device="cpu", precision="fp32")
    images = (pictures() * 2)[:rows]
    prefix, exact_prefix = fast.prefix(fast.encode(images)), exact.prefix(exact.encode(images))
    logits, cache = fast.lm.start(prefix, 8)
    exact_logits, exact_cache = exact.lm.start(exact_prefix, 8)
    errors = [max_logit_error(exact_logits, logits)]
    for _ in range(6):
        tokens = exact_logits.argmax(-1)  # both are fed the same words
        logits, cache = fast.lm.step(tokens, cache)
        exact_logits, exact_cache = exact.lm.step(tokens, exact_cache)
        errors.append(max_logit_error(exact_logits, logits))
    assert cache[0].shape[2] == prefix.shape[1] + 6
    assert max(errors) < 0.5, errors


def test_a_batch_captions_as_one_picture_at_a_time(tiny_mlp):
    """Greedy decodes a row or two with GPT-2's graph for one row, whose int8 rows are independent: the same
    captions. Beams run on the graph for several rows while more than two run, which quantizes activations per
    call, so a batch can (rarely) word a caption differently from the picture alone."""
    model = load_model(str(tiny_mlp.folder), device="cpu")
    images = pictures()
    for options, alike in ((DecodeOptions(method="greedy", max_tokens=10), len(images)),
                           (DecodeOptions(beam_size=3, max_tokens=10), len(images) - 1)):
        together = model.caption(images[:2], options) + model.caption(images[2:], options)
        alone = [model.caption([image], options)[0] for image in images]
        assert sum(a.tokens == b.tokens for a, b in zip(together, alone)) >= alike, options.method
        assert [c.kind for c in together] == [c.kind for c in alone]


def test_captions_that_end_leave_gpt2_s_graphs(tmp_path):
    """A caption that ended takes no more steps: the rows fed to GPT-2's graphs shrink (the last beams running
    move to the graph for one row), and greedy captions of two pictures are still each picture's own."""
    from builders import build_model_that_stops, record_rows

    images = pictures()
    build_model_that_stops(tmp_path / "stops", images[0])
    model = load_model(str(tmp_path / "stops"), device="cpu")
    assert isinstance(model, OnnxCaptioner)
    rows = record_rows(model.lm)
    options = DecodeOptions(method="greedy", max_tokens=20)
    together = model.caption(images[:2], options)
    assert together[0].tokens[-1] == 13 and len(together[0].tokens) < 20  # the full stop
    assert rows[0] == 2 and min(rows) == 1
    assert [c.tokens for c in together] == [model.caption([image], options)[0].tokens for image in images[:2]]
    rows.clear()
    beams = model.caption(images[:2], DecodeOptions(beam_size=3, max_tokens=20))
    assert all(c.tokens for c in beams) and min(rows) < 2 * 3


def test_the_caption_runs_without_importing_torch(tiny_mlp, tmp_path):
    load_model(str(tiny_mlp.folder), device="cpu")  # writes the CPU form once
    noise_image(5, (64, 48)).save(tmp_path / "photo.png")
    program = (
        "import json, sys\n"
        "from captioner_gui.engine import DecodeOptions, load_image, load_model\n"
        f"model = load_model({str(tiny_mlp.folder)!r}, device='cpu')\n"
        f"[caption] = model.caption([load_image({str(tmp_path / 'photo.png')!r})], DecodeOptions(max_tokens=8))\n"
        "print(json.dumps({'tokens': caption.tokens, 'kind': caption.kind,\n"
        "                  'imported': [m for m in ('torch', 'open_clip', 'transformers', 'torchvision')\n"
        "                               if m in sys.modules]}))\n")
    result = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=300,
                            env={**os.environ, "QT_QPA_PLATFORM": "offscreen"})
    assert result.returncode == 0, result.stderr
    child = json.loads(result.stdout)
    assert child["imported"] == []
    [expected] = load_model(str(tiny_mlp.folder), device="cpu").caption(
        [Image.open(tmp_path / "photo.png").convert("RGB")], DecodeOptions(max_tokens=8))
    assert child["tokens"] == expected.tokens and child["kind"] == expected.kind


@pytest.mark.parametrize("size", [(64, 48), (48, 64), (224, 224), (641, 479), (20, 300), (7, 5)])
def test_pictures_are_prepared_exactly_as_open_clip_prepares_them(tiny_mlp, size):
    exact = load_model(str(tiny_mlp.folder), device="cpu", precision="fp32")
    picture = noise_image(7, size)
    cfg = exact.clip.preprocess_cfg
    ours = clip_pixels(picture, cfg["size"] if isinstance(cfg["size"], int) else cfg["size"][0], cfg["mean"],
                       cfg["std"], cfg["interpolation"], cfg["resize_mode"])
    np.testing.assert_allclose(ours, exact.clip.preprocess(picture).numpy(), atol=1e-5)


def test_the_cpu_form_is_written_again_when_the_weights_change_or_it_is_damaged(tiny_mlp, tmp_path):
    folder = model_copy(tiny_mlp, tmp_path)
    options = DecodeOptions(method="greedy", max_tokens=8)
    first = load_model(str(folder), device="cpu").caption(pictures(), options)
    graph = folder / FOLDER / GPT2
    written = graph.stat().st_mtime_ns
    # Damaged: cut in half. The next load writes it again and says the same.
    graph.write_bytes(graph.read_bytes()[: graph.stat().st_size // 2])
    again = load_model(str(folder), device="cpu").caption(pictures(), options)
    assert [c.tokens for c in again] == [c.tokens for c in first]
    # New weights (a trained model saved over the old one): written again from them.
    weights = folder / "weights.pt"
    weights.write_bytes(weights.read_bytes())
    load_model(str(folder), device="cpu")
    assert graph.stat().st_mtime_ns > written
    sources = json.loads((folder / FOLDER / FACTS).read_text())["sources"]
    assert sources["weights.pt"][1] == weights.stat().st_mtime_ns  # named within the model's folder


def test_a_copied_model_is_checked_against_its_own_files(tiny_mlp, tmp_path):
    load_model(str(tiny_mlp.folder), device="cpu")
    folder = tmp_path / "copy"
    shutil.copytree(tiny_mlp.folder, folder)  # with its CPU form
    clip = next((folder / "clip").glob("*.safetensors"))
    clip.write_bytes(clip.read_bytes()[: clip.stat().st_size // 2])
    with pytest.raises(CaptionerError, match="damaged"):
        load_model(str(folder), device="cpu")


def test_a_model_the_cpu_form_cannot_hold_runs_on_torch_int8(tiny_mlp, tmp_path, monkeypatch):
    from captioner_gui.engine import onnx_export
    from captioner_gui.engine.model import TorchCaptioner

    folder = model_copy(tiny_mlp, tmp_path)
    original = onnx_export.preprocess_facts
    monkeypatch.setattr(onnx_export, "preprocess_facts", lambda cfg: original({**cfg, "resize_mode": "longest"}))
    model = load_model(str(folder), device="cpu")
    assert isinstance(model, TorchCaptioner) and model.precision == "int8"
    assert not (folder / FOLDER).exists() and not list(folder.glob(".onnx-*"))  # nothing half-written is left
    assert model.caption(pictures()[:1], DecodeOptions(method="greedy", max_tokens=5))[0].tokens


def test_gpt2_s_tokenizer_is_transformers_own(tiny_mlp):
    """The CPU form reads GPT-2's tokenizer with the tokenizers library alone (transformers' import costs a
    second): the same ids and texts as transformers' GPT2TokenizerFast."""
    from transformers import GPT2TokenizerFast

    from captioner_gui.engine.tokenizer import load_tokenizer

    folder = load_model(str(tiny_mlp.folder), device="cpu").manifest.tokenizer_path
    ours, theirs = load_tokenizer(folder), GPT2TokenizerFast.from_pretrained(str(folder), local_files_only=True)
    assert len(ours) == len(theirs)
    for text in ("A man riding a wave on top of a surfboard.", " two  dogs\non a bed, isn't it?", "Ünïcode 中文 🙂",
                 "<|endoftext|> after", "."):
        assert ours.encode(text) == theirs.encode(text), text
    rng = np.random.default_rng(0)
    for _ in range(200):
        ids = rng.integers(0, len(theirs), rng.integers(1, 15)).tolist()
        assert ours.decode(ids) == theirs.decode(ids), ids


WRITER = """
import sys
from pathlib import Path
from captioner_gui.engine.staging import staged
with staged(Path(sys.argv[1]), ".onnx-") as work:
    work.mkdir()
    (work / "image.onnx").write_bytes(b"half")
    print(work, flush=True)
    sys.stdin.read()  # writes until told to stop
"""


def test_a_load_removes_what_a_killed_writer_left_and_keeps_what_a_live_one_writes(tiny_mlp, tmp_path):
    """kill -9 while the CPU form is written leaves its temporary folder; the next load removes it, whatever its
    age. A folder that a running process still writes is kept."""
    import signal
    import time

    folder = model_copy(tiny_mlp, tmp_path)
    child = subprocess.Popen([sys.executable, "-c", f"from captioner_gui.engine import load_model\n"
                                                    f"load_model({str(folder)!r}, device='cpu')"])
    killed = None
    while killed is None and child.poll() is None:
        killed = next((path for path in folder.glob(".onnx-*") if path.is_dir() and any(path.iterdir())), None)
        time.sleep(0.01)
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert killed is not None and killed.is_dir(), "the CPU form was written before it could be stopped"
    legacy = folder / ".onnx-abc123"  # left by an earlier captioner, which took no lock
    legacy.mkdir()
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(folder)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        live = Path(writer.stdout.readline().strip())
        assert live.parent == folder
        load_model(str(folder), device="cpu", precision="fp32")
        assert sorted(folder.glob(".onnx-*")) == [live, live.with_name(live.name + ".lock")]
        assert (live / "image.onnx").read_bytes() == b"half"
    finally:
        writer.communicate("")
    assert not list(folder.glob(".onnx-*"))  # the writer cleared its own when it ended
    assert load_model(str(folder), device="cpu").backend == "onnxruntime"
