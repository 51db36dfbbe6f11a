"""Training on the synthetic set: the model learns, the reference code's bugs are fixed, runs survive
interruptions, and the same command works under torchrun."""

import json

import pytest
import torch

from cli_helpers import run_captioner

FAST = ["--batch-size", "32", "--warmup", "50", "--device", "cpu"]


def train(kit, out, *extra, epochs=15, lr="2e-3"):
    result = run_captioner("train", kit.emb, "--out", out, "--tokenizer", kit.tokenizer, "--epochs", epochs,
                           "--lr", lr, *FAST, *extra)
    assert result.returncode == 0, result.stderr
    return result


def scores(model, kit, precision="auto"):
    result = run_captioner("evaluate", "--model", model, "--data", kit.data, "--split", "test", "--json",
                           "--device", "cpu", "--precision", precision)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def untrained_scores(training_kit, tmp_path_factory):
    """The same pipeline with a learning rate so small that nothing is learned: the floor to beat."""
    out = tmp_path_factory.mktemp("untrained") / "model"
    train(training_kit, out, "--lm", training_kit.lm_config, epochs=1, lr="1e-12")
    return scores(out, training_kit)


def test_mlp_with_fine_tuned_gpt2_learns_to_caption(training_kit, untrained_scores, tmp_path):
    out = tmp_path / "mlp"
    log = train(training_kit, out, "--lm", training_kit.lm_config, "--mapping", "mlp", "--prefix-length", "10")
    assert "epoch 15/15" in log.stderr
    result = scores(out, training_kit)
    print("MLP + fine-tuned GPT-2:", result, "untrained:", untrained_scores)
    assert result["BLEU-4"] > 0.12 and result["CIDEr"] > 1.0
    assert untrained_scores["BLEU-4"] < 0.01 and untrained_scores["CIDEr"] < 0.05
    # The CPU's default, int8, keeps the captions: no more than 2% below fp32 on BLEU-4 and CIDEr.
    exact = scores(out, training_kit, "fp32")
    print("fp32:", exact)
    assert result["BLEU-4"] >= 0.98 * exact["BLEU-4"] and result["CIDEr"] >= 0.98 * exact["CIDEr"]
    history = json.loads((out / "training.json").read_text())["epochs"]
    assert history[-1]["val_loss"] < history[0]["val_loss"]
    # The model folder is a model like any other: `captioner caption` uses it as it is.
    caption = run_captioner("caption", training_kit.data / "images" / "000790.png", "--model", out, "--device", "cpu")
    words = caption.stdout.split()
    assert caption.returncode == 0 and words[-1].endswith(".")
    assert any(w in words for w in ("red", "green", "blue", "yellow"))


def test_transformer_with_frozen_gpt2_learns_to_caption(training_kit, untrained_scores, tmp_path):
    out = tmp_path / "transformer"
    train(training_kit, out, "--lm", training_kit.pretrained_lm, "--mapping", "transformer", "--freeze-lm",
          "--prefix-length", "8", "--clip-length", "4", "--layers", "2", "--no-normalize-prefix", epochs=25,
          lr="3e-3")
    result = scores(out, training_kit)
    print("transformer + frozen GPT-2:", result)
    assert result["BLEU-4"] > 0.03 and result["CIDEr"] > 0.4
    # GPT-2 stayed frozen: its weights are those it was pretrained with.
    from safetensors.torch import load_file

    trained = load_file(str(out / "model.safetensors"))
    pretrained = load_file(str(training_kit.pretrained_lm / "model.safetensors"))
    assert torch.equal(trained["gpt.transformer.h.0.attn.c_attn.weight"], pretrained["transformer.h.0.attn.c_attn.weight"])
