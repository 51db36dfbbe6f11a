"""`captioner train`: the paper's recipe for a new ClipCap model, with the reference code's bugs fixed.

- One CLIP vector per image (from `captioner prepare`), each caption of the image a training example.
- Captions are tokenized once; padding is a mask that is never written back into the data (the reference's
  mask was all ones from the second epoch on) and is left out of the loss with -100 (the reference used token 0,
  which is '!', so a real '!' was never learned).
- Captions in any language: the language is found from the captions (or --language) and recorded in the manifest;
  Chinese captions end at "。". `--tokenizer bpe` learns a byte-level BPE from the training captions (bpe.py), and
  GPT-2's word table is resized to whatever tokenizer is used.
- AdamW, linear warm-up then linear decay, gradient accumulation, mixed precision on CUDA, a checkpoint and a
  validation loss every epoch, `--resume`, and the same command under `torchrun` for several GPUs or machines.
"""

from __future__ import annotations

import json
import math
import os
import random
import shutil
import sys
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from captioner_gui.engine.checkpoint import (OBSOLETE_SUFFIXES, load_weights, read_safetensors, read_torch_pickle,
                                             save_safetensors)
from captioner_gui.engine.errors import CaptionerError, ManifestError, telling_line
from captioner_gui.engine.language import ENGLISH, end_with_stop, guess_language
from captioner_gui.engine.manifest import MANIFEST_NAME, ClipSpec, Manifest, is_path_like
from captioner_gui.engine.model import ClipCap, build_mapper, device_name, gpt2_config_from_weights, resolve_device
from captioner_gui.engine.store import GPT2_FOLDER, TOKENIZER_FOLDER, default_models_dir
from captioner_gui.engine.tokenizer import TOKENIZER_FILES, load_tokenizer, stop_token_id
from captioner_gui.i18n import N_, _, ngettext

from .bpe import train_bpe
from .options import AUTO, BPE, TrainOptions
from .prepare import Embeddings, load_embeddings

WEIGHTS = "model.safetensors"
STATE = "training_state.pt"
LOG = "training.json"


# ---------------------------------------------------------------------------------------------------- data


@dataclass
class CaptionData:
    """Tokenized captions: (examples, length) ids with a mask; each row points at its image's CLIP vector."""

    image_index: torch.Tensor  # (examples,) rows of Embeddings.vectors
    tokens: torch.Tensor  # (examples, length), padding is 0 and masked
    mask: torch.Tensor  # (examples, length) bool

    def __len__(self) -> int:
        return self.tokens.shape[0]


def tokenize_captions(embeddings: Embeddings, image_rows: list[int], tokenizer, max_length: int | None,
                      context: int, language: str = ENGLISH) -> tuple[CaptionData, dict]:
    """Token ids for every caption of the given images, padded to the reference's length rule. ClipCap stops at
    the first '.' ('。' in Chinese), so every caption it learns from is made to end with one."""
    ids, owners, empty = [], [], 0
    for row in image_rows:
        for caption in embeddings.images[row]["captions"]:
            if not caption.strip():
                empty += 1
                continue
            ids.append(tokenizer.encode(end_with_stop(caption, language)))
            owners.append(row)
    if not ids:
        raise CaptionerError(_("There are no captions to learn from."))
    lengths = torch.tensor([len(i) for i in ids], dtype=torch.float)
    if max_length is None:  # the reference: mean + 10 standard deviations, at most the longest
        spread = float(lengths.std()) if len(ids) > 1 else 0.0
        max_length = int(min(float(lengths.mean()) + 10 * spread, float(lengths.max())))
    max_length = max(1, min(max_length, context))
    tokens = torch.zeros(len(ids), max_length, dtype=torch.long)
    mask = torch.zeros(len(ids), max_length, dtype=torch.bool)
    cut = 0
    for i, row in enumerate(ids):
        cut += len(row) > max_length
        row = row[:max_length]
        tokens[i, : len(row)] = torch.tensor(row)
        mask[i, : len(row)] = True
    stats = {"captions": len(ids), "empty_skipped": empty, "cut": cut, "max_length": max_length}
    return CaptionData(torch.tensor(owners), tokens, mask), stats


# ---------------------------------------------------------------------------------------------------- model


class CaptionLoss(nn.Module):
    """ClipCap's training objective: cross-entropy of the caption tokens given the prefix (not the padding)."""

    def __init__(self, clipcap: ClipCap):
        super().__init__()
        self.clipcap = clipcap

    def forward(self, vectors: torch.Tensor, tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        gpt = self.clipcap.gpt
        prefix = self.clipcap.prefix(vectors)
        k = prefix.shape[1]
        embeds = torch.cat((prefix.to(gpt.transformer.wte.weight.dtype), gpt.transformer.wte(tokens)), dim=1)
        attention = torch.cat((torch.ones(mask.shape[0], k, dtype=mask.dtype, device=mask.device), mask), dim=1)
        logits = gpt(inputs_embeds=embeds, attention_mask=attention.long()).logits
        logits = logits[:, k - 1:-1]  # the logit at position k-1+i predicts token i
        labels = tokens.masked_fill(~mask, -100)
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), labels.reshape(-1), ignore_index=-100)


def load_language_model(spec: str, models_dir: Path | None):
    """GPT-2 for training: the models folder's pretrained GPT-2, a weights file or folder, or a config (random)."""
    from transformers import GPT2Config, GPT2LMHeadModel

    if spec == "gpt2":
        folder = (models_dir or default_models_dir()) / GPT2_FOLDER
        if not (folder / "model.safetensors").is_file():
            raise CaptionerError(_("GPT-2's pretrained weights are missing: looked for {path}. Get them with: "
                                   "captioner models download gpt2").format(path=folder / "model.safetensors"))
        path = folder
    else:
        path = Path(spec).expanduser()
        if not path.exists():
            raise CaptionerError(_("{path}: no such file or folder.").format(path=f"--lm {spec}"))
    if path.suffix == ".json":
        return GPT2LMHeadModel(GPT2Config.from_json_file(str(path)))
    folder = path if path.is_dir() else path.parent
    weights = path
    if path.is_dir():
        weights = next((path / name for name in ("model.safetensors", "pytorch_model.bin") if (path / name).is_file()),
                       None)
        if weights is None:
            raise CaptionerError(_("{path} holds no model.safetensors or pytorch_model.bin.").format(path=path))
    raw = read_safetensors(weights) if weights.suffix == ".safetensors" else read_torch_pickle(weights)
    state = {}
    for key, tensor in raw.items():
        key = key.removeprefix("gpt.")
        if not key.startswith(("transformer.", "lm_head.")):
            key = "transformer." + key  # the Hub's GPT-2 files leave out the "transformer." prefix
        if key.endswith(OBSOLETE_SUFFIXES):
            continue
        state["gpt." + key] = tensor
    n_head = 12
    if (folder / "config.json").is_file():
        n_head = json.loads((folder / "config.json").read_text()).get("n_head", 12)
    config = gpt2_config_from_weights(state, n_head)
    model = GPT2LMHeadModel(config)
    state.setdefault("gpt.lm_head.weight", state["gpt.transformer.wte.weight"])
    try:
        model.load_state_dict({k.removeprefix("gpt."): v for k, v in state.items()}, strict=True)
    except RuntimeError as exc:
        raise CaptionerError(_("{path} does not hold a GPT-2 that fits its shapes ({reason}).").format(
            path=weights, reason=telling_line(exc))) from None
    model.tie_weights()
    return model


def build_model(options: TrainOptions, clip_dim: int, models_dir: Path | None) -> ClipCap:
    gpt = load_language_model(options.lm, models_dir)
    mapper = build_mapper(options.mapping, clip_dim, gpt.config.n_embd, options.prefix_length, options.clip_length,
                          options.layers)
    normalize = options.normalize_prefix if options.normalize_prefix is not None else options.mapping == "transformer"
    return ClipCap(mapper, gpt, options.prefix_length, normalize)


def fit_word_table(clipcap: ClipCap, tokens: int) -> int | None:
    """Gives GPT-2's word table (tied to its output layer) one row per token of the tokenizer; returns its former
    size when it changed. Rows are kept by id: for a tokenizer other than GPT-2's own they are learned anew."""
    before = clipcap.gpt.config.vocab_size
    if before == tokens:
        return None
    clipcap.gpt.resize_token_embeddings(tokens)
    return before


def set_train_mode(clipcap: ClipCap, freeze_lm: bool) -> None:
    clipcap.train()
    if freeze_lm:
        clipcap.gpt.eval()  # frozen GPT-2 stays in eval mode (no dropout), as in the paper


# ---------------------------------------------------------------------------------------------------- saving


def manifest_for(folder: Path, options: TrainOptions, clipcap: ClipCap, clip: ClipSpec,
                 language: str = ENGLISH) -> Manifest:
    clip_weights = clip.weights
    if is_path_like(clip_weights):
        clip_weights = _inside(Path(clip_weights), folder)
    clip_model = clip.model
    if clip_model.endswith(".json"):
        clip_model = _inside(Path(clip_model), folder)
    return Manifest(
        path=folder.resolve() / MANIFEST_NAME, name=folder.name, weights=WEIGHTS, mapping=options.mapping,
        prefix_length=options.prefix_length, normalize_prefix=clipcap.normalize_prefix,
        clip=ClipSpec(clip_model, clip_weights, clip.quick_gelu), tokenizer="tokenizer",
        clip_length=options.clip_length if options.mapping == "transformer" else None,
        mapping_layers=options.layers if options.mapping == "transformer" else None,
        gpt2_n_head=clipcap.gpt.config.n_head, language=language,
    )


def save_checkpoint(folder: Path, clipcap: ClipCap, manifest: Manifest, state: dict, log: dict) -> None:
    """Weights, manifest and training state, each written atomically: a crash or a full disk leaves the last
    complete checkpoint as it was."""
    try:
        save_safetensors(clipcap.state_dict(), folder / WEIGHTS)
        manifest.save()
        tmp = folder / (STATE + ".tmp")
        torch.save(state, tmp)
        tmp.replace(folder / STATE)
        (folder / (LOG + ".tmp")).write_text(json.dumps(log, indent=2))
        (folder / (LOG + ".tmp")).replace(folder / LOG)
    except OSError as exc:
        for leftover in folder.glob("*.tmp"):
            leftover.unlink(missing_ok=True)
        last = log["epochs"][-2]["epoch"] if len(log["epochs"]) > 1 else None
        reason = exc.strerror or exc
        if last:
            message = _("Could not save the checkpoint in {folder} ({reason}); the checkpoint of epoch {epoch} is "
                        "intact.").format(folder=folder, reason=reason, epoch=last)
        else:
            message = _("Could not save the checkpoint in {folder} ({reason}); no earlier checkpoint exists.").format(
                folder=folder, reason=reason)
        raise CaptionerError(message) from None


# ---------------------------------------------------------------------------------------------------- loop


@dataclass
class Run:
    """Where and how this process trains: its place among the processes (torchrun), its device, its precision."""

    rank: int
    world: int
    device: torch.device
    autocast: Callable[[], AbstractContextManager]  # a fresh context for each forward pass
    scaler: torch.amp.GradScaler  # enabled for fp16 only; disabled, it passes everything through
    precision: str  # words for the log

    @classmethod
    def here(cls, device: torch.device) -> Run:
        """This process's run, from torchrun's environment (one process without it). Under torchrun on CUDA, each
        process takes the GPU of its local rank (set before anything asks CUDA about it)."""
        world = int(os.environ.get("WORLD_SIZE", "1"))
        rank, local_rank = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
        if world > 1 and device.type == "cuda":
            device = torch.device("cuda", local_rank)
            torch.cuda.set_device(device)
        return cls(rank, world, device, *_mixed_precision(device))


def train(emb: Path, out: Path, options: TrainOptions, resume: bool = False, models_dir: Path | None = None,
          progress: bool = True, max_length: int | None = None) -> Path:
    """Trains (or with resume, continues) a model into `out`; `progress` shows per-batch bars."""
    run = Run.here(resolve_device(options.device))
    if run.world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if run.device.type == "cuda" else "gloo")
    try:
        return _train(emb, out, options, run, resume, models_dir, progress, max_length)
    finally:
        if run.world > 1 and dist.is_initialized():
            dist.destroy_process_group()


def _train(emb: Path, out: Path, options: TrainOptions, run: Run, resume: bool, models_dir: Path | None,
           progress: bool, max_length: int | None) -> Path:
    from tqdm import tqdm

    embeddings = load_embeddings(emb)
    out = Path(out)
    saved_state = None
    if resume:
        saved_state, options = _resume_state(out, embeddings, options)
    elif (out / STATE).exists():
        raise CaptionerError(_("{folder} already holds a training run: add --resume to continue it, or choose "
                               "another --out.").format(folder=out))
    rank, world, device = run.rank, run.world, run.device
    if options.batch_size % world or options.batch_size < world:
        raise CaptionerError(ngettext("The batch size ({size}) must be a multiple of the {world} process.",
                                      "The batch size ({size}) must be a multiple of the {world} processes.",
                                      world).format(size=options.batch_size, world=world))
    _seed_everything(options.seed)

    train_rows, val_rows = _split_rows(embeddings, options.seed)
    captions = [c for row in train_rows for c in embeddings.images[row]["captions"] if c.strip()]
    language = guess_language(captions) if options.language == AUTO else options.language
    if options.tokenizer == BPE and options.freeze_lm and not options.lm.endswith(".json"):
        raise CaptionerError(_("--freeze-lm cannot learn a new tokenizer's words: a pretrained GPT-2's word table "
                               "holds its own tokens. Leave out --freeze-lm (GPT-2 is then fine-tuned), or give "
                               "--tokenizer the folder of the tokenizer GPT-2 was trained with."))
    tokenizer_dir = _tokenizer_folder(options, out, models_dir, captions, language, run, resume)
    tokenizer = load_tokenizer(tokenizer_dir, " " + _("Get it with: captioner models download {name}").format(
        name="gpt2"))
    try:
        stop_token_id(tokenizer, language)
    except ManifestError as exc:  # GPT-2's tokenizer and "。", say
        if options.tokenizer == BPE:
            raise CaptionerError(str(exc)) from None
        hint = _("{problem} --tokenizer bpe learns a tokenizer that has one.").format(problem=exc)
        raise CaptionerError(hint) from None
    if rank == 0 and language != ENGLISH and options.tokenizer is None:
        print(_("The captions are not English, and GPT-2's tokenizer spells their words in bytes: --tokenizer bpe "
                "learns a tokenizer from them."), file=sys.stderr)
    clipcap = build_model(options, embeddings.vectors.shape[1], models_dir)
    resized_from = fit_word_table(clipcap, len(tokenizer))
    if rank == 0 and resized_from is not None and saved_state is None:
        print(_("GPT-2's word table was resized from {before} to {after} tokens to fit the tokenizer.").format(
            before=resized_from, after=len(tokenizer)), file=sys.stderr)
    if saved_state is not None:
        clipcap.load_state_dict(load_weights(out / WEIGHTS), strict=True)
    if options.freeze_lm:
        clipcap.gpt.requires_grad_(False)
    clipcap.to(device)

    context = clipcap.gpt.config.n_positions - options.prefix_length
    train_data, stats = tokenize_captions(embeddings, train_rows, tokenizer, max_length, context, language)
    val_data = tokenize_captions(embeddings, val_rows, tokenizer, stats["max_length"], context, language)[0]
    if rank == 0 and stats["cut"]:
        print(ngettext("{count} caption longer than {length} tokens was cut.",
                       "{count} captions longer than {length} tokens were cut.", stats["cut"]).format(
            count=stats["cut"], length=stats["max_length"]), file=sys.stderr)
    vectors = embeddings.vectors

    raw_model = CaptionLoss(clipcap)
    model: nn.Module = raw_model
    if world > 1:
        model = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    trainable = [p for p in clipcap.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=options.lr, weight_decay=0.0)
    per_process = options.batch_size // world
    steps_per_epoch = math.ceil(math.ceil(len(train_data) / options.batch_size) / options.accumulate)
    total_steps = max(1, steps_per_epoch * options.epochs)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _linear_warmup_decay(options.warmup, total_steps))
    scaler = run.scaler
    if rank == 0:
        print(_("Training on {device} ({precision}).").format(device=device_name(device), precision=_(run.precision)),
              file=sys.stderr)
    log = {"options": asdict(options), "data": stats, "device": device_name(device), "precision": run.precision,
           "epochs": []}
    first_epoch = 0
    if saved_state is not None:
        optimizer.load_state_dict(saved_state["optimizer"])
        scheduler.load_state_dict(saved_state["scheduler"])
        if saved_state.get("scaler"):
            scaler.load_state_dict(saved_state["scaler"])
        first_epoch = saved_state["epoch"]
        log["epochs"] = saved_state["log"]["epochs"]
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
        _copy_tokenizer(tokenizer_dir, out / "tokenizer")
    manifest = manifest_for(out, options, clipcap, embeddings.clip, language)

    for epoch in range(first_epoch, options.epochs):
        started = time.perf_counter()
        set_train_mode(clipcap, options.freeze_lm)
        order = _epoch_order(len(train_data), options.seed, epoch, rank, world)
        batches = [order[i:i + per_process] for i in range(0, len(order), per_process)]
        bar = tqdm(batches, desc=_("epoch {epoch}/{epochs}").format(epoch=epoch + 1, epochs=options.epochs),
                   unit="batch", disable=not progress or rank,
                   file=sys.stderr, leave=False)
        running, seen = 0.0, 0
        for step, rows in enumerate(bar):
            last_of_group = (step + 1) % options.accumulate == 0 or step + 1 == len(batches)
            sync = nullcontext() if last_of_group or world == 1 else model.no_sync()
            with sync, run.autocast():
                loss = model(vectors[train_data.image_index[rows]].to(device), train_data.tokens[rows].to(device),
                             train_data.mask[rows].to(device))
            scaler.scale(loss / options.accumulate).backward()
            if last_of_group:
                scaler.step(optimizer)
                scaler.update()
                optimizer.zero_grad(set_to_none=True)
                scheduler.step()
            running += float(loss.detach()) * len(rows)
            seen += len(rows)
            bar.set_postfix(loss=f"{running / seen:.3f}")
        bar.close()
        train_loss = _mean_across(running, seen, device, world)
        val_loss = evaluate_loss(raw_model, val_data, vectors, per_process, run)
        entry = {"epoch": epoch + 1, "train_loss": round(train_loss, 5), "val_loss": round(val_loss, 5),
                 "seconds": round(time.perf_counter() - started, 2)}
        log["epochs"].append(entry)
        if rank == 0:
            state = {"epoch": epoch + 1, "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                     "scaler": scaler.state_dict() if scaler.is_enabled() else None, "options": asdict(options), "log": log,
                     "clip": {"model": embeddings.clip.model, "weights": embeddings.clip.weights}}
            save_checkpoint(out, clipcap, manifest, state, log)
            print(_("epoch {epoch}/{epochs}: train loss {train_loss:.4f}, validation loss {val_loss:.4f} "
                    "({seconds:.0f} s), saved {folder}").format(epoch=epoch + 1, epochs=options.epochs,
                                                                train_loss=train_loss, val_loss=val_loss,
                                                                seconds=entry["seconds"], folder=out),
                  file=sys.stderr)
        if world > 1:
            dist.barrier()
    return out


@torch.no_grad()
def evaluate_loss(model: CaptionLoss, data: CaptionData, vectors: torch.Tensor, batch_size: int, run: Run) -> float:
    """The mean loss over `data`, each process taking every world-th example (`model` without DDP's wrapper)."""
    if len(data) == 0:
        return float("nan")
    device = run.device
    model.clipcap.eval()
    rows = list(range(run.rank, len(data), run.world))
    total = 0.0
    for start in range(0, len(rows), batch_size):
        batch = rows[start:start + batch_size]
        with run.autocast():
            loss = model(vectors[data.image_index[batch]].to(device), data.tokens[batch].to(device),
                          data.mask[batch].to(device))
        total += float(loss) * len(batch)
    return _mean_across(total, len(rows), device, run.world)


def _mean_across(total: float, count: int, device, world: int) -> float:
    if world > 1:
        numbers = torch.tensor([total, float(count)], dtype=torch.float64, device=device)
        dist.all_reduce(numbers)
        total, count = float(numbers[0]), float(numbers[1])
    return total / max(count, 1)


def _epoch_order(n: int, seed: int, epoch: int, rank: int, world: int) -> list[int]:
    """A fresh shuffle per epoch, the same on every process; each process takes every world-th example."""
    generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    order = torch.randperm(n, generator=generator).tolist()
    usable = (n // world) * world if n >= world else n
    return order[:usable][rank::world]


def _split_rows(embeddings: Embeddings, seed: int) -> tuple[list[int], list[int]]:
    """Training images, and validation images: the 'val' split, or 5% of the training images held out."""
    train_rows = embeddings.split("train")
    val_rows = embeddings.split("val")
    if not train_rows:
        raise CaptionerError(_("The embeddings hold no images of split '{split}'.").format(split="train"))
    if not val_rows and len(train_rows) > 1:
        shuffled = train_rows[:]
        random.Random(seed).shuffle(shuffled)
        held = max(1, len(shuffled) // 20)
        val_rows, train_rows = sorted(shuffled[:held]), sorted(shuffled[held:])
    return train_rows, val_rows


def _linear_warmup_decay(warmup: int, total: int):
    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return max(0.0, (total - step) / max(1, total - warmup))

    return factor


def _mixed_precision(device: torch.device):
    """bf16 autocast where the GPU has it (no scaler needed), else fp16 with a gradient scaler; fp32 on the CPU.
    Returns the autocast context factory, the scaler (enabled for fp16 only) and words for the log."""
    if device.type != "cuda":
        return nullcontext, torch.amp.GradScaler("cpu", enabled=False), N_("fp32")
    if torch.cuda.is_bf16_supported():
        return ((lambda: torch.autocast("cuda", dtype=torch.bfloat16)), torch.amp.GradScaler("cuda", enabled=False),
                N_("bf16 mixed precision"))
    return ((lambda: torch.autocast("cuda", dtype=torch.float16)), torch.amp.GradScaler("cuda"),
            N_("fp16 mixed precision"))


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)


def _inside(file: Path, folder: Path) -> str:
    """A CLIP file for the trained model's manifest, which may only name files in the model's folder or the models
    folder around it: one elsewhere is copied into the model's folder first."""
    folder, file = folder.resolve(), file.resolve()
    if not (file.is_relative_to(folder) or file.is_relative_to(folder.parent)):
        target = folder / "clip" / file.name
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.is_file() or target.stat().st_size != file.stat().st_size:
            shutil.copy2(file, target)
        file = target
    return os.path.relpath(file, folder).replace(os.sep, "/")


def _tokenizer_folder(options: TrainOptions, out: Path, models_dir: Path | None, captions: list[str], language: str,
                      run: Run, resume: bool) -> Path:
    """The tokenizer's folder: the one named, GPT-2's in the models folder, or, for "bpe", one learned from the
    training captions (in `language`, each ended as it is trained) into the model's folder (by the first process;
    a resumed run keeps the one it began with)."""
    if options.tokenizer != BPE:
        return Path(options.tokenizer) if options.tokenizer else (models_dir or default_models_dir()) / TOKENIZER_FOLDER
    folder = out / "tokenizer"
    if not (resume and all((folder / name).is_file() for name in TOKENIZER_FILES)):
        if run.rank == 0:
            train_bpe([end_with_stop(c, language) for c in captions], folder, options.vocab_size)
        if run.world > 1:
            dist.barrier()
    return folder


def _copy_tokenizer(source: Path, target: Path) -> None:
    target.mkdir(parents=True, exist_ok=True)
    for name in TOKENIZER_FILES:
        if source.resolve() != target.resolve():
            shutil.copy2(source / name, target / name)


def _resume_state(out: Path, embeddings: Embeddings, options: TrainOptions) -> tuple[dict, TrainOptions]:
    if not (out / STATE).is_file() or not (out / WEIGHTS).is_file():
        raise CaptionerError(_("Nothing to resume in {folder}: it has no {state} and {weights}.").format(
            folder=out, state=STATE, weights=WEIGHTS))
    state = torch.load(out / STATE, map_location="cpu", weights_only=True)
    clip = state["clip"]
    if (clip["model"], clip["weights"]) != (embeddings.clip.model, embeddings.clip.weights):
        raise CaptionerError(_("The model in {folder} was trained on CLIP {model} ({weights}), but these embeddings "
                               "were made with {used_model} ({used_weights}).").format(
            folder=out, model=clip["model"], weights=clip["weights"], used_model=embeddings.clip.model,
            used_weights=embeddings.clip.weights))
    kept = state["options"]  # a run saved before an option existed has its default
    saved = TrainOptions(**{f.name: kept[f.name] for f in fields(TrainOptions) if f.name in kept})
    # The architecture and data settings are the saved run's; the number of epochs and the device may change.
    saved.epochs, saved.device = options.epochs, options.device
    return state, saved

