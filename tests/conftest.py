import os
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ["HF_HUB_OFFLINE"] = "1"
# Our words and Qt's in English, whatever the language of the machine the tests run on (the programs the tests
# start inherit it); the tests of other languages choose theirs themselves.
os.environ["LANGUAGE"] = "en"
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # widgets without a screen; the X11 tests start Xvfb  # nothing in the tests may reach the network; the download tests set an endpoint

from builders import build_model_folder, noise_image  # noqa: E402


@pytest.fixture(autouse=True)
def english():
    """Each test starts in English, and a test that chose another language leaves English behind it."""
    from captioner_gui import i18n

    i18n.use("en")
    yield
    i18n.use("en")


@pytest.fixture(autouse=True, scope="session")
def model_cache(tmp_path_factory):
    """What loading keeps in the user's cache (for model folders that cannot be written) goes into the session's
    own folder, never into the cache of the user who runs the tests; the programs the tests start inherit it."""
    folder = tmp_path_factory.mktemp("cache")
    os.environ["CAPTIONER_CACHE"] = str(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_mlp(tmp_path_factory):
    """A tiny MLP model (tiny CLIP, 2-layer GPT-2, test-written tokenizer) in the released layout."""
    return build_model_folder(tmp_path_factory.mktemp("models") / "tiny-mlp", mapping="mlp", prefix_length=4)


@pytest.fixture(scope="session")
def tiny_transformer(tmp_path_factory):
    return build_model_folder(tmp_path_factory.mktemp("models") / "tiny-transformer", mapping="transformer",
                              prefix_length=4, clip_length=3, mapping_layers=2, normalize_prefix=True, seed=1)


@pytest.fixture(scope="session")
def images():
    """Noise and two-colour pictures, so that even a random CLIP sees them differently (a one-colour picture
    would be blank to the guard)."""
    rng = np.random.default_rng(0)
    plain = []
    for _ in range(2):
        picture = Image.new("RGB", (64, 48), tuple(int(c) for c in rng.integers(0, 256, 3)))
        picture.paste(tuple(int(c) for c in rng.integers(0, 256, 3)), (32, 0, 64, 48))
        plain.append(picture)
    return [noise_image(0), plain[0], noise_image(1), plain[1], noise_image(2)]


@pytest.fixture(scope="session")
def full_mlp(tmp_path_factory):
    """The released 'coco' layout at full size: ViT-B/32, MLP with K=10, GPT-2 124M; random weights."""
    return build_model_folder(tmp_path_factory.mktemp("full") / "full-mlp", clip_model="ViT-B-32", mapping="mlp",
                              prefix_length=10, gpt_layers=12, gpt_width=768, gpt_heads=12, gpt_vocab=50257,
                              gpt_init_range=0.02, weights_name="coco_weights.pt")


@pytest.fixture(scope="session")
def full_transformer(tmp_path_factory):
    """The released 'coco-transformer' layout: RN50x4, 8-layer transformer mapper, K=40, clip_length 40,
    normalized prefix, GPT-2 124M; random weights."""
    return build_model_folder(tmp_path_factory.mktemp("full") / "full-transformer", clip_model="RN50x4",
                              mapping="transformer", prefix_length=40, clip_length=40, mapping_layers=8,
                              normalize_prefix=True, gpt_layers=12, gpt_width=768, gpt_heads=12, gpt_vocab=50257,
                              gpt_init_range=0.02, weights_name="transformer_weights.pt", seed=2)


@pytest.fixture(scope="session")
def training_kit(tmp_path_factory):
    """What the learning tests start from: a synthetic set, a small random CLIP, a tokenizer trained on the
    captions, the CLIP embeddings (made by `captioner prepare`), a GPT-2 config and a GPT-2 pretrained on the
    caption text."""
    import json
    from types import SimpleNamespace

    from builders import pretrain_lm, train_tokenizer, write_lm_config, write_training_clip
    from captioner_gui.training.synth import write_synthetic_set
    from cli_helpers import run_captioner

    root = tmp_path_factory.mktemp("training")
    data = root / "synth"
    records = write_synthetic_set(data, 800, seed=0)
    clip_config, clip_weights = write_training_clip(root / "clip")
    train_captions = [c for r in records if r.split == "train" for c in r.captions]
    tokenizer = train_tokenizer(train_captions, root / "tokenizer")
    vocab = len(json.loads((tokenizer / "vocab.json").read_text()))
    lm_config = write_lm_config(root / "lm.json", vocab)
    emb = root / "emb"
    prepared = run_captioner("prepare", data, "--out", emb, "--clip-model", clip_config, "--clip-weights",
                             clip_weights, "--device", "cpu")
    assert prepared.returncode == 0, prepared.stderr
    pretrained = pretrain_lm(train_captions, tokenizer, lm_config, root / "pretrained-lm")
    return SimpleNamespace(root=root, data=data, records=records, clip_config=clip_config, clip_weights=clip_weights,
                           tokenizer=tokenizer, lm_config=lm_config, emb=emb, pretrained_lm=pretrained)
