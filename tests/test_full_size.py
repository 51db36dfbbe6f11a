"""The released checkpoints' layouts at full size (random weights): they load strictly and caption, through the
command line, to the same tokens as the reference loop."""

import json

import pytest
import torch

from builders import reference_prefix
from cli_helpers import run_captioner
from builders import noise_image
from reference_clipcap import reference_greedy

TOKENS = 20  # enough to compare; the random GPT-2 rarely says '.'


@pytest.mark.parametrize("variant", ["full_mlp", "full_transformer"])
def test_released_layout_captions_like_the_reference(variant, request, tmp_path):
    built = request.getfixturevalue(variant)
    weights = torch.load(built.weights, weights_only=True, mmap=True)
    assert len([k for k in weights if k.startswith("gpt.transformer.h.") and k.endswith(".attn.c_attn.weight")]) == 12
    image = noise_image(4, size=(320, 240))
    image.save(tmp_path / "photo.jpg", quality=100)
    from captioner_gui.engine import load_image

    expected = reference_greedy(built.reference, reference_prefix(built, load_image(tmp_path / "photo.jpg")), 13,
                                TOKENS)
    result = run_captioner("caption", tmp_path / "photo.jpg", "--model", built.manifest, "--decoding", "greedy",
                           "--json", "--max-tokens", TOKENS, "--device", "cpu", "--precision", "fp32")
    assert result.returncode == 0, result.stderr
    [entry] = json.loads(result.stdout)
    assert entry["tokens"] == expected
    assert entry["caption"] == entry["caption"].strip() and entry["caption"]
