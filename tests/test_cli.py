"""`captioner caption` and `captioner models`, run as a user runs them."""

import json
import re

import pytest

from captioner_gui.engine import DecodeOptions, load_model
from cli_helpers import run_captioner
from builders import noise_image


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("photos")
    for i in range(3):
        noise_image(i).save(folder / f"photo{i}.png")
    (folder / "notes.txt").write_text("not an image")
    (folder / "sub").mkdir()
    noise_image(9).save(folder / "sub" / "deeper.jpg")
    return folder


def expected_tokens(built, paths, method="greedy"):
    from captioner_gui.engine import load_image

    model = load_model(str(built.folder), device="cpu", precision="fp32")
    return [r.tokens for r in model.caption([load_image(p) for p in paths], DecodeOptions(method=method))]


def test_one_image_prints_its_caption(tiny_mlp, photos):
    result = run_captioner("caption", photos / "photo0.png", "--model", tiny_mlp.folder, "--decoding", "greedy",
                           "--precision", "fp32")
    assert result.returncode == 0, result.stderr
    model = load_model(str(tiny_mlp.folder), device="cpu", precision="fp32")
    [tokens] = expected_tokens(tiny_mlp, [photos / "photo0.png"])
    assert result.stdout.count("\n") == 1  # one line, even if the caption held line breaks
    assert result.stdout.split() == re.sub(r"[\x00-\x1f\x7f]", " ", model.tokenizer.decode(tokens)).split()


def test_json_for_several_images_in_the_order_given(tiny_mlp, photos):
    paths = [photos / "photo2.png", photos / "photo0.png"]
    result = run_captioner("caption", *paths, "--model", tiny_mlp.folder / "manifest.json", "--decoding", "greedy",
                           "--json", "--precision", "fp32")
    assert result.returncode == 0, result.stderr
    entries = json.loads(result.stdout)
    assert [e["image"] for e in entries] == [str(p) for p in paths]
    assert [e["tokens"] for e in entries] == expected_tokens(tiny_mlp, paths)
    for entry in entries:
        assert set(entry) == {"image", "caption", "tokens", "score", "seconds", "blank", "kind", "kind_scores",
                              "agreement", "language"}  # the guard's findings; the caption's language
        assert entry["language"] == "en"  # the tests run in English: no translation
        assert entry["score"] < 0 and entry["seconds"] > 0 and entry["caption"] and not entry["blank"]


def test_plain_output_names_each_image_when_there_are_several(tiny_mlp, photos):
    result = run_captioner("caption", photos / "photo0.png", photos / "photo1.png", "--model", tiny_mlp.folder,
                           "--max-tokens", "5")
    lines = result.stdout.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith(f"{photos / 'photo0.png'}: ") and lines[1].startswith(f"{photos / 'photo1.png'}: ")


def test_a_folder_captions_every_image_in_it_in_batches(tiny_mlp, photos):
    result = run_captioner("caption", photos, "--model", tiny_mlp.folder, "--json", "--batch-size", "2",
                           "--decoding", "greedy", "--precision", "fp32")
    assert result.returncode == 0, result.stderr
    entries = json.loads(result.stdout)
    paths = [photos / f"photo{i}.png" for i in range(3)]
    assert [e["image"] for e in entries] == [str(p) for p in paths]
    assert [e["tokens"] for e in entries] == expected_tokens(tiny_mlp, paths)
    recursive = json.loads(run_captioner("caption", photos, "--model", tiny_mlp.folder, "--json", "--recursive",
                                         "--max-tokens", "3").stdout)
    assert [e["image"] for e in recursive] == [str(p) for p in paths] + [str(photos / "sub" / "deeper.jpg")]


def test_a_bad_image_is_reported_and_the_others_are_captioned(tiny_mlp, photos, tmp_path):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff garbage")
    result = run_captioner("caption", photos / "photo0.png", broken, tmp_path / "missing.png", photos / "photo1.png",
                           "--model", tiny_mlp.folder, "--json", "--max-tokens", "4")
    assert result.returncode == 1
    entries = json.loads(result.stdout)
    assert [("caption" in e, "error" in e) for e in entries] == [(True, False), (False, True), (False, True),
                                                                  (True, False)]
    assert "no such file" in entries[2]["error"]
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("decoding", ["beam", "nucleus"])
def test_decoding_options(tiny_mlp, photos, decoding):
    args = ["caption", photos / "photo0.png", "--model", tiny_mlp.folder, "--decoding", decoding, "--json",
            "--beam-size", "3", "--seed", "5", "--top-p", "0.8", "--temperature", "0.9", "--max-tokens", "12"]
    first, second = run_captioner(*args), run_captioner(*args)
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout)[0]["tokens"] == json.loads(second.stdout)[0]["tokens"]
    assert len(json.loads(first.stdout)[0]["tokens"]) <= 12


@pytest.mark.parametrize("args, message", [
    (["--device", "cuda"], "no CUDA GPU"),
    (["--beam-size", "0"], "beam size"),
    (["--top-p", "1.5"], "top-p"),
    (["--model", "coco"], "captioner models download coco"),
])
def test_user_errors_are_one_line(tiny_mlp, photos, tmp_path, args, message):
    command = ["caption", photos / "photo0.png", "--models-dir", tmp_path]
    if "--model" not in args:
        command += ["--model", tiny_mlp.folder]
    result = run_captioner(*command, *args, env={"CUDA_VISIBLE_DEVICES": ""})  # no GPU, even where there is one
    assert result.returncode == 1
    assert message in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_models_list_import_and_caption_by_name(tiny_mlp, photos, tmp_path):
    models = tmp_path / "models"
    empty = run_captioner("models", "list", "--models-dir", models)
    assert "No models" in empty.stdout and "captioner models download coco" in empty.stdout

    imported = run_captioner(
        "models", "import", tiny_mlp.folder / "weights.pt", "--name", "mine", "--models-dir", models,
        "--mapping", "mlp", "--prefix-length", "4", "--no-normalize-prefix", "--n-head", "4",
        "--clip-model", tiny_mlp.folder / "clip" / "tiny-clip.json",
        "--clip-weights", tiny_mlp.folder / "clip" / "clip.safetensors", "--tokenizer",
        tiny_mlp.folder / "tokenizer")
    assert imported.returncode == 0, imported.stderr
    assert (models / "mine" / "manifest.json").is_file() and (models / "mine" / "weights.safetensors").is_file()

    listing = json.loads(run_captioner("models", "list", "--models-dir", models, "--json").stdout)
    assert [(m["name"], m["complete"]) for m in listing] == [("mine", True)]
    assert listing[0]["size_bytes"] > (tiny_mlp.folder / "weights.pt").stat().st_size / 2
    assert "mine" in run_captioner("models", "list", "--models-dir", models).stdout

    result = run_captioner("caption", photos / "photo1.png", "--model", "mine", "--models-dir", models, "--json",
                           "--decoding", "greedy", "--precision", "fp32")
    assert json.loads(result.stdout)[0]["tokens"] == expected_tokens(tiny_mlp, [photos / "photo1.png"])[0]

    for weights in (models / "mine").glob("weights.*"):
        weights.unlink()
    listing = json.loads(run_captioner("models", "list", "--models-dir", models, "--json").stdout)
    assert listing[0]["complete"] is False and "weights.pt" in listing[0]["missing"][0]


def test_import_with_settings_that_do_not_fit_keeps_nothing(tiny_mlp, tmp_path):
    models = tmp_path / "models"
    result = run_captioner(
        "models", "import", tiny_mlp.folder / "weights.pt", "--name", "wrong", "--models-dir", models,
        "--prefix-length", "7", "--n-head", "4", "--clip-model", tiny_mlp.folder / "clip" / "tiny-clip.json",
        "--clip-weights", tiny_mlp.folder / "clip" / "clip.safetensors", "--tokenizer",
        tiny_mlp.folder / "tokenizer")
    assert result.returncode == 1
    assert "clip_project.model.0.weight" in result.stderr and "Traceback" not in result.stderr
    assert not (models / "wrong").exists()


def test_version():
    from captioner_gui import __version__

    assert run_captioner("--version").stdout.strip() == f"captioner {__version__}"


def test_evaluate_without_the_coco_metrics_says_how_to_get_them(monkeypatch, capsys):
    """The app bundles leave pycocoevalcap out; their `captioner evaluate` must say so, not fail on an import."""
    import importlib.util

    from captioner_gui import cli

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *args: None if name == "pycocoevalcap" else find_spec(name, *args))
    assert cli.main(["evaluate", "--predictions", "results.json", "--references", "annotations.json"]) == 1
    errors = capsys.readouterr().err
    assert "pip install pycocoevalcap" in errors and len(errors.strip().splitlines()) == 1


def test_an_offline_bundle_uses_the_models_it_carries(monkeypatch, tmp_path):
    import sys

    from captioner_gui.engine import default_models_dir

    carried = tmp_path / "models"
    (carried / "coco").mkdir(parents=True)
    (carried / "coco" / "manifest.json").write_text("{}")
    monkeypatch.delenv("CAPTIONER_MODELS", raising=False)
    monkeypatch.setattr(sys, "frozen", True, raising=False)  # as in a PyInstaller bundle
    monkeypatch.setattr(sys, "_MEIPASS", str(tmp_path), raising=False)
    assert default_models_dir() == carried
    (carried / "coco" / "manifest.json").unlink()  # a bundle without models: the user's data folder
    assert default_models_dir() != carried and default_models_dir().name == "models"


@pytest.mark.parametrize("command", ["caption", "describe"])
def test_names_that_are_not_utf8_or_hold_control_characters_are_printed_escaped(tiny_mlp, tmp_path, command):
    """A name with a newline and bytes that are not UTF-8, and one that would retitle the terminal (ESC ] ... BEL):
    under a strict UTF-8 stdout, --json is valid UTF-8 JSON with every entry, and plain output escapes them."""
    import os
    import subprocess
    import sys

    folder = os.fsencode(tmp_path)
    bad, title, good = b"bad\nname\xff\xfe.png", b"title\x1b]0;pwned\x07.png", b"good.png"
    for seed, name in enumerate((bad, title, good)):
        noise_image(seed).save(os.fsdecode(os.path.join(folder, name)))
    environment = {**os.environ, "PYTHONIOENCODING": "utf-8:strict", "LC_ALL": "C.UTF-8"}

    def run(*extra):
        return subprocess.run([sys.executable, "-m", "captioner_gui", command, bad, title, good, "--model",
                               os.fsencode(tiny_mlp.folder), *extra], capture_output=True,
                              cwd=folder, env=environment, timeout=600)

    result = run(b"--json")
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    entries = json.loads(result.stdout.decode("utf-8"))  # strict: valid UTF-8 throughout
    assert [e["image"] for e in entries] == ["bad\nname\\xff\\xfe.png", "title\x1b]0;pwned\x07.png", "good.png"]
    assert b"\x1b" not in result.stdout and b"\x07" not in result.stdout  # JSON's escapes, never the characters

    result = run()
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    printed = result.stdout.decode("utf-8") + result.stderr.decode("utf-8")
    assert "bad\\nname\\xff\\xfe.png" in printed and "title\\x1b]0;pwned\\x07.png" in printed
    assert not {"\x1b", "\x07"} & set(printed)
