"""Manifests and checkpoints: released files load strictly, problems name the field or key."""

import json
import os
import shutil

import pytest
import torch

from captioner_gui.engine import DecodeOptions, ManifestError, ModelFilesMissing, load_model, read_manifest


def copy_model(built, tmp_path):
    folder = tmp_path / built.folder.name
    # Without the files that loading makes: the .safetensors copy and the CPU form (onnx/).
    shutil.copytree(built.folder, folder, ignore=shutil.ignore_patterns("onnx"))
    (folder / "weights.safetensors").unlink(missing_ok=True)
    return folder


def edit_manifest(folder, **changes):
    path = folder / "manifest.json"
    data = json.loads(path.read_text())
    for key, value in changes.items():
        if value is None:
            data.pop(key, None)
        else:
            data[key] = value
    path.write_text(json.dumps(data))
    return path


def test_manifest_fields_are_read(tiny_transformer):
    manifest = read_manifest(tiny_transformer.manifest)
    assert (manifest.mapping, manifest.prefix_length, manifest.clip_length, manifest.mapping_layers) == (
        "transformer", 4, 3, 2)
    assert manifest.normalize_prefix is True and manifest.gpt2_n_head == 4
    assert manifest.weights_path == tiny_transformer.folder / "weights.pt"


@pytest.mark.parametrize("change, message", [
    ({"mapping": None}, "missing field 'mapping'"),
    ({"mapping": "lstm"}, "'mapping' is 'lstm'"),
    ({"prefix_length": "ten"}, "'prefix_length' must be int"),
    ({"prefix_length": 0}, "'prefix_length' must be a positive"),
    ({"colour": "blue"}, "unknown field 'colour'"),
    ({"clip": {"model": "ViT-B-32"}}, "missing field 'clip.weights'"),
    ({"clip": {"model": "ViT-B-32", "weights": "openai", "size": 3}}, "unknown field 'clip.size'"),
    ({"version": 2}, "'version' is 2"),
    ({"normalize_prefix": None}, "missing field 'normalize_prefix'"),
])
def test_bad_manifests_name_the_field(tiny_mlp, tmp_path, change, message):
    folder = copy_model(tiny_mlp, tmp_path)
    edit_manifest(folder, **change)
    with pytest.raises(ManifestError, match=message):
        load_model(str(folder), device="cpu")


def test_transformer_manifest_needs_clip_length(tiny_transformer, tmp_path):
    folder = copy_model(tiny_transformer, tmp_path)
    edit_manifest(folder, clip_length=None)
    with pytest.raises(ManifestError, match="missing field 'clip_length'"):
        load_model(str(folder), device="cpu")


def test_released_pt_loads_strictly_and_gets_a_safetensors_copy(tiny_mlp, tmp_path, images):
    folder = copy_model(tiny_mlp, tmp_path)
    raw = torch.load(folder / "weights.pt", weights_only=True)
    assert any(k.endswith(".attn.masked_bias") for k in raw)  # the obsolete buffers are in the file
    first = load_model(str(folder), device="cpu")
    copy = folder / "weights.safetensors"
    assert copy.is_file()
    (folder / "weights.pt").unlink()  # a new, empty file: were the .pt read again, loading would fail
    (folder / "weights.pt").write_bytes(b"")
    os.utime(copy)
    second = load_model(str(folder), device="cpu")
    options = DecodeOptions(method="greedy", max_tokens=10)
    assert first.caption(images, options)[0].tokens == second.caption(images, options)[0].tokens


def test_prefix_length_that_does_not_fit_names_the_key(tiny_mlp, tmp_path):
    folder = copy_model(tiny_mlp, tmp_path)
    edit_manifest(folder, prefix_length=5)
    with pytest.raises(ManifestError, match=r"clip_project\.model\.0\.weight' has shape \[128, 32\].*\[160, 32\]"):
        load_model(str(folder), device="cpu")


def test_wrong_mapping_names_a_key(tiny_mlp, tmp_path):
    folder = copy_model(tiny_mlp, tmp_path)
    edit_manifest(folder, mapping="transformer", clip_length=3, mapping_layers=2)
    with pytest.raises(ManifestError, match="holds a 'mlp' mapping network, but field 'mapping' says 'transformer'"):
        load_model(str(folder), device="cpu")


def test_pickle_that_runs_code_is_refused(tiny_mlp, tmp_path):
    folder = copy_model(tiny_mlp, tmp_path)

    class Evil:
        def __reduce__(self):
            return (print, ("this must never run",))

    torch.save({"payload": Evil()}, folder / "weights.pt")
    with pytest.raises(ManifestError, match="could run code"):
        load_model(str(folder), device="cpu")


def test_missing_files_say_which_and_where(tiny_mlp, tmp_path):
    folder = copy_model(tiny_mlp, tmp_path)
    (folder / "weights.pt").unlink()
    with pytest.raises(ModelFilesMissing, match=f"looked for {folder / 'weights.pt'}"):
        load_model(str(folder), device="cpu")
    shutil.rmtree(folder / "tokenizer")
    with pytest.raises(ModelFilesMissing, match="vocab.json"):
        load_model(str(folder), device="cpu")


def test_unknown_model_name_says_how_to_get_it(tmp_path):
    with pytest.raises(ModelFilesMissing, match="captioner models download coco"):
        load_model("coco", models_dir=tmp_path)


def test_cuda_without_cuda_is_one_clear_error(tiny_mlp, monkeypatch):
    from captioner_gui.engine import CaptionerError

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # as on a machine without a GPU

    with pytest.raises(CaptionerError, match="no CUDA GPU"):
        load_model(str(tiny_mlp.folder), device="cuda")
