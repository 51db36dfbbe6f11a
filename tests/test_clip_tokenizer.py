"""The torch-free CLIP tokenizer gives open_clip's ids, in this process and in one that never imports torch."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import open_clip
import pytest
from open_clip.tokenizer import HFTokenizer, SimpleTokenizer

from captioner_gui.engine.clip_tokenizer import ClipTokenizer, write_clip_tokenizer
from captioner_gui.engine.guard import KIND_PROMPTS

REPO = Path(__file__).resolve().parents[1]
LONG_TEXT = " ".join(["A man riding a wave on top of a surfboard, while his friends watch from the beach."] * 8)
TEXTS = [
    "A man riding a wave on top of a surfboard.",
    "A group of people standing around a kitchen.",
    "a cat sitting on a laptop keyboard",
    *(prompt for prompts in KIND_PROMPTS.values() for prompt in prompts),
    "it's", "don't", "we'll", "They're here; I've seen 'em, you'd say", "rock 'n' roll", "\u2019quoted\u2019",
    "it'\u017f",  # a long s: "'s" only when the split ignores case, as open_clip's does
    "1920x1080", "3.14", "2024-05-01 at 10:30", "$1,000,000!!!", "(a) [b] {c} <d> #e @f",
    "Café crème brûlée à Noël", "Ærøskøbing, Straße, Ελληνικά, Русский",
    "一只猫坐在桌子上", "日本語のテキスト", "한국어",
    "A dog 🐶 and a cat 🐱 👍🏽 👨‍👩‍👧",
    "Tom &amp; Jerry", "&amp;amp; &lt;b&gt; &#39;x&#39; &nbsp;",
    "<i>Tom &amp;amp; Jerry</i>",  # ftfy leaves entities beside tags: open_clip's two unescapes give "&"
    "tabs\tand\nnewlines\r\n  and   many    spaces  ", "   ", "",
    "A MAN RIDING A WAVE", "HeLLo WoRLD",
    "mojibake: cafÃ© â€œquotedâ€\x9d",
    "<start_of_text> a photo <end_of_text>", "x<<start_of_text>",
    LONG_TEXT,
]


@pytest.fixture(scope="module")
def open_clip_tokenizer():
    return open_clip.get_tokenizer("ViT-B-32")


@pytest.fixture(scope="module")
def tokenizer_file(open_clip_tokenizer, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("clip-tokenizer") / "clip_tokenizer.json"
    write_clip_tokenizer(open_clip_tokenizer, path)
    return path


@pytest.fixture(scope="module")
def ours(tokenizer_file) -> ClipTokenizer:
    return ClipTokenizer.load(tokenizer_file)


def written_and_loaded(tokenizer, path: Path) -> ClipTokenizer:
    write_clip_tokenizer(tokenizer, path)
    return ClipTokenizer.load(path)


def assert_same_ids(ours: np.ndarray, theirs: np.ndarray, texts: list[str]) -> None:
    assert ours.dtype == np.int64 and ours.shape == theirs.shape
    assert [text for text, a, b in zip(texts, ours, theirs) if not np.array_equal(a, b)] == []


def test_same_ids_as_open_clip(open_clip_tokenizer, ours):
    ids = ours(TEXTS)
    assert_same_ids(ids, open_clip_tokenizer(TEXTS).numpy(), TEXTS)
    assert ids.shape == (len(TEXTS), 77)


def test_long_text_is_cut_with_end_of_text_last(open_clip_tokenizer, ours):
    [ids] = ours([LONG_TEXT])
    assert ids[0] == open_clip_tokenizer.sot_token_id and ids[-1] == open_clip_tokenizer.eot_token_id
    assert np.all(ids[1:-1] != open_clip_tokenizer.eot_token_id) and np.all(ids != 0)


def test_no_texts(open_clip_tokenizer, ours):
    assert ours([]).shape == open_clip_tokenizer([]).shape == (0, 77)


def test_context_length_from_the_model_config(tmp_path):
    """open_clip builds a SimpleTokenizer with the config's text context length: the file keeps it."""
    (tmp_path / "open_clip_config.json").write_text(json.dumps({"model_cfg": {"text_cfg": {"context_length": 16}}}))
    theirs = open_clip.get_tokenizer(f"local-dir:{tmp_path}")
    assert type(theirs) is SimpleTokenizer and theirs.context_length == 16

    ids = written_and_loaded(theirs, tmp_path / "clip_tokenizer.json")(TEXTS)
    assert_same_ids(ids, theirs(TEXTS).numpy(), TEXTS)
    assert ids.shape == (len(TEXTS), 16) and ids[TEXTS.index(LONG_TEXT), -1] == theirs.eot_token_id


@pytest.mark.parametrize("make_tokenizer", [
    lambda: SimpleTokenizer(clean="whitespace"),
    lambda: SimpleTokenizer(clean="canonicalize"),
    lambda: SimpleTokenizer(reduction_mask="simple"),
    lambda: SimpleTokenizer(additional_special_tokens=["<mask>"]),
    lambda: object.__new__(HFTokenizer),  # a real one would fetch its files from the Hugging Face Hub
], ids=["whitespace", "canonicalize", "reduction-mask", "special-tokens", "hf-tokenizer"])
def test_other_tokenizers_refused(make_tokenizer, tmp_path):
    with pytest.raises(ValueError):
        write_clip_tokenizer(make_tokenizer(), tmp_path / "clip_tokenizer.json")
    assert not (tmp_path / "clip_tokenizer.json").exists()


CHILD = """
import json, sys
from pathlib import Path
from captioner_gui.engine.clip_tokenizer import ClipTokenizer

ids = ClipTokenizer.load(Path(sys.argv[1]))(json.loads(sys.stdin.read()))
assert "torch" not in sys.modules and "open_clip" not in sys.modules, "torch or open_clip imported"
print(json.dumps(ids.tolist()))
"""


def test_loads_and_tokenizes_without_torch(open_clip_tokenizer, tokenizer_file):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    child = subprocess.run([sys.executable, "-c", CHILD, str(tokenizer_file)], input=json.dumps(TEXTS), env=env,
                           capture_output=True, text=True, timeout=60)
    assert child.returncode == 0, child.stderr
    assert_same_ids(np.array(json.loads(child.stdout), dtype=np.int64), open_clip_tokenizer(TEXTS).numpy(), TEXTS)
