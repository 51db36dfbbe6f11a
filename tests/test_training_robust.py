"""The training pipeline's promises beyond learning: the reference's bugs fixed, data layouts read, interrupted
runs resumed, a full disk and a killed process survived, and torchrun."""

import errno
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from captioner_gui.engine import CaptionerError, DecodeOptions, load_image, load_model
from captioner_gui.training.datasets import read_dataset
from cli_helpers import run_captioner

FAST = ["--batch-size", "32", "--warmup", "10", "--lr", "2e-3", "--device", "cpu"]


# ---------------------------------------------------------------------------------------------------- data


def test_synthetic_captions_say_what_is_drawn(training_kit):
    from captioner_gui.training.synth import COLOURS

    splits = [r.split for r in training_kit.records]
    assert (splits.count("train"), splits.count("val"), splits.count("test")) == (640, 80, 80)
    for record in training_kit.records[:40]:
        image = load_image(record.path)
        present = {name for name, rgb in COLOURS.items()
                   if any(max(abs(a - b) for a, b in zip(pixel, rgb)) < 10 for _, pixel in image.getcolors(1 << 16))}
        named = {w for c in record.captions for w in c.rstrip(".").split() if w in COLOURS}
        assert named == present, (record.captions, present)
        assert all(c.endswith(".") for c in record.captions)


def test_the_three_data_layouts(training_kit, tmp_path):
    jsonl = read_dataset(training_kit.data)
    coco = read_dataset(training_kit.data / "captions_test.json")
    assert len(jsonl) == 800 and len(coco) == 80 and {r.split for r in coco} == {"test"}
    by_id = {r.id: r for r in jsonl}
    assert coco[0].captions == by_id[coco[0].id].captions and coco[0].path == by_id[coco[0].id].path
    karpathy = tmp_path / "dataset_coco.json"
    karpathy.write_text(json.dumps({"images": [
        {"filepath": "images", "filename": "000001.png", "split": "restval", "cocoid": 1,
         "sentences": [{"raw": "A cat.", "tokens": ["a", "cat"]}]},
        {"filepath": "images", "filename": "000002.png", "split": "test", "cocoid": 2,
         "sentences": [{"raw": "A dog.", "tokens": ["a", "dog"]}]}]}))
    records = read_dataset(karpathy, images_root=training_kit.data)
    assert [(r.id, r.split, r.captions) for r in records] == [("1", "train", ["A cat."]), ("2", "test", ["A dog."])]
    assert records[0].path == training_kit.data / "images" / "000001.png"


def test_prepare_skips_unreadable_images_and_resumes(training_kit, tmp_path):
    data = tmp_path / "data"
    (data / "images").mkdir(parents=True)
    lines = []
    for i in range(5):
        source = training_kit.records[i]
        (data / "images" / f"{i}.png").write_bytes(source.path.read_bytes())
        lines.append({"image": f"images/{i}.png", "caption": source.captions[0]})
    (data / "images" / "2.png").write_bytes(b"not a picture")
    lines.append({"image": "images/missing.png", "caption": "a lost picture."})
    (data / "captions.jsonl").write_text("\n".join(json.dumps(line) for line in lines))
    emb = tmp_path / "emb"
    args = ["prepare", data, "--out", emb, "--clip-model", training_kit.clip_config, "--clip-weights",
            training_kit.clip_weights, "--device", "cpu", "--batch-size", "2"]
    result = run_captioner(*args)
    assert result.returncode == 0, result.stderr
    index = json.loads((emb / "index.json").read_text())
    assert [i["id"] for i in index["images"]] == ["images/0.png", "images/1.png", "images/3.png", "images/4.png"]
    assert len(index["skipped"]) == 2 and "2.png" in result.stderr and "missing.png" in result.stderr
    assert index["clip"]["model"] == str(training_kit.clip_config) and index["dim"] == 128
    from safetensors.torch import load_file

    vectors = load_file(str(emb / "embeddings.safetensors"))["vectors"]
    assert vectors.shape == (4, 128)  # one vector per image, not per caption

    # An interrupted run left a finished part behind: the next run reuses it instead of computing it again.
    parts = emb / "parts"
    parts.mkdir()
    from captioner_gui.training.prepare import _run_key, clip_spec

    (parts / "run.txt").write_text(_run_key(read_dataset(data), clip_spec(str(training_kit.clip_config),
                                                                          str(training_kit.clip_weights))))
    marker = torch.full((4, 128), 7.0)
    from safetensors.torch import save_file

    save_file({"vectors": marker}, str(parts / "part-00000.safetensors"))
    (parts / "part-00000.json").write_text(json.dumps({"kept": index["images"], "failed": []}))
    assert run_captioner(*args).returncode == 0
    assert torch.equal(load_file(str(emb / "embeddings.safetensors"))["vectors"], marker)
    assert not parts.exists()


# ---------------------------------------------------------------------------------------------------- loss


def test_padding_is_masked_and_left_out_of_the_loss_and_a_real_bang_is_learned(tiny_mlp):
    """Token 0 is '!' in GPT-2's vocabulary: the reference padded with 0 and ignored it in the loss."""
    from captioner_gui.training.train import CaptionLoss

    model = load_model(str(tiny_mlp.folder), device="cpu", precision="fp32")
    clipcap = model.clipcap
    vectors = torch.randn(2, 32)
    tokens = torch.tensor([[64, 0, 13, 0, 0], [64, 13, 0, 0, 0]])  # "a!." and "a." padded with 0
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 0, 0, 0]], dtype=torch.bool)
    loss = CaptionLoss(clipcap)(vectors, tokens, mask)
    # By hand: the logits at prefix_length-1+i predict token i; only real tokens count, the '!' included.
    k = clipcap.prefix_length
    with torch.no_grad():
        embeds = torch.cat((clipcap.prefix(vectors), clipcap.gpt.transformer.wte(tokens)), dim=1)
        attention = torch.cat((torch.ones(2, k, dtype=torch.long), mask.long()), dim=1)
        logprobs = clipcap.gpt(inputs_embeds=embeds, attention_mask=attention).logits.log_softmax(-1)
    terms = [-logprobs[b, k - 1 + i, tokens[b, i]] for b in range(2) for i in range(5) if mask[b, i]]
    assert float(loss) == pytest.approx(float(sum(terms) / len(terms)), rel=1e-5)
    # The padded positions have no say: changing what is written there changes nothing.
    assert float(CaptionLoss(clipcap)(vectors, tokens.masked_fill(~mask, 77), mask)) == pytest.approx(float(loss))


def test_captions_are_tokenized_once_with_a_stop_and_long_ones_cut(tiny_mlp):
    from captioner_gui.training.prepare import Embeddings
    from captioner_gui.engine.manifest import ClipSpec
    from captioner_gui.training.train import tokenize_captions

    model = load_model(str(tiny_mlp.folder), device="cpu")
    images = [{"captions": ["a red circle", "", "a blue square."]}, {"captions": ["two " * 200 + "cats."]}]
    embeddings = Embeddings(ClipSpec("x", "y"), images, torch.zeros(2, 4))
    data, stats = tokenize_captions(embeddings, [0, 1], model.tokenizer, None, context=50)
    assert stats["captions"] == 3 and stats["empty_skipped"] == 1 and stats["cut"] == 1
    assert data.tokens.shape[1] == 50  # longer than GPT-2's context: cut to it
    first = data.tokens[0][data.mask[0]].tolist()
    assert model.tokenizer.decode(first) == "a red circle."  # a stop was added
    before = data.mask.clone()
    data2, _ = tokenize_captions(embeddings, [0, 1], model.tokenizer, None, context=50)
    assert torch.equal(data2.mask, before)  # masks are computed, never written back into the data


# ---------------------------------------------------------------------------------------------------- runs


def test_a_killed_run_leaves_a_loadable_model_and_resumes(training_kit, tmp_path):
    out = tmp_path / "model"
    command = [sys.executable, "-m", "captioner_gui", "train", str(training_kit.emb), "--out", str(out),
               "--lm", str(training_kit.lm_config), "--tokenizer", str(training_kit.tokenizer), "--epochs", "40",
               *FAST]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    while time.time() < deadline and not (out / "training.json").exists():
        time.sleep(0.2)
    time.sleep(1.0)  # now somewhere inside a later epoch, or in the middle of saving one
    process.send_signal(signal.SIGKILL)
    process.wait()
    saved_epochs = json.loads((out / "training.json").read_text())["epochs"]
    assert 1 <= len(saved_epochs) < 40
    model = load_model(str(out), device="cpu")  # the last checkpoint is complete
    assert model.caption([load_image(training_kit.records[700].path)], DecodeOptions(method="greedy"))[0].text

    again = run_captioner("train", training_kit.emb, "--out", out, "--epochs", "40", *FAST)
    assert "--resume" in again.stderr and again.returncode == 1  # an existing run is never overwritten
    resumed = run_captioner("train", training_kit.emb, "--out", out, "--resume", "--epochs",
                            str(len(saved_epochs) + 2), *FAST)
    assert resumed.returncode == 0, resumed.stderr
    epochs = json.loads((out / "training.json").read_text())["epochs"]
    assert [e["epoch"] for e in epochs] == list(range(1, len(saved_epochs) + 3))
    assert f"epoch {len(saved_epochs) + 1}/{len(saved_epochs) + 2}" in resumed.stderr


def test_resume_refuses_embeddings_from_another_clip(training_kit, tmp_path):
    out = tmp_path / "model"
    assert run_captioner("train", training_kit.emb, "--out", out, "--lm", training_kit.lm_config, "--tokenizer",
                         training_kit.tokenizer, "--epochs", "1", *FAST).returncode == 0
    other = tmp_path / "other-emb"
    other.mkdir()
    index = json.loads((training_kit.emb / "index.json").read_text())
    index["clip"] = {"model": "ViT-B-32", "weights": "openai", "quick_gelu": None}
    (other / "index.json").write_text(json.dumps(index))
    (other / "embeddings.safetensors").write_bytes((training_kit.emb / "embeddings.safetensors").read_bytes())
    result = run_captioner("train", other, "--out", out, "--resume", "--epochs", "2", *FAST)
    assert result.returncode == 1 and "CLIP" in result.stderr and "ViT-B-32" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_full_disk_keeps_the_last_checkpoint(training_kit, tmp_path, monkeypatch):
    from captioner_gui.training import train as training
    from captioner_gui.training.options import TrainOptions

    out = tmp_path / "model"
    options = TrainOptions(lm=str(training_kit.lm_config), tokenizer=str(training_kit.tokenizer), epochs=1,
                           batch_size=16, accumulate=2, warmup=10, lr=2e-3, device="cpu")
    training.train(training_kit.emb, out, options, progress=False)
    before = (out / "model.safetensors").read_bytes()
    first = json.loads((out / "training.json").read_text())["epochs"][0]
    assert first["val_loss"] < 5.5  # gradient accumulation trained it (untrained: about ln(vocab) = 5.8)

    def disk_full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(training, "save_safetensors", disk_full)
    options.epochs = 2
    with pytest.raises(CaptionerError, match="No space left on device.*epoch 1 is intact"):
        training.train(training_kit.emb, out, options, resume=True, progress=False)
    assert (out / "model.safetensors").read_bytes() == before
    assert not list(out.glob("*.tmp"))
    load_model(str(out), device="cpu")


def test_torchrun_with_two_cpu_processes(training_kit, tmp_path):
    import socket

    with socket.socket() as probe:  # a port that is free now, on this machine only
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    out = tmp_path / "ddp"
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
               "--master_port", str(port),
               "-m", "captioner_gui", "train", str(training_kit.emb), "--out", str(out), "--lm",
               str(training_kit.lm_config), "--tokenizer", str(training_kit.tokenizer), "--epochs", "3", *FAST]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stderr.count("epoch 3/3") == 1  # one process reports and saves
    history = json.loads((out / "training.json").read_text())["epochs"]
    assert len(history) == 3 and history[-1]["train_loss"] < history[0]["train_loss"]
    caption = run_captioner("caption", training_kit.records[750].path, "--model", out, "--device", "cpu")
    assert caption.returncode == 0 and caption.stdout.strip().endswith(".")
