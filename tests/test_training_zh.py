"""Captions in Simplified Chinese: the synthetic set's Chinese captions, scores on characters, a captioner trained
on Chinese captions with a BPE learned from them, and how a Chinese model's captions come out at inference."""

import json

import pytest
from safetensors.torch import load_file

from captioner_gui.engine import CaptionerError, DecodeOptions, ManifestError, load_image, load_model
from captioner_gui.engine.language import character_tokens, tidy
from captioner_gui.engine.tokenizer import load_tokenizer
from captioner_gui.training.evaluate import evaluate_files
from captioner_gui.training.synth import COLOURS, ZH_COLOURS, Group, captions_for, write_synthetic_set
from cli_helpers import run_captioner

FAST = ["--batch-size", "32", "--warmup", "50", "--device", "cpu"]


# ---------------------------------------------------------------------------------------------------- the set


def test_chinese_captions_count_with_measure_words_and_say_where():
    one = Group(1, "red", "circle", "small")
    assert captions_for([one], None, "zh") == ["一个红色的小圆形。", "一个红色的圆形。"]
    two, three = Group(2, "blue", "square", "big"), Group(3, "yellow", "triangle", "small")
    assert captions_for([two, three], "above", "zh") == ["两个蓝色的正方形在三个黄色的三角形上面。",
                                                         "三个黄色的小三角形在两个蓝色的大正方形下面。"]
    assert captions_for([three, one], "left of", "zh")[0] == "三个黄色的三角形在一个红色的圆形左边。"
    assert captions_for([three, one], "right of", "zh")[1] == "一个红色的小圆形在三个黄色的小三角形左边。"


def chinese_for(english: str) -> str:
    """The English caption in Chinese, as a person would put it: the count with its measure word, the colour, the
    size before the noun, and the place after what it is relative to ("A above B" is "A在B上面")."""
    counts, sizes, places = {"a": "一个", "two": "两个", "three": "三个"}, {"small": "小", "big": "大"}, {
        "above": "上面", "below": "下面", "left of": "左边", "right of": "右边"}
    shapes = {"circle": "圆形", "square": "正方形", "triangle": "三角形"}

    def group(words: str) -> str:
        count, *size, colour, shape = words.split()
        return f"{counts[count]}{ZH_COLOURS[colour]}的{sizes[size[0]] if size else ''}{shapes[shape.rstrip('s')]}"

    text = english.removesuffix(".")
    for relation, place in places.items():
        if f" {relation} " in text:
            first, second = text.split(f" {relation} ")
            return f"{group(first)}在{group(second)}{place}。"
    return f"{group(text)}。"


def test_the_same_seed_draws_the_same_pictures_with_chinese_captions(tmp_path):
    english = write_synthetic_set(tmp_path / "en", 40, seed=5)
    chinese = write_synthetic_set(tmp_path / "zh", 40, seed=5, language="zh")
    for en, zh in zip(english, chinese):
        assert en.path.read_bytes() == zh.path.read_bytes() and en.split == zh.split
        assert zh.captions == [chinese_for(caption) for caption in en.captions]
        image = load_image(zh.path)
        present = {name for name, rgb in COLOURS.items()
                   if any(max(abs(a - b) for a, b in zip(pixel, rgb)) < 10 for _, pixel in image.getcolors(1 << 16))}
        named = {name for name, chinese_name in ZH_COLOURS.items() if any(chinese_name in c for c in zh.captions)}
        assert named == present, (zh.captions, present)
    lines = (tmp_path / "zh" / "captions.jsonl").read_text(encoding="utf-8")
    assert chinese[0].captions[0] in lines  # written as characters people can read, not \\u escapes


def test_synth_command_writes_chinese(tmp_path):
    result = run_captioner("synth", tmp_path / "set", "--count", "6", "--language", "zh")
    assert result.returncode == 0, result.stderr
    first = json.loads((tmp_path / "set" / "captions.jsonl").read_text(encoding="utf-8").splitlines()[0])
    assert first["caption"].endswith("。") and any(name in first["caption"] for name in ZH_COLOURS.values())


# ---------------------------------------------------------------------------------------------------- scores


def test_chinese_captions_are_scored_on_characters(tmp_path):
    """Each Han character is a token: a caption with one colour wrong keeps most of its n-grams, where a whole
    caption taken as one word (no spaces to split at) would score nothing."""
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider

    references = {1: ["一个红色的小圆形。", "一个红色的圆形。"], 2: ["两个蓝色的正方形在一个黄色的三角形上面。",
                                                          "一个黄色的大三角形在两个蓝色的大正方形下面。"],
                  3: ["三个绿色的三角形。", "三个绿色的大三角形。"]}
    predictions = {1: "一个红色的圆形。", 2: "两个绿色的正方形在一个黄色的三角形上面。", 3: "三个绿色的三角形。"}
    annotations = [{"id": n, "image_id": i, "caption": c}
                   for n, (i, c) in enumerate(((i, c) for i, cs in references.items() for c in cs), 1)]
    (tmp_path / "refs.json").write_text(json.dumps({"images": [{"id": i} for i in references],
                                                    "annotations": annotations}, ensure_ascii=False))
    (tmp_path / "preds.json").write_text(json.dumps([{"image_id": i, "caption": c} for i, c in predictions.items()],
                                                    ensure_ascii=False))
    result = run_captioner("evaluate", "--predictions", tmp_path / "preds.json", "--references",
                           tmp_path / "refs.json", "--json")
    assert result.returncode == 0, result.stderr
    assert "scored on characters" in result.stderr
    ours = json.loads(result.stdout)
    by_hand = {"一个红色的小圆形。": "一 个 红 色 的 小 圆 形", "一个红色的圆形。": "一 个 红 色 的 圆 形",
               "两个蓝色的正方形在一个黄色的三角形上面。": "两 个 蓝 色 的 正 方 形 在 一 个 黄 色 的 三 角 形 上 面",
               "一个黄色的大三角形在两个蓝色的大正方形下面。": "一 个 黄 色 的 大 三 角 形 在 两 个 蓝 色 的 大 正 方 形 下 面",
               "三个绿色的三角形。": "三 个 绿 色 的 三 角 形", "三个绿色的大三角形。": "三 个 绿 色 的 大 三 角 形",
               "两个绿色的正方形在一个黄色的三角形上面。": "两 个 绿 色 的 正 方 形 在 一 个 黄 色 的 三 角 形 上 面"}
    gts = {i: [by_hand[c] for c in cs] for i, cs in references.items()}
    res = {i: [by_hand[c]] for i, c in predictions.items()}
    bleu = Bleu(4).compute_score(gts, res, verbose=0)[0]
    assert ours["BLEU-4"] == pytest.approx(bleu[3], abs=1e-9) and ours["BLEU-1"] == pytest.approx(bleu[0], abs=1e-9)
    assert ours["CIDEr"] == pytest.approx(Cider().compute_score(gts, res)[0], abs=1e-9)
    assert 0.7 < ours["BLEU-4"] < 1.0  # one character in 20 wrong costs some, not all
    assert "SPICE" not in ours  # it parses English
    assert character_tokens("一件T恤，2 Cats。") == ["一", "件", "t", "恤", "2", "cats"]


# ---------------------------------------------------------------------------------------------------- inference


def copy_model(built, folder):
    """The model's files (without those loading makes) in `folder`, with its own reference model."""
    import copy
    import shutil

    from builders import BuiltModel

    shutil.copytree(built.folder, folder, ignore=shutil.ignore_patterns("onnx"))
    (folder / built.weights.with_suffix(".safetensors").name).unlink(missing_ok=True)
    return BuiltModel(**{**vars(built), "folder": folder, "manifest": folder / "manifest.json",
                         "weights": folder / built.weights.name, "reference": copy.deepcopy(built.reference)})


@pytest.fixture(scope="module")
def chinese_tiny(tmp_path_factory):
    """A tiny model (random weights) with a BPE learned from Chinese captions and "language": "zh"."""
    import random

    from builders import build_model_folder
    from captioner_gui.training.bpe import train_bpe
    from captioner_gui.training.synth import random_scene

    folder = tmp_path_factory.mktemp("zh") / "tiny-zh"
    rng = random.Random(0)
    captions = [c for _ in range(300) for c in captions_for(*random_scene(rng), language="zh")]
    train_bpe(captions, folder / "tokenizer", vocab_size=400)
    built = build_model_folder(folder, tokenizer=folder / "tokenizer", seed=3)
    manifest = json.loads(built.manifest.read_text())
    built.manifest.write_text(json.dumps(manifest | {"language": "zh"}))
    return built


def test_a_chinese_model_ends_its_captions_at_the_chinese_full_stop(chinese_tiny, images, tmp_path):
    """Swapping "。" with a token the greedy caption first uses at step k makes a Chinese model stop there; the same
    weights read as an English model (no "language") go on past it."""
    from builders import reference_prefix, swap_token_rows
    from reference_clipcap import reference_greedy

    built = copy_model(chinese_tiny, tmp_path / "stops")
    model = load_model(str(built.folder), device="cpu", precision="fp32")
    assert model.language == "zh" and model.tokenizer.decode([model.stop_token]) == "。"
    stop = model.stop_token
    free = reference_greedy(built.reference, reference_prefix(built, images[0]), stop, 16)
    k = next(i for i in range(2, 16) if free[i] not in free[:i] and free[i] != stop)
    assert stop not in free[:k + 1]
    swap_token_rows(built, stop, free[k])
    model = load_model(str(built.folder), device="cpu", precision="fp32")
    for method in ("greedy", "beam"):
        [caption] = model.caption(images[:1], DecodeOptions(method=method, beam_size=3), guard=False)
        assert caption.tokens[-1] == stop and stop not in caption.tokens[:-1], method
        assert caption.text.endswith("。") and caption.language == "zh"
    manifest = json.loads(built.manifest.read_text())
    del manifest["language"]
    built.manifest.write_text(json.dumps(manifest))
    english = load_model(str(built.folder), device="cpu", precision="fp32")
    assert english.language == "en"
    [caption] = english.caption(images[:1], DecodeOptions(method="greedy", max_tokens=16), guard=False)
    assert caption.tokens[:k + 1] == free[:k] + [stop] and len(caption.tokens) > k + 1


def test_a_chinese_caption_is_worded_without_english_stops_or_clip_s_opinion(chinese_tiny, images):
    """CLIP reads English: it neither judges how well a Chinese caption fits (so a photo's caption is not hedged
    for it) nor re-ranks Chinese beams; the caption keeps its own full stop."""
    from captioner_gui.engine.captioner import Caption

    model = load_model(str(chinese_tiny.folder), device="cpu", precision="fp32")
    for caption in model.caption(images[:2], DecodeOptions(method="beam", beam_size=3, rerank=True)):
        assert caption.agreement is None and caption.kind is not None and caption.language == "zh"
    photo = Caption("一个红色的圆形。", [], 0.0, 0.0, kind="photo", kind_scores={"photo": 0.9}, language="zh")
    assert photo.spoken.endswith(": 一个红色的圆形。") and "Could be" not in photo.spoken, photo.spoken
    drawing = Caption("一个红色的圆形", [], 0.0, 0.0, kind="drawing", kind_scores={"drawing": 0.9}, language="zh")
    assert drawing.spoken.endswith("Could be: 一个红色的圆形。"), drawing.spoken


def test_decoded_chinese_is_tidied():
    # GPT-2's own tokens carry a leading space ("Ġ红"); a caption cut at the token limit may end inside a character.
    assert tidy(" 一个 红色 的 圆形 。", "zh") == "一个红色的圆形。"
    assert tidy("一个红色的圆\ufffd\ufffd", "zh") == "一个红色的圆"
    assert tidy("一件 T 恤 和 two cats。", "zh") == "一件T恤和two cats。"
    assert tidy(" a man riding a horse. ", "en") == "a man riding a horse."


def test_the_manifest_s_language_is_english_when_absent_and_checked(tiny_mlp, tmp_path):
    assert load_model(str(tiny_mlp.folder), device="cpu").language == "en"
    folder = copy_model(tiny_mlp, tmp_path / "odd").folder
    manifest = json.loads((folder / "manifest.json").read_text())
    (folder / "manifest.json").write_text(json.dumps(manifest | {"language": "Chinese"}))
    with pytest.raises(ManifestError, match="field 'language' is 'Chinese'"):
        load_model(str(folder), device="cpu")


# ---------------------------------------------------------------------------------------------------- learning


@pytest.fixture(scope="module")
def chinese_kit(training_kit, tmp_path_factory):
    """The English learning tests' pictures (same seed) with Chinese captions, embedded by the same small CLIP."""
    root = tmp_path_factory.mktemp("chinese")
    data, emb = root / "synth-zh", root / "emb"
    write_synthetic_set(data, 800, seed=0, language="zh")
    prepared = run_captioner("prepare", data, "--out", emb, "--clip-model", training_kit.clip_config,
                             "--clip-weights", training_kit.clip_weights, "--device", "cpu")
    assert prepared.returncode == 0, prepared.stderr
    return data, emb


def test_a_model_trained_on_chinese_captions_learns_to_caption(training_kit, chinese_kit, tmp_path):
    data, emb = chinese_kit
    out = tmp_path / "zh"
    # --lm: the English tests' 2-layer GPT-2 config; its word table is resized to the BPE learned here. The last
    # of the 15 epochs is a resumed run, which keeps the tokenizer it began with.
    log = run_captioner("train", emb, "--out", out, "--tokenizer", "bpe", "--lm", training_kit.lm_config,
                        "--epochs", "14", "--lr", "2e-3", *FAST)
    assert log.returncode == 0, log.stderr
    assert "word table was resized" in log.stderr and "epoch 14/14" in log.stderr
    learned = [(out / "tokenizer" / name).stat().st_mtime_ns for name in ("vocab.json", "merges.txt")]
    log = run_captioner("train", emb, "--out", out, "--resume", "--epochs", "15", "--device", "cpu")
    assert log.returncode == 0, log.stderr
    assert [(out / "tokenizer" / name).stat().st_mtime_ns for name in ("vocab.json", "merges.txt")] == learned
    assert len(json.loads((out / "training.json").read_text())["epochs"]) == 15
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["language"] == "zh" and manifest["tokenizer"] == "tokenizer"
    tokenizer = load_tokenizer(out / "tokenizer")  # one token for each character of the captions
    assert all(len(tokenizer.encode(character)) == 1 for character in "两个红色的正方形在上面左边。")
    assert load_file(str(out / "model.safetensors"))["gpt.transformer.wte.weight"].shape[0] == len(tokenizer)

    predictions = tmp_path / "predictions.json"
    result = run_captioner("evaluate", "--model", out, "--data", data, "--split", "test", "--json", "--device", "cpu",
                           "--save-predictions", predictions)
    assert result.returncode == 0, result.stderr
    scores = json.loads(result.stdout)
    # The captions given to the wrong pictures: as fluent, but not about what is drawn. On characters, the set's
    # shared words (个, 色的, 在) give even those high scores, so learning is shown by beating them too.
    captions = json.loads(predictions.read_text(encoding="utf-8"))
    shuffled = tmp_path / "shuffled.json"
    shuffled.write_text(json.dumps([{"image_id": p["image_id"], "caption": q["caption"]}
                                    for p, q in zip(captions, captions[7:] + captions[:7])], ensure_ascii=False))
    blind = evaluate_files(shuffled, data / "captions_test.json")
    print("Chinese MLP + fine-tuned GPT-2 (characters):", scores, "captions on the wrong pictures:", blind)
    assert scores["BLEU-4"] > 0.12 and scores["CIDEr"] > 1.0  # the English tests' thresholds
    assert scores["BLEU-4"] > blind["BLEU-4"] + 0.1 and scores["CIDEr"] > 1.5 * blind["CIDEr"]
    # Every caption is Chinese as it is written: no spaces, one "。" at its end (decoding stopped there).
    for prediction in captions:
        text = prediction["caption"]
        assert text.endswith("。") and text.count("。") == 1 and " " not in text and "\ufffd" not in text, text
    # The model folder is a model like any other: `captioner caption` uses it as it is.
    caption = run_captioner("caption", data / "images" / "000790.png", "--model", out, "--device", "cpu")
    assert caption.returncode == 0 and caption.stdout.strip().endswith("。")
    assert any(name in caption.stdout for name in ZH_COLOURS.values())


def test_a_frozen_pretrained_gpt2_cannot_learn_a_new_tokenizer(training_kit, chinese_kit, tmp_path):
    from captioner_gui.training.options import TrainOptions
    from captioner_gui.training.train import train

    options = TrainOptions(tokenizer="bpe", lm=str(training_kit.pretrained_lm), freeze_lm=True, device="cpu")
    with pytest.raises(CaptionerError, match="--freeze-lm"):
        train(chinese_kit[1], tmp_path / "frozen", options, progress=False)
    assert not (tmp_path / "frozen").exists()

