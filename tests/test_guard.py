"""The guard: blank pictures, the kind of picture, and how the result is worded."""

import json

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw, ImageFilter

from captioner_gui.engine import DecodeOptions, load_model
from captioner_gui.engine.guard import KIND_PROMPTS, KindGuard, is_blank, wording
from cli_helpers import run_captioner
from builders import noise_image


def photo_like(size=(640, 480), seed=0) -> Image.Image:
    """Soft shapes on a gradient with sensor noise, as a photo has."""
    rng = np.random.default_rng(seed)
    picture = Image.linear_gradient("L").resize(size).convert("RGB")
    draw = ImageDraw.Draw(picture)
    for _ in range(6):
        x, y = rng.integers(0, size[0]), rng.integers(0, size[1])
        draw.ellipse((x, y, x + 120, y + 90), fill=tuple(int(c) for c in rng.integers(0, 256, 3)))
    pixels = np.asarray(picture.filter(ImageFilter.GaussianBlur(3)), dtype=np.float32)
    return Image.fromarray(np.clip(pixels + rng.normal(0, 4, pixels.shape), 0, 255).astype(np.uint8))


def text_page(text: str, size=(1280, 800)) -> Image.Image:
    page = Image.new("RGB", size, "white")
    ImageDraw.Draw(page).text((40, 40), text, fill="black")
    return page


@pytest.mark.parametrize("picture, blank", [
    (Image.new("RGB", (1280, 800)), True),  # a black screen
    (Image.new("RGB", (800, 600), (40, 90, 200)), True),  # one colour
    (Image.fromarray(np.clip(np.random.default_rng(0).normal(20, 2, (800, 1280, 3)), 0, 255).astype(np.uint8)),
     True),  # a screen curtain with faint noise
    (noise_image(0, (640, 480)), False),
    (text_page("Invoice 2026-11: total due 42.00 EUR"), False),
    (text_page("OK"), False),  # one short word on an empty page
    (text_page("OK", size=(3840, 2160)), False),  # ... on a 4K screen
    (photo_like(), False),
])
def test_blank_pictures_and_the_others(picture, blank):
    assert is_blank(picture) is blank


class PromptEncoder:
    """A stand-in for CLIP's text tower: each kind's prompts point along one axis, a caption along the last."""

    def __call__(self, texts):
        kinds = list(KIND_PROMPTS)
        vectors = np.zeros((len(texts), len(kinds) + 1), dtype=np.float32)
        for row, text in enumerate(texts):
            owner = [k for k, prompts in KIND_PROMPTS.items() if text in prompts]
            vectors[row, kinds.index(owner[0]) if owner else len(kinds)] = 1.0
        return vectors


def picture_vector(**weights):
    kinds = list(KIND_PROMPTS)
    vector = np.zeros((1, len(kinds) + 1), dtype=np.float32)
    for name, weight in weights.items():
        vector[0, kinds.index(name) if name in kinds else len(kinds)] = weight
    return vector


def test_the_kind_is_the_closest_prompt_group_and_the_agreement_is_a_cosine():
    guard = KindGuard(PromptEncoder())
    [(scores, agreement)] = guard.judge(picture_vector(document=1.0), ["a page"])
    assert max(scores, key=scores.get) == "document" and scores["document"] > 0.99
    assert abs(sum(scores.values()) - 1) < 1e-3
    assert agreement == pytest.approx(0.0, abs=1e-4)
    [(scores, agreement)] = guard.judge(picture_vector(photo=0.6, caption=0.8), ["a dog"])
    assert max(scores, key=scores.get) == "photo" and agreement == pytest.approx(0.8, abs=1e-3)


def test_wording_starts_with_the_kind_and_hedges_what_is_not_a_photo():
    photo = {"photo": 0.9, "screenshot": 0.05, "document": 0.05}
    assert wording("a dog on a couch", "photo", photo, 0.31) == "Photo: A dog on a couch."
    assert wording("a dog on a couch", "photo", photo, 0.12) == "Photo. Could be: A dog on a couch."
    screen = {"photo": 0.1, "screenshot": 0.5, "document": 0.4}
    assert wording("a man surfing", "screenshot", screen, 0.2) == \
        "Screenshot of an application, mostly text. Could be: A man surfing."
    assert wording("a cat", "document", {"document": 0.8}, 0.3) == "Page of text. Could be: A cat."
    assert wording("a cat", None, {}, None) == "A cat."  # no text tower: the caption alone
    assert wording(" ", "screenshot", screen, 0.1) == "Screenshot of an application, mostly text. No description."
    assert wording("", None, {}, None) == "No description."


def test_the_engine_reports_the_guard_in_every_result(tiny_mlp, images):
    model = load_model(str(tiny_mlp.folder), device="cpu")
    black = Image.new("RGB", (64, 48))
    results = model.caption([images[0], black, images[1]], DecodeOptions(method="greedy", max_tokens=8))
    assert [r.blank for r in results] == [False, True, False]
    assert results[1].text == "" and results[1].tokens == [] and results[1].spoken == "The image is blank."
    for result in (results[0], results[2]):
        assert result.kind in KIND_PROMPTS and abs(sum(result.kind_scores.values()) - 1) < 1e-3
        assert -1.0 <= result.agreement <= 1.0
        assert result.spoken.startswith(("Photo", "Screenshot", "Page of text", "Chart", "Drawing"))
    # The same captions as without the guard: it only adds findings.
    plain = model.caption([images[0], images[1]], DecodeOptions(method="greedy", max_tokens=8), guard=False)
    assert [p.text for p in plain] == [results[0].text, results[2].text]
    assert plain[0].kind is None


def test_the_command_line_json_carries_the_findings(tiny_mlp, tmp_path):
    noise_image(3).save(tmp_path / "noise.png")
    Image.new("RGB", (64, 48), (250, 250, 250)).save(tmp_path / "white.png")
    result = run_captioner("caption", tmp_path / "noise.png", tmp_path / "white.png", "--model", tiny_mlp.folder,
                           "--decoding", "greedy", "--max-tokens", "6", "--json")
    assert result.returncode == 0, result.stderr
    noise, white = json.loads(result.stdout)
    assert noise["blank"] is False and noise["kind"] in KIND_PROMPTS and set(noise["kind_scores"]) == set(KIND_PROMPTS)
    assert white["blank"] is True and white["caption"] == "" and white["kind"] is None
    text = run_captioner("caption", tmp_path / "white.png", "--model", tiny_mlp.folder)
    assert text.stdout.strip() == "The image is blank."


def test_the_text_tower_reads_only_up_to_the_end_of_the_text_and_matches_open_clip(tiny_mlp):
    model = load_model(str(tiny_mlp.folder), device="cpu", precision="fp32")
    texts = ["a photo.", "a red circle above a blue square next to a small dog.", "a chart."]
    text = model.clip.text
    expected = text.clip.encode_text(text.tokenizer(texts), normalize=True)
    assert torch.allclose(text(texts), expected, atol=1e-5)


def test_rerank_says_the_beam_clip_finds_closest(tiny_mlp, images):
    from captioner_gui.engine.decoding import beam_search
    from captioner_gui.engine.guard import closest

    model = load_model(str(tiny_mlp.folder), device="cpu", precision="fp32")
    plain = model.caption(images, DecodeOptions(beam_size=4, max_tokens=8))
    reranked = model.caption(images, DecodeOptions(beam_size=4, max_tokens=8, rerank=True))
    vectors = model.encode(images)
    changed = 0
    for index, (first, chosen) in enumerate(zip(plain, reranked)):
        [decoded] = beam_search(model.lm, model.prefix(vectors[index:index + 1]), model.stop_token, 8, 4)
        texts = [model.tokenizer.decode(c.tokens).strip() for c in decoded.candidates]
        assert len(texts) == 4 and texts[0] == first.text  # beam search's own best comes first
        assert chosen.text == texts[closest(model.kind_guard, vectors[index], texts)]
        changed += chosen.text != first.text
    assert changed > 0  # CLIP disagrees with the language model somewhere, so the option does something
