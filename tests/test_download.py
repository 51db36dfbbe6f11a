"""`captioner models download` against a local stand-in for the Hugging Face Hub: no real weights are fetched."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from cli_helpers import run_captioner
from builders import noise_image
from hub_server import HubServer, _sha256

REVISION = "feedfacefeedfacefeedfacefeedfacefeedface"


def hub_files(full_mlp):
    """The files of the 'coco' download, served from the test's full-size random model."""
    return {
        ("akhaliq/CLIP-prefix-captioning-COCO-weights", "coco_weights.pt"): full_mlp.weights,
        ("openai-community/gpt2", "vocab.json"): full_mlp.folder / "tokenizer" / "vocab.json",
        ("openai-community/gpt2", "merges.txt"): full_mlp.folder / "tokenizer" / "merges.txt",
        ("timm/vit_base_patch32_clip_224.openai", "open_clip_model.safetensors"):
            full_mlp.folder / "clip" / "clip.safetensors",
    }


def online(url, pins=None):
    """The environment of a download from the stand-in Hub. The test's files are random, so the pinned table is
    replaced by one that pins them (the built-in table pins the real files)."""
    env = {"HF_ENDPOINT": url, "HF_HUB_OFFLINE": "0", "HF_HUB_DISABLE_XET": "1"}
    return env | ({"CAPTIONER_PINS_FILE": str(pins)} if pins else {})


def pins_for(files, path, unpinned=("coco_weights.pt",)):
    """A pinned table for the served files (the checkpoint left unpinned, as the real one is)."""
    table = {f"{repo}/{name}": {"revision": REVISION, "size": file.stat().st_size, "sha256": _sha256(file)}
             for (repo, name), file in files.items() if name not in unpinned}
    path.write_text(json.dumps(table))
    return path


def test_download_resumes_checks_and_writes_a_manifest(full_mlp, tmp_path):
    models = tmp_path / "models"
    pins = pins_for(hub_files(full_mlp), tmp_path / "pins.json")
    with HubServer(hub_files(full_mlp), cut_first_download_of="coco_weights.pt") as hub:
        result = run_captioner("models", "download", "coco", "--models-dir", models, env=online(hub.url, pins))
        if result.returncode != 0:  # an interrupted transfer may end the first run; the second one resumes it
            result = run_captioner("models", "download", "coco", "--models-dir", models, env=online(hub.url, pins))
        assert result.returncode == 0, result.stderr
        resumed = [r for r in hub.requests if r[0] == "GET" and "coco_weights.pt" in r[1] and r[2]]
        size = full_mlp.weights.stat().st_size
        assert resumed and not resumed[0][2].startswith("bytes=0-")  # it asked only for the missing part
        assert hub.bytes_sent < 1.6 * size + 500_000_000  # the weights were not fetched twice in full
        pinned = [r[1] for r in hub.requests if r[0] == "GET" and "openai-community/gpt2" in r[1]]
        assert pinned and all(f"/resolve/{REVISION}/" in r for r in pinned)  # at the pinned revision

    assert "ready" in result.stdout
    manifest = json.loads((models / "coco" / "manifest.json").read_text())
    assert manifest == {"version": 1, "name": "coco", "weights": "coco_weights.pt", "mapping": "mlp",
                        "prefix_length": 10, "normalize_prefix": False,
                        "clip": {"model": "ViT-B-32", "weights": "openai"}, "tokenizer": "../gpt2-tokenizer"}
    assert (models / "coco" / "coco_weights.pt").read_bytes() == full_mlp.weights.read_bytes()
    listing = json.loads(run_captioner("models", "list", "--models-dir", models, "--json",
                                       env={"CAPTIONER_PINS_FILE": str(pins)}).stdout)
    assert [(m["name"], m["complete"], m["damaged"]) for m in listing] == [("coco", True, [])]
    verify = run_captioner("models", "verify", "--models-dir", models, env={"CAPTIONER_PINS_FILE": str(pins)})
    assert verify.returncode == 0 and verify.stdout.startswith("coco: ok (5 files checked)"), verify.stdout
    again = run_captioner("models", "download", "coco", "--models-dir", models, env={"HF_HUB_OFFLINE": "1"})
    assert again.returncode == 0 and "already installed" in again.stderr  # no network needed the second time

    noise_image(1).save(tmp_path / "photo.png")
    caption = run_captioner("caption", tmp_path / "photo.png", "--models-dir", models, "--decoding", "greedy",
                            "--max-tokens", "5", "--json")  # --model coco is the default
    assert caption.returncode == 0, caption.stderr
    assert len(json.loads(caption.stdout)[0]["tokens"]) == 5


def test_a_damaged_download_is_refused(full_mlp, tmp_path):
    files = hub_files(full_mlp)
    with HubServer(files) as hub:
        damaged = tmp_path / "damaged.pt"
        damaged.write_bytes(full_mlp.weights.read_bytes()[:1000])  # served with the real file's checksum
        hub.files[("akhaliq/CLIP-prefix-captioning-COCO-weights", "coco_weights.pt")] = damaged
        result = run_captioner("models", "download", "coco", "--models-dir", tmp_path / "models",
                               env=online(hub.url, pins_for(files, tmp_path / "pins.json")))
    assert result.returncode == 1
    assert "checksum" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "models" / "coco" / "manifest.json").exists()


def test_a_pinned_file_that_differs_from_its_pin_is_refused_whatever_the_hub_says(full_mlp, tmp_path):
    files = hub_files(full_mlp)
    pins = pins_for(files, tmp_path / "pins.json")
    other = tmp_path / "merges.txt"
    other.write_text("#version: 0.2\nsomething else\n")  # the Hub serves it with its own, matching checksum
    files[("openai-community/gpt2", "merges.txt")] = other
    models = tmp_path / "models"
    with HubServer(files) as hub:
        result = run_captioner("models", "download", "coco", "--models-dir", models, env=online(hub.url, pins))
    assert result.returncode == 1 and "merges.txt arrived damaged" in result.stderr, result.stderr
    assert not (models / "gpt2-tokenizer" / "merges.txt").exists()
    assert not (models / "coco" / "manifest.json").exists()


def test_a_download_killed_half_way_leaves_nothing_trusted(full_mlp, tmp_path):
    files = hub_files(full_mlp)
    pins = pins_for(files, tmp_path / "pins.json")
    models = tmp_path / "models"
    with HubServer(files, slow="coco_weights.pt") as hub:
        child = subprocess.Popen([sys.executable, "-m", "captioner_gui", "models", "download", "coco",
                                  "--models-dir", str(models)], env={**os.environ, **online(hub.url, pins)},
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 120
        while hub.bytes_sent < 2_000_000 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert hub.bytes_sent >= 2_000_000, "the download never started"
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
    listing = json.loads(run_captioner("models", "list", "--models-dir", models, "--json").stdout)
    assert listing == []  # no model the next start would load
    noise_image(1).save(tmp_path / "photo.png")
    refused = run_captioner("caption", tmp_path / "photo.png", "--models-dir", models)
    assert refused.returncode == 1 and "not installed" in refused.stderr

    # A shared file damaged where it lies (as by a run stopped between its arrival and its check) is fetched again.
    clip = models / "clip" / "ViT-B-32-openai" / "open_clip_model.safetensors"
    clip.parent.mkdir(parents=True, exist_ok=True)
    clip.write_bytes(b"not the file")
    with HubServer(files) as hub:
        again = run_captioner("models", "download", "coco", "--models-dir", models, env=online(hub.url, pins))
    assert again.returncode == 0, again.stderr
    assert clip.read_bytes() == files[("timm/vit_base_patch32_clip_224.openai", "open_clip_model.safetensors")
                                      ].read_bytes()


@pytest.mark.parametrize("env", [{"HF_HUB_OFFLINE": "1"}, online("http://127.0.0.1:9")])
def test_offline_says_so_in_one_line(tmp_path, env):
    result = run_captioner("models", "download", "coco", "--models-dir", tmp_path / "models", env=env)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert lines == ["Downloading coco_weights.pt from akhaliq/CLIP-prefix-captioning-COCO-weights", lines[-1]]
    assert lines[-1].startswith("captioner: Cannot reach the Hugging Face Hub")


def test_coco_transformer_explains_how_to_import(tmp_path):
    result = run_captioner("models", "download", "coco-transformer", "--models-dir", tmp_path)
    assert result.returncode == 1
    assert "captioner models import transformer_weights.pt --name coco-transformer" in result.stderr


def test_import_coco_transformer_fetches_what_it_lacks(full_transformer, tmp_path):
    """The paper's transformer model has no Hub mirror: the user imports the file; CLIP RN50x4 and the tokenizer
    come from the Hub, and the model's settings come with the built-in name."""
    files = {
        ("openai-community/gpt2", "vocab.json"): full_transformer.folder / "tokenizer" / "vocab.json",
        ("openai-community/gpt2", "merges.txt"): full_transformer.folder / "tokenizer" / "merges.txt",
        ("timm/resnet50x4_clip.openai", "open_clip_model.safetensors"):
            full_transformer.folder / "clip" / "clip.safetensors",
    }
    models = tmp_path / "models"
    pins = pins_for(files, tmp_path / "pins.json", unpinned=("open_clip_model.safetensors",))
    with HubServer(files) as hub:
        result = run_captioner("models", "import", full_transformer.weights, "--name", "coco-transformer",
                               "--models-dir", models, env=online(hub.url, pins))
    assert result.returncode == 0, result.stderr
    clip_folder = models / "clip" / "RN50x4-openai"  # unpinned: its digest is recorded when it arrives
    assert "open_clip_model.safetensors" in json.loads((clip_folder / "checksums.json").read_text())
    manifest = json.loads((models / "coco-transformer" / "manifest.json").read_text())
    assert manifest == {"version": 1, "name": "coco-transformer", "weights": "transformer_weights.pt",
                        "mapping": "transformer", "prefix_length": 40, "clip_length": 40, "mapping_layers": 8,
                        "normalize_prefix": True, "clip": {"model": "RN50x4", "weights": "openai"},
                        "tokenizer": "../gpt2-tokenizer"}
    noise_image(2).save(tmp_path / "photo.png")
    caption = run_captioner("caption", tmp_path / "photo.png", "--model", "coco-transformer", "--models-dir", models,
                            "--decoding", "greedy", "--max-tokens", "4", "--json")
    assert caption.returncode == 0, caption.stderr
    assert len(json.loads(caption.stdout)[0]["tokens"]) == 4
