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


# ------------------------------------------------------------------------------ model folders that cannot be written


def drop_root_s_override():
    """For a child started as root: without CAP_DAC_OVERRIDE, root meets a folder's permissions as anyone does."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(24, 1, 0, 0, 0) != 0:  # PR_CAPBSET_DROP, CAP_DAC_OVERRIDE: gone from the child's program
        raise OSError(ctypes.get_errno(), "prctl")


def caption_cli(folder, tmp_path, *options, as_anyone=False):
    from builders import noise_image
    from cli_helpers import run_captioner

    noise_image(3).save(tmp_path / "photo.png")
    args = ("caption", tmp_path / "photo.png", "--model", folder, "--decoding", "greedy", "--max-tokens", "6",
            "--models-dir", tmp_path / "no-models", *options)
    if not as_anyone or os.geteuid() != 0:
        return run_captioner(*args)
    import subprocess
    import sys

    try:
        return subprocess.run([sys.executable, "-m", "captioner_gui", *map(str, args)], capture_output=True,
                              text=True, timeout=600, preexec_fn=drop_root_s_override)
    except subprocess.SubprocessError as exc:
        pytest.skip(f"root cannot give up its override of file permissions here ({exc})")


def snapshot(folder):
    """Every file and folder, with each file's size and time."""
    return {path: (path.stat().st_size, path.stat().st_mtime_ns) if path.is_file() else None
            for path in folder.rglob("*")}


def cached(cache):
    """What the cache holds for the model: its one folder's contents."""
    return sorted(path.name for path in cache.glob("*/*"))


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """A user's cache folder of the test's own (none yet)."""
    folder = tmp_path / "cache"
    monkeypatch.setenv("CAPTIONER_CACHE", str(folder))
    return folder


@pytest.mark.skipif(os.name != "posix", reason="file permissions of POSIX")
@pytest.mark.parametrize("precision", ["auto", "fp32"])  # the CPU form; the .safetensors copy
def test_a_model_folder_without_write_permission_works(tiny_mlp, tmp_path, cache, precision):
    """A system-wide install: the released .pt alone, in a folder the user may only read. What loading makes
    goes into the user's cache, once; the folder is left as it was."""
    expected = caption_cli(tiny_mlp.folder, tmp_path, "--precision", precision)
    assert expected.returncode == 0, expected.stderr
    folder = copy_model(tiny_mlp, tmp_path)
    for path in [folder, *folder.rglob("*")]:
        path.chmod(0o555 if path.is_dir() else 0o444)
    before = snapshot(folder)
    try:
        for _ in range(2):  # the second load finds what the first left in the cache
            result = caption_cli(folder, tmp_path, "--precision", precision, as_anyone=True)
            assert result.returncode == 0, result.stderr
            assert result.stdout == expected.stdout
    finally:
        for path in [folder, *folder.rglob("*")]:
            path.chmod(0o755 if path.is_dir() else 0o644)
    assert snapshot(folder) == before
    assert cached(cache) == (["onnx", "weights.safetensors"] if precision == "auto" else ["weights.safetensors"])


@pytest.fixture
def small_disk(tmp_path):
    """A small file system of its own (tmpfs), to be made read-only or full. Mounting needs root (as in CI)."""
    import subprocess

    mount = tmp_path / "disk"
    mount.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small file system needs root (the tests run as root in CI)")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(mount)], capture_output=True,
                          text=True)
    if done.returncode != 0:
        pytest.skip(f"this machine does not allow mounting a file system: {done.stderr.strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=True)


def fill(disk):
    """Fills a file system to its last byte."""
    with open(disk / "filler", "wb", buffering=0) as filler:
        for size in (1 << 20, 4096, 1):
            try:
                while filler.write(b"\0" * size):
                    pass
            except OSError:
                pass


@pytest.mark.parametrize("disk_is", ["read-only", "full"])
def test_a_model_on_a_read_only_or_full_disk_works(tiny_mlp, tmp_path, cache, small_disk, disk_is):
    import subprocess

    expected = caption_cli(tiny_mlp.folder, tmp_path)
    assert expected.returncode == 0, expected.stderr
    shutil.copytree(copy_model(tiny_mlp, tmp_path), small_disk / "model")
    if disk_is == "read-only":
        subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    else:
        fill(small_disk)
    before = snapshot(small_disk)
    for precision in ("auto", "auto", "fp32", "int8"):  # the CPU form written, then found; torch's forms
        result = caption_cli(small_disk / "model", tmp_path, "--precision", precision)
        assert result.returncode == 0, result.stderr
        if precision == "auto":
            assert result.stdout == expected.stdout
    assert snapshot(small_disk) == before  # nothing half-written is left on it
    assert cached(cache) == ["onnx", "weights.safetensors"]


def test_without_a_cache_either_the_model_is_kept_in_memory(tiny_mlp, tmp_path, monkeypatch):
    """Neither the model's folder nor the cache can be written: the weights are converted in memory at each load,
    and the CPU's int8 runs on torch."""
    folder = copy_model(tiny_mlp, tmp_path)
    (tmp_path / "not-a-folder").write_text("")
    monkeypatch.setenv("CAPTIONER_CACHE", str(tmp_path / "not-a-folder" / "cache"))
    for path in [folder, *folder.rglob("*")]:
        path.chmod(0o555 if path.is_dir() else 0o444)
    try:
        result = caption_cli(folder, tmp_path, as_anyone=True)
    finally:
        for path in [folder, *folder.rglob("*")]:
            path.chmod(0o755 if path.is_dir() else 0o644)
    assert result.returncode == 0 and result.stdout.strip(), result.stderr
    assert result.stderr == ""
    assert sorted(p.name for p in folder.iterdir()) == ["clip", "manifest.json", "tokenizer", "weights.pt"]
