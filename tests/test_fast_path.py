"""The fast decoding path: the lean GPT-2 computes what transformers' GPT-2 computes, int8 is the CPU's default
and keeps the captions, and `captioner benchmark` reports every figure."""

import json

import pytest
import torch

from builders import reference_prefix
from captioner_gui.engine import DecodeOptions, load_model
from captioner_gui.engine.decoding import beam_search, greedy
from captioner_gui.engine.model import PrefixLM
from captioner_gui.engine.fast_gpt2 import FastGPT2, FastPrefixLM
from captioner_gui.engine.decoding import max_logit_error
from captioner_gui.engine.quantize import quantize_linears
from cli_helpers import one_line_error, run_captioner


@pytest.mark.parametrize("variant", ["tiny_mlp", "tiny_transformer"])
def test_lean_gpt2_in_fp32_matches_transformers(variant, request, images):
    built = request.getfixturevalue(variant)
    model = load_model(str(built.folder), device="cpu", precision="fp32")
    exact = PrefixLM(model.clipcap.gpt)
    lean = FastPrefixLM(FastGPT2.from_transformers(model.clipcap.gpt))
    prefix = torch.cat([reference_prefix(built, image) for image in images])
    with torch.inference_mode():
        assert max_logit_error(exact.start(prefix, 5)[0], lean.start(prefix, 5)[0]) < 1e-4
        assert [d.tokens for d in greedy(exact, prefix, 13, 30)] == [d.tokens for d in greedy(lean, prefix, 13, 30)]
        assert ([d.tokens for d in beam_search(exact, prefix, 13, 20, 4)]
                == [d.tokens for d in beam_search(lean, prefix, 13, 20, 4)])


def test_lean_gpt2_follows_transformers_as_captions_end(tmp_path, images):
    """Captions and beams that end leave the batch: the lean GPT-2's cache shrinks (or grows, when a beam goes on
    twice) with them and keeps giving transformers' captions."""
    from builders import build_model_that_stops, record_rows

    built, _, _ = build_model_that_stops(tmp_path / "stops", images[0])
    model = load_model(str(built.folder), device="cpu", precision="fp32")
    exact = PrefixLM(model.clipcap.gpt)
    lean = FastPrefixLM(FastGPT2.from_transformers(model.clipcap.gpt))
    rows = record_rows(lean)
    prefix = torch.cat([reference_prefix(built, image) for image in images])
    with torch.inference_mode():
        assert [d.tokens for d in greedy(exact, prefix, 13, 20)] == [d.tokens for d in greedy(lean, prefix, 13, 20)]
        assert min(rows) < len(images)
        rows.clear()
        assert ([d.tokens for d in beam_search(exact, prefix[:2], 13, 20, 3)]
                == [d.tokens for d in beam_search(lean, prefix[:2], 13, 20, 3)])
        assert min(rows) < 2 * 3


def test_int8_is_the_cpu_default_and_stays_close(tiny_mlp, images):
    fast = load_model(str(tiny_mlp.folder), device="cpu")
    exact = load_model(str(tiny_mlp.folder), device="cpu", precision="fp32")
    assert fast.precision == "int8" and exact.precision == "fp32"
    with torch.inference_mode():
        error = max_logit_error(exact.lm.start(exact.prefix(exact.encode(images)), 5)[0],
                                fast.lm.start(fast.prefix(fast.encode(images)), 5)[0])
    assert 0 < error < 0.5  # quantized, yet within half a standard deviation of the logits
    results = fast.caption(images, DecodeOptions(method="beam", max_tokens=10))
    assert all(r.text and len(r.tokens) <= 10 for r in results)


def test_int8_layers_compute_what_torch_ao_quantization_computes():
    """quantize_linears builds its int8 layers itself (faster to load); they must equal torch.ao's own."""
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(48, 96), torch.nn.GELU(), torch.nn.Linear(96, 40, bias=False))
    with torch.no_grad():
        model[0].weight[3] = 0  # a row of zeros: the scale must not divide by zero
    theirs = quantize_dynamic(model, {"0": per_channel_dynamic_qconfig, "2": per_channel_dynamic_qconfig},
                              dtype=torch.qint8, inplace=False)
    ours = quantize_linears(model)
    assert type(ours[0]) is type(theirs[0]) and (ours[2].in_features, ours[2].out_features) == (96, 40)
    inputs = torch.randn(5, 48) * 3
    with torch.inference_mode():
        assert torch.equal(ours(inputs), theirs(inputs))
        assert torch.equal(ours[0].weight().int_repr(), theirs[0].weight().int_repr())


def test_wrong_precision_for_the_device_is_one_clear_line(tiny_mlp):
    result = run_captioner("caption", tiny_mlp.folder / "clip" / "clip.safetensors", "--model",
                           tiny_mlp.folder, "--device", "cpu", "--precision", "fp16")
    assert "fp16 is for CUDA GPUs" in one_line_error(result)


def test_benchmark_reports_every_figure():
    result = run_captioner("benchmark", "--repeats", "1", "--json", "--device", "cpu", timeout=900)
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout)
    for key in ("clip_ms", "prefix_and_first_token_ms", "per_token_ms", "greedy_20_tokens_ms", "beam5_20_tokens_ms",
                "folder_images_per_s", "reference_loop_ms", "transformers_generate_ms", "speedup_vs_reference",
                "speedup_vs_generate", "load_s", "launch_to_caption_s", "imports_s", "peak_memory_mb",
                "logit_error_vs_fp32"):
        assert figures[key] > 0, key
    assert figures["imports_s"] < figures["launch_to_caption_s"]
    assert figures["precision"] == "int8" and figures["model"] == "random"
    assert figures["reference_loop_ms"] > figures["greedy_20_tokens_ms"]


def test_gpt2_shapes_are_transformers_own():
    """The int8 load checks the weights against gpt2_shapes instead of building transformers' GPT-2 (whose import
    costs half a second): both must name the same tensors with the same shapes."""
    from transformers import GPT2Config, GPT2LMHeadModel

    from captioner_gui.engine.model import gpt2_shapes

    for config in (GPT2Config(n_layer=2, n_embd=64, n_head=4, vocab_size=300, n_positions=128),
                   GPT2Config(n_layer=1, n_embd=32, n_head=2, n_inner=80, vocab_size=50, n_positions=40)):
        with torch.device("meta"):
            model = GPT2LMHeadModel(config)
        assert gpt2_shapes(config) == {key: tuple(t.shape) for key, t in model.state_dict().items()}
