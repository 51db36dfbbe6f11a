"""Damaged weights, manifests that reach outside their folder, CLIP configs that would reach the network, and
`captioner models verify`: each ends in one clear line, never in a wrong caption or a traceback."""

import json
import shutil
import struct

import pytest

from captioner_gui.engine import load_model
from cli_helpers import one_line_error, run_captioner
from builders import noise_image


def model_copy(built, tmp_path, name="model"):
    folder = tmp_path / "models" / name
    shutil.copytree(built.folder, folder)
    return folder


def cut_in_half(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def caption(folder, tmp_path, *options):
    noise_image(3).save(tmp_path / "photo.png")
    return run_captioner("caption", tmp_path / "photo.png", "--model", folder, "--decoding", "greedy",
                         "--max-tokens", "4", *options)


def test_a_cut_safetensors_copy_is_an_error_not_a_caption(tiny_mlp, tmp_path):
    """torch's forms read the copy (the CPU's int8 graphs, written from the .pt, do not read it)."""
    folder = model_copy(tiny_mlp, tmp_path)
    load_model(str(folder), device="cpu", precision="fp32")  # makes the .safetensors copy of the released .pt
    cut_in_half(folder / "weights.safetensors")
    result = caption(folder, tmp_path, "--precision", "fp32")
    line = one_line_error(result)
    assert "weights.safetensors is damaged" in line and "Download or import the model again" in line


@pytest.mark.parametrize("precision", ["int8", "fp32"])
def test_a_cut_clip_file_is_an_error(tiny_mlp, tmp_path, precision):
    folder = model_copy(tiny_mlp, tmp_path)
    cut_in_half(folder / "clip" / "clip.safetensors")
    line = one_line_error(caption(folder, tmp_path, "--precision", precision))
    assert "clip.safetensors is damaged" in line


def rewrite_header(path, change):
    data = path.read_bytes()
    (size,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + size])
    change(header)
    encoded = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(encoded)) + encoded + data[8 + size:])


@pytest.mark.parametrize("change", [
    lambda h: h[next(k for k in h if k != "__metadata__")].update(dtype="U16"),  # safetensors knows it, we do not
    lambda h: h[next(k for k in h if k != "__metadata__")].update(dtype="F8_E9"),  # nobody knows it
    lambda h: h[next(k for k in h if k != "__metadata__")].update(shape=[1]),  # bytes that do not fit the shape
])
def test_a_header_that_does_not_fit_is_an_error(tiny_mlp, tmp_path, change):
    folder = model_copy(tiny_mlp, tmp_path)
    rewrite_header(folder / "clip" / "clip.safetensors", change)
    line = one_line_error(caption(folder, tmp_path))
    assert "clip.safetensors is damaged" in line


@pytest.mark.parametrize("field, value", [("weights", "../../../elsewhere/x.pt"), ("weights", "ABSOLUTE"),
                                          ("tokenizer", "/etc"), ("clip.weights", "../../outside.safetensors")])
def test_a_manifest_may_not_reach_outside_its_folders(tiny_mlp, tmp_path, field, value):
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    shutil.copy(tiny_mlp.weights, outside / "x.pt")
    folder = model_copy(tiny_mlp, tmp_path)
    manifest = json.loads((folder / "manifest.json").read_text())
    value = str(outside / "x.pt") if value == "ABSOLUTE" else value
    if field == "clip.weights":
        manifest["clip"]["weights"] = value
    else:
        manifest[field] = value
    (folder / "manifest.json").write_text(json.dumps(manifest))
    line = one_line_error(caption(folder, tmp_path))
    assert "leads outside the model's folder and the models folder" in line
    assert sorted(p.name for p in outside.iterdir()) == ["x.pt"]  # no .safetensors copy was written there


def test_the_shared_tokenizer_beside_the_model_still_works(tiny_mlp, tmp_path):
    folder = model_copy(tiny_mlp, tmp_path)
    shutil.move(folder / "tokenizer", tmp_path / "models" / "gpt2-tokenizer")
    manifest = json.loads((folder / "manifest.json").read_text())
    (folder / "manifest.json").write_text(json.dumps({**manifest, "tokenizer": "../gpt2-tokenizer"}))
    for model in (folder, "model"):  # the folder, or its name, in the models folder in use
        result = caption(model, tmp_path, "--models-dir", tmp_path / "models")
        assert result.returncode == 0, result.stderr


def snapshot(folder):
    return {path: path.stat().st_mtime_ns for path in folder.rglob("*")}


@pytest.mark.parametrize("precision", ["fp32", "int8", "auto"])  # a .safetensors copy, or the CPU form
def test_a_model_folder_outside_the_models_folder_reaches_nothing_beside_it(tiny_mlp, tmp_path, precision):
    """Only the models folder in use shares its folders (the tokenizer, CLIP's weights) with its models. A model
    folder given by its path, elsewhere, whose manifest reaches beside it is refused, and its neighbours stay as
    they were; in the models folder, whatever loading writes goes into the model's own folder or the cache."""
    given = tmp_path / "given"
    folder = model_copy(tiny_mlp, given, "model")
    outside = given / "models" / "outside"
    outside.mkdir()
    shutil.move(folder / "weights.pt", outside / "w.pt")
    manifest = json.loads((folder / "manifest.json").read_text())
    (folder / "manifest.json").write_text(json.dumps({**manifest, "weights": "../outside/w.pt"}))
    before = snapshot(outside)
    line = one_line_error(caption(folder, tmp_path, "--precision", precision, "--models-dir", tmp_path / "models"))
    assert "'../outside/w.pt' leads outside the model's folder" in line
    assert snapshot(outside) == before
    # In the models folder in use, the shared file is read, and nothing is written beside it.
    result = caption(folder, tmp_path, "--precision", precision, "--models-dir", given / "models")
    assert result.returncode == 0, result.stderr
    assert snapshot(outside) == before


NETWORK_GUARD = """
import socket, sys
real_connect = socket.socket.connect
def guarded(self, address):
    host = address[0] if isinstance(address, tuple) else str(address)
    if not (host.startswith("127.") or host in ("::1", "localhost")) and self.family != socket.AF_UNIX:
        sys.stderr.write(f"NETWORK ACCESS to {address}\\n")
        raise OSError("network access in a test")
    return real_connect(self, address)
socket.socket.connect = guarded
real_getaddrinfo = socket.getaddrinfo
def no_lookup(host, *args, **kwargs):
    if host not in ("127.0.0.1", "::1", "localhost", None):
        sys.stderr.write(f"NETWORK LOOKUP of {host}\\n")
        raise OSError("network lookup in a test")
    return real_getaddrinfo(host, *args, **kwargs)
socket.getaddrinfo = no_lookup
"""


def guarded_env(tmp_path):
    """The network blocked for the child: proxies that point nowhere, the Hub not told to stay offline, and a
    socket guard (sitecustomize) that reports and refuses any connection that is not to this machine."""
    site = tmp_path / "site"
    site.mkdir(exist_ok=True)
    (site / "sitecustomize.py").write_text(NETWORK_GUARD)
    import os
    path = os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])
    return {"PYTHONPATH": path, "HF_HUB_OFFLINE": "0", "TRANSFORMERS_OFFLINE": "0",
            "HTTPS_PROXY": "http://127.0.0.1:9", "HTTP_PROXY": "http://127.0.0.1:9", "NO_PROXY": ""}


def test_a_clip_config_naming_hub_models_never_reaches_the_network(tiny_mlp, tmp_path):
    folder = model_copy(tiny_mlp, tmp_path)
    config = folder / "clip" / "tiny-clip.json"
    data = json.loads(config.read_text())
    data["text_cfg"] |= {"hf_tokenizer_name": "openai/clip-vit-base-patch32"}
    config.write_text(json.dumps(data))
    env = guarded_env(tmp_path)
    result = caption(folder, tmp_path, "--json")
    guarded = run_captioner("caption", tmp_path / "photo.png", "--model", folder, "--decoding", "greedy",
                            "--max-tokens", "4", "--json", env=env)
    assert "NETWORK" not in guarded.stderr, guarded.stderr
    assert guarded.returncode == 0, guarded.stderr
    assert json.loads(guarded.stdout)[0]["tokens"] == json.loads(result.stdout)[0]["tokens"]


def test_the_guard_itself_catches_network_access(tmp_path):
    """The socket guard above must be able to fail: a child that does reach out is caught."""
    import subprocess
    import sys
    env = {**__import__("os").environ, **guarded_env(tmp_path)}
    probe = subprocess.run([sys.executable, "-c", "import socket; socket.create_connection(('192.0.2.1', 443), 1)"],
                           capture_output=True, text=True, env=env)
    assert "NETWORK" in probe.stderr


@pytest.mark.parametrize("content", ["{not json", json.dumps({"embed_dim": 32}),
                                     json.dumps({"embed_dim": 32, "vision_cfg": {"layers": "two"},
                                                 "text_cfg": {}})])
def test_a_bad_clip_config_is_one_line(tiny_mlp, tmp_path, content):
    folder = model_copy(tiny_mlp, tmp_path)
    (folder / "clip" / "tiny-clip.json").write_text(content)
    line = one_line_error(caption(folder, tmp_path))
    assert "CLIP model" in line and "tiny-clip" in line


def test_verify_and_list_find_damaged_files(tiny_mlp, tmp_path):
    models = tmp_path / "models"
    imported = run_captioner("models", "import", tiny_mlp.weights, "--name", "mine", "--models-dir", models,
                             "--clip-model", tiny_mlp.folder / "clip" / "tiny-clip.json",
                             "--clip-weights", tiny_mlp.folder / "clip" / "clip.safetensors",
                             "--tokenizer", tiny_mlp.folder / "tokenizer", "--n-head", "4", "--prefix-length", "4")
    assert imported.returncode == 0, imported.stderr
    assert sorted(p.name for p in (models / "mine").iterdir()) == [
        "checksums.json", "clip-clip.safetensors", "manifest.json", "tiny-clip.json", "tokenizer", "weights.pt",
        "weights.safetensors"]  # everything the model uses was copied in
    ok = run_captioner("models", "verify", "--models-dir", models)
    assert ok.returncode == 0 and ok.stdout.startswith("mine: ok"), ok.stdout + ok.stderr

    weights = models / "mine" / "weights.pt"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte: same size, another hash
    weights.write_bytes(bytes(data))
    damaged = run_captioner("models", "verify", "mine", "--models-dir", models)
    assert damaged.returncode == 1
    assert damaged.stdout.startswith("mine: damaged: weights.pt does not have the SHA-256 it was installed with")

    cut_in_half(models / "mine" / "weights.safetensors")
    listing = run_captioner("models", "list", "--models-dir", models)
    assert "damaged: weights.safetensors has" in listing.stdout, listing.stdout


def test_an_import_killed_half_way_leaves_nothing_trusted(tiny_mlp, tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    models = tmp_path / "models"
    args = ["models", "import", str(tiny_mlp.weights), "--name", "mine", "--models-dir", str(models),
            "--clip-model", str(tiny_mlp.folder / "clip" / "tiny-clip.json"), "--clip-weights",
            str(tiny_mlp.folder / "clip" / "clip.safetensors"), "--tokenizer", str(tiny_mlp.folder / "tokenizer"),
            "--n-head", "4", "--prefix-length", "4"]
    child = subprocess.Popen([sys.executable, "-m", "captioner_gui", *args], stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    staging = models / ".mine.importing"
    deadline = time.monotonic() + 60
    while not (staging / "weights.pt").exists() and time.monotonic() < deadline:
        time.sleep(0.002)
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    assert staging.exists(), "the import ended before it could be stopped"
    assert json.loads(run_captioner("models", "list", "--models-dir", models, "--json").stdout) == []
    with pytest.raises(Exception, match="not installed"):
        load_model("mine", models_dir=models)
    assert not staging.exists()  # the load removed what the killed import left
    from captioner_gui.engine.staging import held

    with held(staging):  # an import that runs: its staging folder is kept
        staging.mkdir()
        with pytest.raises(Exception, match="not installed"):
            load_model("mine", models_dir=models)
        assert staging.is_dir()
    # Even a staging folder that got as far as its manifest is never taken for a model.
    shutil.copytree(tiny_mlp.folder, staging, dirs_exist_ok=True)
    assert json.loads(run_captioner("models", "list", "--models-dir", models, "--json").stdout) == []

    again = run_captioner(*args)
    assert again.returncode == 0, again.stderr
    assert not staging.exists()
    # Stopped between moving the old model aside and moving the new one in: the old one comes back.
    (models / "mine").rename(models / ".mine.replaced")
    assert load_model("mine", models_dir=models, device="cpu").name == "mine"
