"""The CPU's default form of a model: int8 graphs on onnxruntime, without torch or open_clip.

On an AVX2 laptop torch's int8 kernels (fbgemm) read GPT-2's weights at about half the memory's speed; MLAS, in
onnxruntime, reads them near it, and onnxruntime imports in a tenth of a second where torch and open_clip take six.
The graphs are written once from the model's own weights (onnx_export.py, which needs torch) into the model's
`onnx/` folder; every later load reads only them. See onnx_export.py for what each file holds.
"""

from __future__ import annotations

import json
import logging
import shutil
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

from captioner_gui.i18n import _
from captioner_gui.machine import cores

from .captioner import Captioner
from .derived import Places, cpu_form_places
from .errors import CaptionerError, first_line
from .images import to_rgb
from .manifest import Manifest
from .options import cuda_usable
from .tokenizer import load_tokenizer

FORMAT = 2  # the layout of the folder below; a folder of another format is written again (2: onnx_gpt2's graphs)
FOLDER = "onnx"  # inside the model's folder
IMAGE, TEXT, MAPPER = "image.onnx", "text.onnx", "mapper.onnx"
GPT2, GPT2_ROWS = "gpt2.onnx", "gpt2_rows.onnx"  # GPT-2 quantized for one or two rows at a time, and for more
ONE_ROW = 2  # up to this many rows a call (greedy, one or two pictures; the last beams running), GPT2; more, GPT2_ROWS
WORDS = "words.npy"  # GPT-2's word table, fp16, looked up for each new token
CLIP_TOKENIZER = "clip_tokenizer.json"
FACTS = "export.json"  # what the graphs need to be run, and the files they were written from

log = logging.getLogger(__name__)


def cache_names(layers: int) -> tuple[list[str], list[str]]:
    """GPT-2 graph's cache inputs and outputs: every layer's keys, then every layer's values."""
    past = [f"past_key.{i}" for i in range(layers)] + [f"past_value.{i}" for i in range(layers)]
    present = [f"key.{i}" for i in range(layers)] + [f"value.{i}" for i in range(layers)]
    return past, present


def file_stamp(path: Path) -> list[int]:
    stat = path.stat()
    return [stat.st_size, stat.st_mtime_ns]


# ------------------------------------------------------------------------------------------ when it is used


def uses_cpu_form(device: str, precision: str) -> bool:
    """int8 on the CPU (the CPU's default) runs on onnxruntime. torch is imported only to ask for a GPU on a
    machine that may have one."""
    if precision not in ("auto", "int8") or device not in ("auto", "cpu"):
        return False
    return device == "cpu" or not cuda_usable()


def find_export(manifest: Manifest, places: Places) -> Path | None:
    """The model's onnx folder (in the first of `places` that holds one: its own folder, then the cache) when it
    is complete and was written from the model's present files."""
    for place in places.holding():
        folder = place / FOLDER
        if folder.is_dir() and _complete(manifest, folder):
            return folder
    return None


def _complete(manifest: Manifest, folder: Path) -> bool:
    try:
        facts = json.loads((folder / FACTS).read_text(encoding="utf-8"))
        if facts.get("format") != FORMAT or facts.get("manifest") != manifest.path.read_text(encoding="utf-8"):
            return False
        if any(file_stamp(manifest.folder / path) != stamp for path, stamp in facts["sources"].items()):
            return False
        needed = [IMAGE, MAPPER, GPT2, GPT2_ROWS, WORDS] + ([TEXT, CLIP_TOKENIZER] if facts["text"] else [])
        return all((folder / name).is_file() for name in needed)
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return False


def load_onnx_captioner(manifest: Manifest, models_dir: Path | None, hint: str = "") -> Captioner:
    """The CPU form; written first when the model has none yet (once: about half a minute for a full-size model).
    Where it cannot be written (a model whose parts onnxruntime cannot run), torch's own int8 serves instead."""
    started = time.perf_counter()
    places = cpu_form_places(manifest)
    folder = find_export(manifest, places)
    written = folder is None
    if written:
        from .onnx_export import CpuFormUnavailable, export_model

        log.info(_("Preparing model '{name}' for this CPU (once; about half a minute for a full-size model)...")
                 .format(name=manifest.name))
        try:
            folder = export_model(manifest, models_dir, hint, places)
        except CpuFormUnavailable as exc:
            log.info(_("Model '{name}' runs on torch's int8 instead: {reason}.").format(name=manifest.name, reason=exc))
            from .model import load_captioner

            return load_captioner(manifest, models_dir, "cpu", hint, "int8")
    try:
        captioner = OnnxCaptioner(manifest, folder, hint)
    except CaptionerError:
        raise  # the model's own files (its tokenizer): the user's to mend
    except Exception as exc:  # onnxruntime's errors are plain Exceptions (InvalidProtobuf, NoSuchFile, ...)
        if written:
            raise
        log.info(_("The CPU form of model '{name}' cannot be read ({reason}): writing it again.").format(
            name=manifest.name, reason=first_line(exc)))
        shutil.rmtree(folder, ignore_errors=True)
        return load_onnx_captioner(manifest, models_dir, hint)
    captioner.load_seconds = time.perf_counter() - started
    return captioner


# ------------------------------------------------------------------------------------------------ running it


def session(path: Path, spin: bool = False):
    """An onnxruntime session on the CPU with every graph optimisation (MLAS's fused int8 matrix products).
    Without `spin`, its threads sleep between calls instead of spinning: spinning threads would take the cores
    from the next graph (CLIP's towers run just before GPT-2). GPT-2's own, called step after step, spin while a
    step runs, and stop when it returns: left spinning after a call, they took the cores from the next call of
    the other graph (GPT-2's other one, CLIP's), which then took twice as long when the two alternated."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3  # errors only: onnxruntime warns about graph details a user cannot act on
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
    options.add_session_config_entry("session.force_spinning_stop", "1")
    options.intra_op_num_threads = cores()  # onnxruntime's own count used one of two cores here
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


class OnnxGPT2:
    """GPT-2's int8 graphs as a decoding Backend. The cache is a list of numpy arrays, one per layer for the keys
    and one for the values, (batch, heads, length, head_dim): each call returns them one position longer.

    Two graphs compute the same step: MLAS's kernels for one row read the weights near the memory's speed, but slow
    down with every row more, where its matrix kernels for the other quantization barely do (a step for 1, 5 and
    10 rows: 9.8, 18.4 and 27.4 ms against 12.7, 15.9 and 17.8 ms). Each call takes the faster one for its rows;
    the second is loaded when first needed."""

    def __init__(self, folder: Path, layers: int, heads: int, head_dim: int, bytes_per_step: int):
        self.folder = folder
        self.graphs = {GPT2: session(folder / GPT2, spin=True)}
        self.words = np.load(folder / WORDS, mmap_mode="r")  # only the rows looked up are ever read from disk
        self.heads, self.head_dim = heads, head_dim
        self.past, _ = cache_names(layers)
        self.bytes_per_step = bytes_per_step  # the weights a step reads: the benchmark's bandwidth floor
        self._loading = threading.Lock()

    def start(self, prefix: np.ndarray, max_new_tokens: int) -> tuple[np.ndarray, list[np.ndarray]]:
        empty = np.zeros((prefix.shape[0], self.heads, 0, self.head_dim), dtype=np.float32)
        return self._run(np.ascontiguousarray(prefix, dtype=np.float32), [empty] * len(self.past))

    def step(self, tokens: np.ndarray, cache: list[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
        return self._run(self.words[tokens].astype(np.float32)[:, None], cache)

    def _run(self, embeds: np.ndarray, cache: list[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
        graph = self.graph(GPT2 if embeds.shape[0] <= ONE_ROW else GPT2_ROWS)
        logits, *cache = graph.run(None, {"embeds": embeds, **dict(zip(self.past, cache))})
        return logits, cache

    def graph(self, name: str):
        with self._loading:
            if name not in self.graphs:
                try:
                    self.graphs[name] = session(self.folder / name, spin=True)
                except Exception as exc:  # damaged since the load: the next load writes the folder anew
                    shutil.rmtree(self.folder, ignore_errors=True)
                    raise CaptionerError(_("The model's CPU form was damaged ({reason}) and is removed: load the "
                                           "model again to write it anew.").format(reason=first_line(exc))) from None
            return self.graphs[name]

    def repeat(self, cache: list[np.ndarray], times: int) -> list[np.ndarray]:
        return [np.repeat(layer, times, axis=0) for layer in cache]

    def reorder(self, cache: list[np.ndarray], rows: np.ndarray) -> list[np.ndarray]:
        return [layer[rows] for layer in cache]


def clip_pixels(image: Image.Image, size: int, mean: list[float], std: list[float], interpolation: str,
                resize_mode: str) -> np.ndarray:
    """open_clip's preprocessing for inference, on PIL and numpy: (3, size, size) fp32. 'shortest': the short side
    to `size` (as torchvision's Resize computes it), then the centre; 'squash': both sides to `size`."""
    resample = Image.Resampling.BILINEAR if interpolation == "bilinear" else Image.Resampling.BICUBIC
    width, height = image.size
    if resize_mode == "squash":
        image = image.resize((size, size), resample)
    else:
        short, long = sorted((width, height))
        scaled = int(size * long / short)
        image = image.resize((size, scaled) if width <= height else (scaled, size), resample)
        width, height = image.size
        top, left = int(round((height - size) / 2.0)), int(round((width - size) / 2.0))
        image = image.crop((left, top, left + size, top + size))
    pixels = np.asarray(image, dtype=np.float32).transpose(2, 0, 1) / 255.0
    return (pixels - np.array(mean, dtype=np.float32)[:, None, None]) / np.array(std, dtype=np.float32)[:, None, None]


class OnnxCaptioner(Captioner):
    """A model's int8 graphs on onnxruntime: CLIP's towers, the mapper and GPT-2 with its cache."""

    backend = "onnxruntime"

    def __init__(self, manifest: Manifest, folder: Path, hint: str = ""):
        facts = json.loads((folder / FACTS).read_text(encoding="utf-8"))
        super().__init__(manifest, load_tokenizer(manifest.tokenizer_path, hint), "int8", "CPU")
        self.folder, self.facts = folder, facts
        graphs = [IMAGE, MAPPER] + ([TEXT] if facts["text"] else [])
        gpt = facts["gpt2"]
        # Each session's optimisation runs in onnxruntime's C++ code without the GIL: together they load faster.
        with ThreadPoolExecutor(len(graphs) + 1, thread_name_prefix="onnx-load") as pool:
            lm = pool.submit(OnnxGPT2, folder, gpt["layers"], gpt["heads"], gpt["head_dim"], gpt["bytes_per_step"])
            sessions = dict(zip(graphs, pool.map(lambda name: session(folder / name), graphs)))
            self.lm = lm.result()
        self.image_graph, self.mapper_graph = sessions[IMAGE], sessions[MAPPER]
        self.text_graph = sessions.get(TEXT)
        self.clip_tokenizer = None
        if self.text_graph is not None:
            from .clip_tokenizer import ClipTokenizer

            self.clip_tokenizer = ClipTokenizer.load(folder / CLIP_TOKENIZER)

    @property
    def has_text(self) -> bool:
        return self.text_graph is not None

    def encode(self, images: list[Image.Image]) -> np.ndarray:
        p = self.facts["preprocess"]
        pixels = np.stack([clip_pixels(to_rgb(image), p["size"], p["mean"], p["std"], p["interpolation"],
                                       p["resize_mode"]) for image in images])
        # One picture a call: the towers quantize activations per call, and a picture's vector must not depend on
        # the others in its batch (a batch gives the same captions as one picture at a time). CLIP reads 50
        # patches a picture, so batching gains little here.
        return np.concatenate([self.image_graph.run(None, {"pixels": one[None]})[0] for one in pixels])

    def prefix(self, vectors: np.ndarray) -> np.ndarray:
        return self.mapper_graph.run(None, {"vectors": np.ascontiguousarray(vectors, dtype=np.float32)})[0]

    def encode_text(self, texts: list[str]) -> np.ndarray:
        return np.concatenate([self._encode_text(row[None]) for row in self.clip_tokenizer(texts)])

    def _encode_text(self, tokens: np.ndarray) -> np.ndarray:
        """One text a call, as pictures (see encode)."""
        if self.facts["text_pool"] == "argmax":
            # Attention is causal, so nothing after the end-of-text token changes what is read there: a caption of
            # 12 tokens runs over 12 positions, not the 77 the tokenizer pads to.
            tokens = tokens[:, :int(tokens.argmax(axis=-1).max()) + 1]
        return self.text_graph.run(None, {"tokens": tokens})[0]
