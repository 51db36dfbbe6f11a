"""The CUDA path: fp16 (the GPU's default) and bf16 keep the captions, fp32 on the GPU is exact, training uses mixed
precision and learns, and `captioner benchmark` measures the GPU. These need an NVIDIA GPU; CI has none, so they
are run on a GPU machine by hand (README, "Testing on a GPU")."""

import json

import pytest
import torch

from builders import reference_prefix
from captioner_gui.engine import DecodeOptions, load_image, load_model
from captioner_gui.engine.decoding import greedy
from captioner_gui.engine.decoding import max_logit_error
from cli_helpers import one_line_error, run_captioner
from builders import noise_image
from reference_clipcap import reference_greedy
from test_training import train

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs an NVIDIA GPU with CUDA")


def logits(model, images, tokens=5):
    with torch.inference_mode():
        return model.lm.start(model.prefix(model.encode(images)), tokens)[0]


@pytest.mark.parametrize("variant", ["tiny_mlp", "tiny_transformer"])
def test_auto_is_fp16_on_the_gpu_and_close_to_fp32(variant, request, images):
    built = request.getfixturevalue(variant)
    auto = load_model(str(built.folder))
    assert auto.device.type == "cuda" and auto.precision == "fp16"
    assert next(auto.clipcap.gpt.parameters()).is_cuda and next(auto.clip.parameters()).is_cuda
    exact = load_model(str(built.folder), device="cpu", precision="fp32")
    bf16 = load_model(str(built.folder), device="cuda", precision="bf16")
    fp16_error = max_logit_error(logits(exact, images), logits(auto, images))
    bf16_error = max_logit_error(logits(exact, images), logits(bf16, images))
    print(f"{variant}: logit error fp16 {fp16_error:.4f}, bf16 {bf16_error:.4f} (standard deviations)")
    assert fp16_error < 0.05 and bf16_error < 0.3  # bf16 keeps 8 bits of mantissa, fp16 11
    # Every way of decoding, the guard's findings and re-ranking run on the GPU.
    for options in (DecodeOptions(method="greedy", max_tokens=8), DecodeOptions(method="beam", max_tokens=8, rerank=True),
                    DecodeOptions(method="nucleus", max_tokens=8, seed=3)):
        results = auto.caption(images, options)
        assert all(r.tokens and r.kind in r.kind_scores and -1 <= r.agreement <= 1 for r in results)
    with torch.inference_mode():
        on_gpu = greedy(auto.lm, auto.prefix(auto.encode(images)), auto.stop_token, 8)
        on_cpu = greedy(exact.lm, exact.prefix(exact.encode(images)), exact.stop_token, 8)
    same = sum(g.tokens == c.tokens for g, c in zip(on_gpu, on_cpu))
    assert same >= len(images) - 1, "fp16 changed the greedy caption of more than one picture"


def test_fp32_on_the_gpu_captions_the_released_layout_like_the_reference(full_mlp, tmp_path):
    """fp32 is the exact choice on a GPU too (TF32 stays off for it)."""
    image = noise_image(4, size=(320, 240))
    image.save(tmp_path / "photo.png")
    expected = reference_greedy(full_mlp.reference, reference_prefix(full_mlp, load_image(tmp_path / "photo.png")),
                                13, 20)
    result = run_captioner("caption", tmp_path / "photo.png", "--model", full_mlp.manifest, "--decoding", "greedy",
                           "--json", "--max-tokens", 20, "--device", "cuda", "--precision", "fp32")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)[0]["tokens"] == expected


def test_int8_on_the_gpu_is_one_clear_line(tiny_mlp):
    result = run_captioner("caption", tiny_mlp.folder / "clip" / "clip.safetensors", "--model", tiny_mlp.folder,
                           "--device", "cuda", "--precision", "int8")
    assert "int8 is the CPU's precision" in one_line_error(result)


def test_benchmark_measures_the_gpu():
    result = run_captioner("benchmark", "--repeats", "5", "--json", "--device", "cuda", timeout=900)
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout)
    print(json.dumps(figures, indent=1))
    assert figures["precision"] == "fp16" and figures["device"] == torch.cuda.get_device_name()
    assert 0 < figures["peak_gpu_memory_mb"] < 2000  # GPT-2 124M and ViT-B/32 in fp16 are about 0.4 GB
    assert 0 < figures["greedy_20_tokens_ms"] < figures["reference_loop_ms"]
    assert figures["logit_error_vs_fp32"] < 0.05


def gpu_scores(model, kit, precision):
    result = run_captioner("evaluate", "--model", model, "--data", kit.data, "--split", "test", "--json",
                           "--device", "cuda", "--precision", precision)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_training_on_the_gpu_learns_with_mixed_precision_and_fp16_keeps_the_captions(training_kit, tmp_path):
    out = tmp_path / "mlp"
    log = train(training_kit, out, "--lm", training_kit.lm_config, "--mapping", "mlp", "--prefix-length", "10",
                "--device", "cuda")
    assert "Training on NVIDIA" in log.stderr and "mixed precision" in log.stderr
    history = json.loads((out / "training.json").read_text())
    assert "mixed precision" in history["precision"]
    assert history["epochs"][-1]["val_loss"] < history["epochs"][0]["val_loss"]
    exact, fp16, bf16 = (gpu_scores(out, training_kit, p) for p in ("fp32", "fp16", "bf16"))
    print("GPU-trained MLP, evaluated on the GPU: fp32", exact, "fp16", fp16, "bf16", bf16)
    assert exact["BLEU-4"] > 0.12 and exact["CIDEr"] > 1.0
    for reduced in (fp16, bf16):
        assert reduced["BLEU-4"] >= 0.98 * exact["BLEU-4"] and reduced["CIDEr"] >= 0.98 * exact["CIDEr"]
    # A model trained on a GPU is an ordinary model: the CPU captions with it.
    caption = run_captioner("caption", training_kit.data / "images" / "000790.png", "--model", out, "--device", "cpu")
    assert caption.returncode == 0 and caption.stdout.split()[-1].endswith(".")
