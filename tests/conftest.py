import os
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ["HF_HUB_OFFLINE"] = "1"  # nothing in the tests may reach the network; the download tests set an endpoint

from builders import build_model_folder  # noqa: E402


def noise_image(seed: int, size=(64, 48)) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))


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
    """Noise and plain colours, so that even a random CLIP sees them differently."""
    rng = np.random.default_rng(0)
    plain = [Image.new("RGB", (64, 48), tuple(int(c) for c in rng.integers(0, 256, 3))) for _ in range(2)]
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
