"""`captioner benchmark`: how fast a caption is, measured the way a user meets it.

Real-size architectures (an installed model, or random weights: timing does not depend on the values), one
process, repetitions interleaved, medians. The reference's no-cache loop and transformers' `generate` run in the
same process on the same weights, as ratios. Load time and peak memory come from a real `captioner caption`
run in a child process, from launch to the first caption.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

from captioner_gui.engine.decoding import DecodeOptions, beam_search, greedy
from captioner_gui.engine.onnx_model import uses_cpu_form
from captioner_gui.engine.options import Target
from captioner_gui.engine.decoding import max_logit_error
from captioner_gui.engine.store import load_model
from captioner_gui.machine import cores, cpu_name, read_bandwidth, vector_features

NEVER = -1  # a stop token no model produces: every caption runs to the token limit
TOKENS = 20


def write_random_model(folder: Path, seed: int = 0) -> Path:
    """ViT-B/32 (both towers) + MLP (K=10) + GPT-2 124M with random weights, in the coco model's layout, with a
    byte tokenizer."""
    import open_clip
    import torch
    from safetensors.torch import save_file
    from transformers import GPT2Config, GPT2LMHeadModel

    from captioner_gui.engine.checkpoint import save_safetensors
    from captioner_gui.engine.manifest import ClipSpec, Manifest
    from captioner_gui.engine.mapping import MLPMapper

    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    with torch.device("meta"):
        clip = open_clip.create_model("ViT-B-32", device="meta", force_quick_gelu=True)
    clip = clip.to_empty(device="cpu")
    for parameter in clip.parameters():
        torch.nn.init.normal_(parameter, std=0.02)
    # Both towers, as the released CLIP file: the guard reads the text tower.
    save_file({k: v.contiguous() for k, v in clip.state_dict().items()}, str(folder / "clip.safetensors"))
    gpt = GPT2LMHeadModel(GPT2Config())
    mapper = MLPMapper(512, 768, 10)
    state = {f"clip_project.{k}": v for k, v in mapper.state_dict().items()}
    state.update({f"gpt.{k}": v for k, v in gpt.state_dict().items()})
    save_safetensors(state, folder / "model.safetensors")
    tokenizer = folder / "tokenizer"
    tokenizer.mkdir(exist_ok=True)
    from captioner_gui.engine.tokenizer import byte_level_alphabet

    vocab = {symbol: i for i, symbol in enumerate(byte_level_alphabet())}
    vocab["<|endoftext|>"] = len(vocab)
    (tokenizer / "vocab.json").write_text(json.dumps(vocab))
    (tokenizer / "merges.txt").write_text("#version: 0.2\n")
    Manifest(path=folder / "manifest.json", name="random", weights="model.safetensors", mapping="mlp",
             prefix_length=10, normalize_prefix=False,
             clip=ClipSpec("ViT-B-32", "clip.safetensors", quick_gelu=True), tokenizer="tokenizer").save()
    return folder


def write_random_model_apart(folder: Path) -> Path:
    """write_random_model in a child process, so that this process's peak memory is that of the model it loads
    (writing takes more), and a child it starts later does not inherit that peak (Linux carries it over)."""
    subprocess.run([sys.executable, "-c", "import sys; from pathlib import Path; from captioner_gui.benchmark "
                    "import write_random_model; write_random_model(Path(sys.argv[1]))", str(folder)],
                   check=True, capture_output=True)
    return folder


def _median_ms(runs: list[float]) -> float:
    return round(statistics.median(runs) * 1000, 1)


def _timed(function, device=None) -> float:
    """Wall time of one call; on CUDA (a torch device), until the GPU has finished what it was given."""
    started = time.perf_counter()
    function()
    if device is not None and device.type == "cuda":
        import torch

        torch.cuda.synchronize(device)
    return time.perf_counter() - started


def threads(model) -> int:
    """The threads a model computes with."""
    if model.backend == "onnxruntime":
        return cores()
    import torch

    return torch.get_num_threads()


# What a fresh process imports to caption: the CPU form (onnxruntime) or torch's.
IMPORTS = {"onnxruntime": "import numpy, PIL.Image, onnxruntime, tokenizers", "torch": "import torch, open_clip"}


def measure_startup(model: str, models_dir: Path | None, image: Path, precision: str, device: str,
                    backend: str) -> dict:
    """Launch `captioner caption` as a user does; wall time to the caption and the child's peak memory."""
    command = [sys.executable, "-m", "captioner_gui", "caption", str(image), "--model", model, "--decoding",
               "greedy", "--max-tokens", str(TOKENS), "--precision", precision, "--device", device]
    if models_dir:
        command += ["--models-dir", str(models_dir)]
    started = time.perf_counter()
    with tempfile.TemporaryFile("w+") as errors:
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=errors, text=True)
        _, status, usage = os.wait4(process.pid, 0)  # this child's own resource use
        wall = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        if process.returncode != 0:
            errors.seek(0)
            lines = errors.read().strip().splitlines()
            raise RuntimeError(lines[-1] if lines else "caption failed")
    imports = subprocess.run([sys.executable, "-c", f"import time; started = time.perf_counter(); {IMPORTS[backend]}; "
                              "print(time.perf_counter() - started)"], capture_output=True, text=True)
    return {"launch_to_caption_s": round(wall, 2), "peak_memory_mb": round(usage.ru_maxrss / 1024),  # Linux: KB
            "imports_s": round(float(imports.stdout.strip() or "nan"), 2)}


def _gpu_peak_mb(model, image: Image.Image) -> dict:
    """On CUDA, the GPU memory that the model and a beam-5 caption need (before the fp32 baselines load)."""
    if getattr(model, "device", None) is None or model.device.type != "cuda":
        return {}
    import torch

    torch.cuda.reset_peak_memory_stats(model.device)
    model.caption([image], DecodeOptions(method="beam", beam_size=5, max_tokens=TOKENS))
    return {"peak_gpu_memory_mb": round(torch.cuda.max_memory_allocated(model.device) / 2**20)}


def run_benchmark(model: str = "random", models_dir: Path | None = None, repeats: int = 5,
                  precision: str = "auto", device: str = "auto", report=lambda message: None) -> dict:
    import torch  # the baselines (the reference's loop, transformers' generate) run on torch

    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        if model == "random":
            report("Writing a real-size model with random weights ...")
            model = str(write_random_model_apart(scratch / "random"))
        image_path = scratch / "photo.png"
        Image.effect_noise((640, 480), 64).convert("RGB").save(image_path)
        image = Image.open(image_path).convert("RGB")

        report("Starting `captioner caption` in a fresh process ...")
        backend = "onnxruntime" if uses_cpu_form(device, precision) else "torch"
        measure_startup(model, models_dir, image_path, precision, device, backend)  # writes the CPU form if need be
        startup = measure_startup(model, models_dir, image_path, precision, device, backend)

        started = time.perf_counter()
        fast = load_model(model, models_dir, device, precision)
        load_seconds = time.perf_counter() - started
        gpu_memory = _gpu_peak_mb(fast, image)
        exact = fast if fast.precision == "fp32" else load_model(model, models_dir, device, "fp32")
        report(f"Measuring ({fast.precision} on {fast.device_name}) ...")

        with torch.inference_mode():
            prefix = fast.prefix(fast.encode([image]))
            exact_prefix = exact.prefix(exact.encode([image]))
            reference_logits = exact.lm.start(exact_prefix, TOKENS)[0]
            fast_logits = fast.lm.start(prefix, TOKENS)[0]
            gpt = exact.clipcap.gpt
            batch = [image] * 8

            features = fast.encode([image])

            def clip():
                fast.encode([image])

            def first_token():  # measured directly: a difference of two noisy medians can come out negative
                greedy(fast.lm, fast.prefix(features), NEVER, 1)

            def decode_only():
                greedy(fast.lm, fast.prefix(features), NEVER, TOKENS)

            def greedy_caption():
                greedy(fast.lm, fast.prefix(fast.encode([image])), NEVER, TOKENS)

            def beam_caption():
                beam_search(fast.lm, fast.prefix(fast.encode([image])), NEVER, TOKENS, 5)

            def folder_batch():
                p = fast.prefix(fast.encode(batch))
                greedy(fast.lm, p, NEVER, TOKENS)

            def reference_loop():
                generated, embed = exact_prefix, gpt.transformer.wte
                for _ in range(TOKENS):
                    next_token = gpt(inputs_embeds=generated).logits[:, -1].argmax(-1)
                    generated = torch.cat((generated, embed(next_token)[:, None]), dim=1)

            def transformers_generate():
                gpt.generate(inputs_embeds=exact_prefix, max_new_tokens=TOKENS, min_new_tokens=TOKENS,
                             do_sample=False, eos_token_id=None, pad_token_id=0)

            timers = {"clip": clip, "first": first_token, "decode": decode_only, "greedy": greedy_caption, "beam": beam_caption,
                      "batch": folder_batch, "reference": reference_loop, "generate": transformers_generate}
            for function in timers.values():  # warm-up
                function()
            runs: dict[str, list[float]] = {name: [] for name in timers}
            for _ in range(repeats):
                for name, function in timers.items():
                    if name in ("reference", "generate") and len(runs[name]) >= max(2, repeats // 2):
                        continue  # the slow baselines need fewer repetitions
                    runs[name].append(_timed(function, getattr(fast, "device", None)))

    greedy_ms = _median_ms(runs["greedy"])
    first_ms = _median_ms(runs["first"])
    results = {
        "model": fast.name, "precision": fast.precision, "device": fast.device_name, "backend": fast.backend,
        "threads": threads(fast),
        "clip_ms": _median_ms(runs["clip"]),
        "prefix_and_first_token_ms": first_ms,
        "per_token_ms": round(max(_median_ms(runs["decode"]) - first_ms, 0.0) / (TOKENS - 1), 2),
        "greedy_20_tokens_ms": greedy_ms,
        "beam5_20_tokens_ms": _median_ms(runs["beam"]),
        "folder_images_per_s": round(8 / statistics.median(runs["batch"]), 2),
        "reference_loop_ms": round(_median_ms(runs["reference"]) + _median_ms(runs["clip"]), 1),
        "transformers_generate_ms": round(_median_ms(runs["generate"]) + _median_ms(runs["clip"]), 1),
        "load_s": round(load_seconds, 2),
        **startup,
        **gpu_memory,
        "logit_error_vs_fp32": round(max_logit_error(reference_logits, fast_logits), 4),
    }
    results["speedup_vs_reference"] = round(results["reference_loop_ms"] / greedy_ms, 1)
    results["speedup_vs_generate"] = round(results["transformers_generate_ms"] / greedy_ms, 1)
    results["beam5_vs_greedy"] = round(results["beam5_20_tokens_ms"] / greedy_ms, 2)
    results |= _cpu_results(fast, results["per_token_ms"], report)
    return results


def _cpu_results(model, per_token_ms: float, report) -> dict:
    """The CPU; and where it decodes, its memory's read bandwidth and the least time a decoding step can take at
    it (its bytes read, where the decoding back end tells them), beside the time a step takes."""
    results = {"cpu": cpu_name(), "vector_features": vector_features()}
    if model.device_name != "CPU":
        return results
    report("Measuring the memory's read bandwidth ...")
    bandwidth = read_bandwidth()
    results["read_gb_per_s"] = round(bandwidth, 1)
    step_bytes = getattr(model.lm, "bytes_per_step", None)
    if step_bytes is not None:
        floor_ms = step_bytes / bandwidth / 1e6
        results |= {"bytes_per_step": step_bytes, "floor_ms_per_step": round(floor_ms, 2),
                    "step_vs_floor": round(per_token_ms / floor_ms, 2)}
    return results


ROWS = [
    ("CLIP image encode", "clip_ms", "ms"),
    ("prefix + first token", "prefix_and_first_token_ms", "ms"),
    ("each further token", "per_token_ms", "ms"),
    ("20-token greedy caption (image in, text out)", "greedy_20_tokens_ms", "ms"),
    ("20-token beam-5 caption", "beam5_20_tokens_ms", "ms"),
    ("folder throughput (batches of 8, greedy)", "folder_images_per_s", "images/s"),
    ("reference no-cache loop, same weights, fp32", "reference_loop_ms", "ms"),
    ("transformers generate, same weights, fp32", "transformers_generate_ms", "ms"),
    ("speed-up over the reference loop", "speedup_vs_reference", "x"),
    ("speed-up over transformers generate", "speedup_vs_generate", "x"),
    ("beam 5 / greedy", "beam5_vs_greedy", "x"),
    ("model load (in process)", "load_s", "s"),
    ("launch `captioner caption` to first caption", "launch_to_caption_s", "s"),
    ("of which imports (a fresh process)", "imports_s", "s"),
    ("peak memory of that process", "peak_memory_mb", "MB"),
    ("peak GPU memory, model and a beam-5 caption", "peak_gpu_memory_mb", "MB"),
    ("largest logit error vs fp32 (in standard deviations)", "logit_error_vs_fp32", ""),
]


def format_table(results: dict) -> str:
    lines = [f"{results['model']}, {results['precision']} on {results['device']} ({results['backend']}, "
             f"{results['threads']} threads), medians",
             "| what | value |", "|---|---|"]
    for label, key, unit in ROWS:
        if key not in results:  # GPU memory on the CPU
            continue
        lines.append(f"| {label} | {results[key]} {unit} |".replace("  |", " |"))
    lines += _cpu_lines(results)
    return "\n".join(lines)


def _cpu_lines(results: dict) -> list[str]:
    lines = [f"\nCPU: {results['cpu']}; vector features: {', '.join(results['vector_features']) or 'none known'}"]
    if "read_gb_per_s" in results:
        lines.append(f"memory read bandwidth, all cores: {results['read_gb_per_s']} GB/s")
    if "step_vs_floor" in results:
        lines.append(f"a decoding step reads {results['bytes_per_step'] / 1e6:.0f} MB: at least "
                     f"{results['floor_ms_per_step']} ms at that bandwidth; each further token takes "
                     f"{results['per_token_ms']} ms, {results['step_vs_floor']}x that floor")
    return lines


# ---------------------------------------------------------------------------------------------------- describe

SCREEN, FULL_HD = (1366, 768), (1920, 1080)  # the second is read in four tiles (see ocr.tiles)
SCREENS = (("text", 0, SCREEN), ("two_pictures", 2, SCREEN), ("text_full_hd", 0, FULL_HD))  # name, pictures, size
DESCRIBE_STAGES = ("capture", "ocr_detection", "ocr_recognition", "pictures", "kind", "captions", "first_words",
                   "total")  # first_words: the short form is ready to say (the rest of the text is read after it)


def benchmark_screen(pictures: int, seed: int = 0, size: tuple[int, int] = SCREEN) -> Image.Image:
    """A screenshot: a title bar, paragraphs of 14 px text, and `pictures` photo-like pictures (noise under soft
    shapes, 300x200) beside the text. Timing depends on how much there is to read and see, not on what it says."""
    from PIL import ImageDraw, ImageFilter, ImageFont

    rng = __import__("random").Random(seed)
    words = ("the report for next week is attached please read it before the meeting on friday and send your "
             "comments to the team so that we can agree on the budget and the schedule").split()
    screen = Image.new("RGB", size, (255, 255, 255))
    draw = ImageDraw.Draw(screen)
    draw.rectangle((0, 0, size[0], 36), fill=(232, 232, 236))
    font = ImageFont.load_default(size=14)
    text_left = 48 + (340 if pictures else 0)
    for index in range(pictures):
        noise = Image.effect_noise((300, 200), 40).convert("RGB")
        blobs = ImageDraw.Draw(noise)
        for _ in range(8):
            x, y = rng.randrange(0, 260), rng.randrange(0, 160)
            blobs.ellipse((x, y, x + 60, y + 60), fill=tuple(rng.randrange(256) for _ in range(3)))
        screen.paste(noise.filter(ImageFilter.GaussianBlur(1)), (48, 60 + index * 240))
    y = 60
    per_line = round((14 if pictures else 20) * size[0] / SCREEN[0])
    while y < size[1] - 30:
        line = " ".join(rng.choice(words) for _ in range(per_line))
        draw.text((text_left, y), line.capitalize(), font=font, fill=(20, 20, 20))
        y += 22 if rng.random() > 0.2 else 40
    return screen


def run_describe_benchmark(model: str = "random", models_dir: Path | None = None, repeats: int = 3,
                           precision: str = "auto", device: str = "auto", report=lambda message: None) -> dict:
    """From the picture of a screen to the words to speak, stage by stage: a 1366x768 screen of text, one with two
    pictures, and a 1920x1080 screen of text. With the random model, captions stop at 20 tokens (a real caption has
    10 to 15)."""
    import resource

    from captioner_gui.engine.describe import Describer

    with tempfile.TemporaryDirectory() as scratch:  # the model's files are read while it runs (GPT-2's second graph)
        options = DecodeOptions(method="beam", beam_size=5)
        if model == "random":
            report("Writing a real-size model with random weights ...")
            model = str(write_random_model_apart(Path(scratch) / "random"))
            options = DecodeOptions(method="beam", beam_size=5, max_tokens=TOKENS)
        started = time.perf_counter()
        describer = Describer(load_model(model, models_dir, device, precision))
        describer.start_reader()
        load_seconds = time.perf_counter() - started
        if describer.reader_problem:
            raise RuntimeError(describer.reader_problem)
        capture_seconds = _capture_seconds()
        results = {"model": describer.captioner.name, "precision": describer.captioner.precision,
                   "device": describer.captioner.device_name, "threads": threads(describer.captioner),
                   "load_with_reader_s": round(load_seconds, 2)}
        for name, pictures, size in SCREENS:
            screen = benchmark_screen(pictures, size=size)
            describer.describe(screen, Target.SCREEN, "Mail", options)  # warm-up
            runs = []
            for _ in range(repeats):
                report(f"Describing the screen with {pictures} pictures ...")
                runs.append(describer.describe(screen, Target.SCREEN, "Mail", options))
            stages = {stage: statistics.median(r.timings.get(stage, 0.0) for r in runs) for stage in DESCRIBE_STAGES}
            if capture_seconds is not None:
                stages["capture"] = capture_seconds
                stages["total"] += capture_seconds
                stages["first_words"] += capture_seconds
            results[name] = {stage: round(seconds * 1000) for stage, seconds in stages.items()
                             if stage != "capture" or capture_seconds is not None}
            found = {"lines_found": len(runs[0].text_lines), "pictures_found": len(runs[0].pictures)}
            results[name] |= found  # (not "pictures": that is the picture finder's time)
        results["peak_memory_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)  # Linux: KB
    return results


def _capture_seconds() -> float | None:
    """The median time to take a picture of the screen, where there is a screen to take (None elsewhere)."""
    try:
        from captioner_gui.app.capture import CaptureError, take
    except ImportError:
        return None
    runs = []
    for _ in range(3):
        started = time.perf_counter()
        try:
            take(Target.SCREEN)
        except CaptureError:
            return None
        runs.append(time.perf_counter() - started)
    return statistics.median(runs)


def format_describe_table(results: dict) -> str:
    lines = [f"{results['model']}, {results['precision']} on {results['device']} ({results['threads']} threads), "
             "medians in ms", "| stage | text, 1366x768 | two pictures, 1366x768 | text, 1920x1080 |",
             "|---|---|---|---|"]
    screens = [results[name] for name, _, _ in SCREENS]
    for stage in DESCRIBE_STAGES:
        if stage in screens[0]:
            lines.append(f"| {stage.replace('_', ' ')} | " + " | ".join(str(screen[stage]) for screen in screens) + " |")
    found = [f"{screen['lines_found']}, {screen['pictures_found']}" for screen in screens]
    lines.append("| lines, pictures found | " + " | ".join(found) + " |")
    lines.append(f"\nmodel and text reader load: {results['load_with_reader_s']} s; peak memory: "
                 f"{results['peak_memory_mb']} MB")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------- translation

# Helsinki-NLP/opus-mt-en-zh, the model Argos's and opus-mt's English-to-Chinese translations are of the size of:
# a Marian transformer, 6 + 6 layers, d_model 512, 8 heads, FFN 2048, a shared vocabulary of 65001 (its <pad>
# included, which the conversion drops), swish, embeddings scaled and shared (its config.json).
OPUS_MT_EN_ZH = {"d_model": 512, "encoder_layers": 6, "decoder_layers": 6, "encoder_attention_heads": 8,
                 "decoder_attention_heads": 8, "encoder_ffn_dim": 2048, "decoder_ffn_dim": 2048, "vocab_size": 65001,
                 "activation_function": "swish", "scale_embedding": True, "share_encoder_decoder_embeddings": True,
                 "max_position_embeddings": 512}
CAPTION = "A man riding a wave on top of a surfboard in the ocean."  # a typical COCO caption (ClipCap's words)
TRANSLATED_TOKENS = 16  # a real model's translation of it: about 12 Chinese characters, 8 to 16 tokens
BENCHMARK_TEXT = [CAPTION, "A cat sitting on a couch next to a remote control.", "A bunch of bananas on a table.",
                  "A man riding a horse on a beach.", "Two dogs playing with a frisbee in the grass."]


def marian_vocabulary(spm_file: Path, size: int | None = None, extra: tuple[str, ...] = ()) -> list[str]:
    """A Marian vocabulary for a SentencePiece model: "</s>" and "<unk>" first, then `extra` tokens and the pieces,
    filled up to `size` with made-up words, and "<pad>" last (as opus-mt's)."""
    import sentencepiece

    processor = sentencepiece.SentencePieceProcessor(model_file=str(spm_file))
    pieces = [processor.id_to_piece(i) for i in range(processor.get_piece_size())]
    vocabulary = ["</s>", "<unk>", *extra, *(p for p in pieces if p not in ("<unk>", "<s>", "</s>", *extra))]
    if size is not None:
        vocabulary += [f"▁word{i}" for i in range(size - 1 - len(vocabulary))]
    return vocabulary + ["<pad>"]


def marian_config(vocabulary: list[str], **sizes):
    from transformers import MarianConfig

    pad = len(vocabulary) - 1
    return MarianConfig(**{**OPUS_MT_EN_ZH, **sizes, "vocab_size": len(vocabulary), "decoder_vocab_size":
                           len(vocabulary)}, pad_token_id=pad, decoder_start_token_id=pad, eos_token_id=0)


def write_marian_translator(model, spm_file: Path, vocabulary: list[str], folder: Path) -> Path:
    """A transformers Marian model as opus-mt's are given to captioner: converted with CTranslate2's converter
    (int8), with its source.spm and target.spm beside model.bin. `folder` (made) is that model folder."""
    import tempfile
    import warnings

    from transformers import MarianTokenizer

    from captioner_gui.engine.translation import import_ctranslate2

    import_ctranslate2()  # first, as the engine imports it
    from ctranslate2.converters import TransformersConverter

    with tempfile.TemporaryDirectory() as scratch:
        source = Path(scratch)
        for name in ("source.spm", "target.spm"):
            (source / name).write_bytes(Path(spm_file).read_bytes())
        (source / "vocab.json").write_text(json.dumps({token: i for i, token in enumerate(vocabulary)}),
                                           encoding="utf-8")
        model.save_pretrained(source)
        with warnings.catch_warnings():  # "Recommended: pip install sacremoses" (a preprocessing opus-mt skips)
            warnings.simplefilter("ignore")
            MarianTokenizer(str(source / "source.spm"), str(source / "target.spm"), str(source / "vocab.json")
                            ).save_pretrained(source)
            TransformersConverter(str(source), copy_files=["source.spm", "target.spm"]).convert(
                str(folder), quantization="int8", force=True)
    return folder


def write_random_translator(folder: Path, seed: int = 0) -> Path:
    """A CTranslate2 model folder of opus-mt-en-zh's size and layout with random weights, its language tokens
    (">>cmn_Hans<<") included. A SentencePiece model of the benchmark's words stands in for its spm32k: a word a
    token, about as many as spm32k makes of a caption (common words are one token there, "surfboard" two)."""
    import tempfile

    import sentencepiece
    import torch
    from transformers import MarianMTModel

    with tempfile.TemporaryDirectory() as scratch:
        corpus = Path(scratch) / "corpus.txt"
        corpus.write_text("\n".join(BENCHMARK_TEXT * 50), encoding="utf-8")
        sentencepiece.SentencePieceTrainer.train(input=str(corpus), model_prefix=str(Path(scratch) / "spm"),
                                                 model_type="word", vocab_size=200, hard_vocab_limit=False,
                                                 minloglevel=2)
        vocabulary = marian_vocabulary(Path(scratch) / "spm.model", OPUS_MT_EN_ZH["vocab_size"],
                                       (">>cmn_Hans<<", ">>cmn_Hant<<", ">>yue_Hans<<"))
        torch.manual_seed(seed)
        model = MarianMTModel(marian_config(vocabulary))
        return write_marian_translator(model, Path(scratch) / "spm.model", vocabulary, folder)


def run_translation_benchmark(repeats: int = 7, report=lambda message: None) -> dict:
    """What the translation step adds to a caption: a random model of opus-mt-en-zh's size, imported as a user
    imports one, translating a typical caption into TRANSLATED_TOKENS tokens (a random model never stops by
    itself), greedy and with two beams; two captions at once (a screenshot with two pictures); and at the length
    limit, the most a model that does not stop can cost. The last two decode as captioner does (BEAM_SIZE)."""
    from captioner_gui.engine.translation import BEAM_SIZE, MODEL_FOLDER, CaptionTranslator
    from captioner_gui.engine.translation_import import import_translation

    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        report("Writing a translation model of opus-mt-en-zh's size with random weights ...")
        # In a child process: torch's idle threads, spinning in this one, would slow what is measured here.
        subprocess.run([sys.executable, "-c", "import sys; from pathlib import Path; from captioner_gui.benchmark "
                        "import write_random_translator; write_random_translator(Path(sys.argv[1]))",
                        str(scratch / "opus-mt-en-zh")], check=True, capture_output=True)
        info = import_translation(scratch / "opus-mt-en-zh", scratch / "models")
        folder = scratch / "models" / "translations" / info.pair
        started = time.perf_counter()
        translator = CaptionTranslator(folder)
        load_seconds = time.perf_counter() - started
        limit = translator.limit([translator.pieces(CAPTION)])
        two = [CAPTION, BENCHMARK_TEXT[1]]
        calls = {"greedy": lambda: translator.translate([CAPTION], TRANSLATED_TOKENS, beam_size=1),
                 "beam2": lambda: translator.translate([CAPTION], TRANSLATED_TOKENS, beam_size=2),
                 "two": lambda: translator.translate(two, TRANSLATED_TOKENS),
                 "limit": lambda: translator.translate([CAPTION], limit)}
        for call in calls.values():  # warm-up
            call()
        report(f"Translating captions ({translator.threads} threads) ...")
        runs: dict[str, list[float]] = {name: [] for name in calls}
        for _ in range(repeats):
            for name, call in calls.items():
                runs[name].append(_timed(call))
        size = sum(f.stat().st_size for f in (folder / MODEL_FOLDER).iterdir())
    return {"model": "random, opus-mt-en-zh's size (Marian 6+6 layers, d_model 512, 65000 tokens), int8",
            "model_mb": round(size / 1e6, 1), "threads": translator.threads, "beam_size": BEAM_SIZE,
            "load_ms": round(load_seconds * 1000), "caption": CAPTION,
            "source_tokens": len(translator.pieces(CAPTION)), "output_tokens": TRANSLATED_TOKENS,
            "greedy_ms": _median_ms(runs["greedy"]), "beam2_ms": _median_ms(runs["beam2"]),
            "two_captions_ms": _median_ms(runs["two"]), "limit_tokens": limit,
            "caption_at_limit_ms": _median_ms(runs["limit"])}


def format_translation_table(results: dict) -> str:
    ours = results["beam_size"]
    out = results["output_tokens"]

    def row(label: str, beams: int, key: str) -> str:
        said = f"{label}, {'greedy' if beams == 1 else f'beam {beams}'}"
        return f"| **{said} (captioner's)** | **{results[key]}** |" if beams == ours else f"| {said} | {results[key]} |"

    return "\n".join([
        f"{results['model']}, {results['model_mb']} MB, {results['threads']} threads, medians in ms",
        f"caption: \"{results['caption']}\" ({results['source_tokens']} tokens in)",
        "| what | ms |", "|---|---|",
        f"| load the model | {results['load_ms']} |",
        row(f"a caption, {out} tokens out", 1, "greedy_ms"),
        row(f"a caption, {out} tokens out", 2, "beam2_ms"),
        f"| two captions at once (a screenshot with two pictures), as captioner decodes | "
        f"{results['two_captions_ms']} |",
        f"| a caption to the length limit ({results['limit_tokens']} tokens), as captioner decodes | "
        f"{results['caption_at_limit_ms']} |"])
