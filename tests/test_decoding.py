"""The engine's captions agree with the reference implementation's no-cache loops, token for token."""

import pytest
import torch

from builders import reference_prefix
from captioner_gui.engine import DecodeOptions, load_model
from reference_clipcap import reference_beam, reference_greedy

STOP = 13  # '.' in GPT-2's vocabulary and in the test tokenizer


@pytest.fixture(scope="module", params=["tiny_mlp", "tiny_transformer"])
def built_and_loaded(request):
    built = request.getfixturevalue(request.param)
    return built, load_model(str(built.folder), device="cpu", precision="fp32")


def test_greedy_matches_reference_loop(built_and_loaded, images):
    built, model = built_and_loaded
    results = model.caption(images, DecodeOptions(method="greedy", max_tokens=30))
    for image, result in zip(images, results):
        assert result.tokens == reference_greedy(built.reference, reference_prefix(built, image), STOP, 30)
        assert result.text == model.tokenizer.decode(result.tokens).strip()


def test_images_get_different_captions(built_and_loaded, images):
    _, model = built_and_loaded
    texts = {r.text for r in model.caption(images, DecodeOptions(method="greedy", max_tokens=30))}
    assert len(texts) > 1  # the prefix really carries the image


def test_beam_matches_reference_beam_search(built_and_loaded, images):
    built, model = built_and_loaded
    results = model.caption(images[:3], DecodeOptions(method="beam", beam_size=4, max_tokens=25))
    for image, result in zip(images, results):
        assert result.tokens == reference_beam(built.reference, reference_prefix(built, image), STOP, 4, 25)


def test_beam_of_one_is_greedy(built_and_loaded, images):
    _, model = built_and_loaded
    greedy = model.caption(images, DecodeOptions(method="greedy", max_tokens=20))
    beam = model.caption(images, DecodeOptions(method="beam", beam_size=1, max_tokens=20))
    assert [g.tokens for g in greedy] == [b.tokens for b in beam]


@pytest.mark.parametrize("method", ["greedy", "beam", "nucleus"])
def test_batch_gives_the_same_captions_as_one_at_a_time(built_and_loaded, images, method):
    _, model = built_and_loaded
    options = DecodeOptions(method=method, beam_size=3, max_tokens=20, seed=7)
    batch = model.caption(images, options)
    singles = [model.caption([image], options)[0] for image in images]
    assert [b.tokens for b in batch] == [s.tokens for s in singles]
    assert [b.score for b in batch] == pytest.approx([s.score for s in singles], abs=1e-4)


def test_nucleus_repeats_with_a_seed_and_varies_without(built_and_loaded, images):
    _, model = built_and_loaded
    first = model.caption(images[:1], DecodeOptions(method="nucleus", seed=3, max_tokens=20))[0]
    again = model.caption(images[:1], DecodeOptions(method="nucleus", seed=3, max_tokens=20))[0]
    assert first.tokens == again.tokens
    others = {tuple(model.caption(images[:1], DecodeOptions(method="nucleus", seed=s, max_tokens=20))[0].tokens)
              for s in range(4, 9)}
    assert len(others | {tuple(first.tokens)}) > 1


def test_a_tiny_top_p_is_greedy(built_and_loaded, images):
    _, model = built_and_loaded
    greedy = model.caption(images[:2], DecodeOptions(method="greedy", max_tokens=15))
    nucleus = model.caption(images[:2], DecodeOptions(method="nucleus", top_p=1e-6, seed=1, max_tokens=15))
    assert [g.tokens for g in greedy] == [n.tokens for n in nucleus]


def test_token_limit_cuts_the_caption_and_still_returns_it(built_and_loaded, images):
    _, model = built_and_loaded
    for method in ("greedy", "beam", "nucleus"):
        [result] = model.caption(images[:1], DecodeOptions(method=method, max_tokens=5, seed=1))
        assert 1 <= len(result.tokens) <= 5
        assert result.text


def test_score_is_the_mean_log_probability(built_and_loaded, images):
    built, model = built_and_loaded
    [result] = model.caption(images[:1], DecodeOptions(method="greedy", max_tokens=8))
    prefix = reference_prefix(built, images[0])
    with torch.no_grad():
        embeds = torch.cat((prefix, built.reference.gpt.transformer.wte(torch.tensor([result.tokens]))), dim=1)
        logprobs = built.reference.gpt(inputs_embeds=embeds).logits.log_softmax(-1)[0]
    k = prefix.shape[1]
    expected = sum(float(logprobs[k - 1 + i, t]) for i, t in enumerate(result.tokens)) / len(result.tokens)
    assert result.score == pytest.approx(expected, abs=1e-4)
    assert result.seconds > 0


def test_caption_stops_after_the_full_stop(tmp_path, images):
    """Swapping '.' with a token the greedy caption first uses at step k makes it stop right there."""
    from builders import build_model_that_stops

    built, free, k = build_model_that_stops(tmp_path / "stops", images[0], STOP)
    model = load_model(str(built.folder), device="cpu", precision="fp32")
    [greedy] = model.caption(images[:1], DecodeOptions(method="greedy"))
    assert greedy.tokens == free[:k] + [STOP]
    assert greedy.text.endswith(".")
    [beam] = model.caption(images[:1], DecodeOptions(method="beam", beam_size=3))
    assert beam.tokens == reference_beam(built.reference, reference_prefix(built, images[0]), STOP, 3)


def test_captions_that_ended_leave_the_batch(tmp_path, images):
    """A caption (or a beam) that reached its full stop takes no further steps: the rows a step computes shrink as
    captions end, and every caption is still the one the reference's loops give."""
    from builders import build_model_that_stops, record_rows

    built, free, k = build_model_that_stops(tmp_path / "stops", images[0], STOP)  # the first caption ends at k
    model = load_model(str(built.folder), device="cpu", precision="fp32")
    rows_per_step = record_rows(model.lm)

    greedy = model.caption(images, DecodeOptions(method="greedy", max_tokens=20))
    assert greedy[0].tokens == free[:k] + [STOP]
    for image, result in zip(images, greedy):
        assert result.tokens == reference_greedy(built.reference, reference_prefix(built, image), STOP, 20)
    assert rows_per_step[0] == len(images) and rows_per_step[-1] < len(images)
    assert rows_per_step == sorted(rows_per_step, reverse=True)

    rows_per_step.clear()
    beams = model.caption(images[:2], DecodeOptions(method="beam", beam_size=3, max_tokens=20))
    for image, result in zip(images, beams):
        assert result.tokens == reference_beam(built.reference, reference_prefix(built, image), STOP, 3, 20)
    assert max(rows_per_step) <= 2 * 3 and min(rows_per_step) < 2 * 3
