"""Caption decoding from prefix embeddings: greedy, beam search and nucleus sampling.

All three keep GPT-2's key/value cache (each step feeds one new token instead of the whole sequence) and run
a batch of images at once; a row that reached the stop token (a caption, or a beam) leaves the batch, so that the
steps after it cost only the rows still running. Their results match the reference implementation's loops token
for token:
- greedy: argmax each step, stop after the stop token (".", or "。" for a model that writes Chinese: the caller
  passes the id of its model's language's stop, see tokenizer.stop_token_id) or the token limit;
- beam: beams ranked by total log-probability / length, a beam stops at the stop token;
- nucleus: sample from the smallest set of tokens whose probability reaches top_p, at a temperature.
"""

from __future__ import annotations

import math
import secrets
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

import numpy as np

from .options import DecodeOptions


@dataclass
class Decoded:
    tokens: list[int]  # the generated ids, the stop token included when it was reached
    score: float  # mean log-probability of those tokens
    candidates: list[Decoded] = field(default_factory=list)  # beam search: every final beam, best first


class Backend(Protocol):
    """What decoding needs of a language model. Three implement it: transformers' GPT-2 (model.PrefixLM, exact),
    the lean GPT-2 for CUDA (fast_gpt2.FastPrefixLM) and the CPU's onnxruntime graph (onnx_model.OnnxGPT2).
    Decoding itself runs on numpy: each call returns the fp32 logits of the last position (batch, vocab) as a
    numpy array, and the back end's own cache, which decoding never looks into."""

    def start(self, prefix: Any, max_new_tokens: int) -> tuple[np.ndarray, Any]:
        """Feeds the prefix embeddings (batch, K, D), in the back end's own array type; room is kept for
        `max_new_tokens` more."""
        ...

    def step(self, tokens: np.ndarray, cache: Any) -> tuple[np.ndarray, Any]:
        """Feeds one new token per row (batch,)."""
        ...

    def repeat(self, cache: Any, times: int) -> Any:
        """Each row `times` times in a row (beam search's beams start from their image's prefix)."""
        ...

    def reorder(self, cache: Any, rows: np.ndarray) -> Any:
        """Keeps the rows named, in that order, repeats allowed: beam search picks which beams go on (a beam can go
        on twice), and rows that stopped leave, so the count of rows can change either way."""
        ...


def max_logit_error(reference: np.ndarray, other: np.ndarray) -> float:
    """Largest absolute difference, relative to the spread of the reference logits: how int8's logits are compared
    with fp32's (the CPU form's check, the benchmark and the tests)."""
    return float(np.abs(reference - other).max() / max(float(reference.std()), math.ulp(1.0)))


def log_sum_exp(logits: np.ndarray) -> np.ndarray:
    """log(sum(exp(row))) of each row, (rows, 1)."""
    top = logits.max(axis=-1, keepdims=True)
    return top + np.log(np.exp(logits - top).sum(axis=-1, keepdims=True))


def log_softmax(logits: np.ndarray) -> np.ndarray:
    return logits - log_sum_exp(logits)


def best_tokens(logits: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Each row's k largest values and their tokens, (rows, k), largest first; among equal values the lower token
    first. For a few, k passes of argmax (each reads the row once) are five times faster than argpartition."""
    if k > 16:
        tokens = np.argpartition(-logits, k - 1, axis=-1)[:, :k] if k < logits.shape[-1] else \
            np.broadcast_to(np.arange(logits.shape[-1]), logits.shape)
        values = np.take_along_axis(logits, tokens, axis=-1)
        order = np.lexsort((tokens, -values), axis=-1)
        tokens = np.take_along_axis(tokens, order, axis=-1)
    else:
        k = min(k, logits.shape[-1])
        left, rows = logits.copy(), np.arange(logits.shape[0])
        tokens = np.empty((logits.shape[0], k), dtype=np.int64)
        for rank in range(k):
            tokens[:, rank] = left.argmax(axis=-1)  # the first of equal values
            left[rows, tokens[:, rank]] = -np.inf
    return tokens, np.take_along_axis(logits, tokens, axis=-1)


def decode(lm: Backend, prefix, stop_token: int, options: DecodeOptions) -> list[Decoded]:
    if options.method == "greedy" or (options.method == "beam" and options.beam_size == 1):
        return greedy(lm, prefix, stop_token, options.max_tokens)
    if options.method == "beam":
        return beam_search(lm, prefix, stop_token, options.max_tokens, options.beam_size, options.temperature)
    return nucleus(lm, prefix, stop_token, options.max_tokens, options.top_p, options.temperature, options.seed)


def greedy(lm: Backend, prefix, stop_token: int, max_tokens: int) -> list[Decoded]:
    return _one_token_at_a_time(lm, prefix, stop_token, max_tokens, lambda logits, rows: logits.argmax(axis=-1))


def beam_search(lm: Backend, prefix, stop_token: int, max_tokens: int, beam_size: int,
                temperature: float = 1.0) -> list[Decoded]:
    """The reference's beam search, for a batch of images: rows are (image, beam), image-major."""
    batch = prefix.shape[0]
    logits, cache = lm.start(prefix, max_tokens)
    vocab = logits.shape[-1]
    width = min(beam_size, vocab)
    first, scores = best_tokens(log_softmax(logits / temperature), width)  # every beam starts from the shared prefix
    tokens = first.reshape(-1, 1)
    scores = scores.reshape(-1)
    lengths = np.ones(batch * width, dtype=np.float32)
    stopped = tokens[:, 0] == stop_token
    cache = lm.repeat(cache, width)
    running = np.flatnonzero(~stopped)  # the rows the cache holds, in its order: a stopped beam needs no more steps
    cache = lm.reorder(cache, running) if len(running) < len(stopped) else cache
    row_offsets = (np.arange(batch) * width)[:, None]
    for _ in range(max_tokens - 1):
        if stopped.all():
            break
        logits, cache = lm.step(tokens[running, -1], cache)
        # Only a beam's `width` best tokens can be among its image's `width` best continuations: those are scored.
        # A stopped beam can only be continued by a filler token (id 0) that costs nothing and is cut off later.
        candidates = np.zeros((len(stopped), width), dtype=np.int64)
        logprobs = np.full((len(stopped), width), -np.inf, dtype=np.float32)
        logprobs[:, 0] = 0.0
        logits = logits / temperature
        candidates[running], logprobs[running] = best_tokens(logits, width)
        logprobs[running] -= log_sum_exp(logits)
        totals = scores[:, None] + logprobs
        new_lengths = lengths + (~stopped)
        averages = (totals / new_lengths[:, None]).reshape(batch, width * width)
        index, best = best_tokens(averages, width)
        source = (index // width + row_offsets).reshape(-1)
        next_tokens = np.take_along_axis(candidates.reshape(batch, width * width), index, axis=-1).reshape(-1)
        lengths = new_lengths[source]
        scores = best.reshape(-1) * lengths
        tokens = np.concatenate((tokens[source], next_tokens[:, None]), axis=1)
        stopped = stopped[source] | (next_tokens == stop_token)
        # A running beam comes from a running one (a stopped beam's only continuation is stopped too).
        place = np.empty(len(stopped), dtype=np.int64)
        place[running] = np.arange(len(running))
        running = np.flatnonzero(~stopped)
        if len(running):
            cache = lm.reorder(cache, place[source[running]])
    averages = (scores / lengths).reshape(batch, width)
    order = np.argsort(-averages, axis=-1, kind="stable")  # best first; ties: the first beam
    ranked = np.take_along_axis(averages, order, axis=-1)
    rows = (order + row_offsets).reshape(-1)
    every = _collect(tokens[rows], lengths[rows].astype(np.int64), ranked.reshape(-1))
    results = []
    for image in range(batch):
        beams = every[image * width:(image + 1) * width]
        results.append(Decoded(beams[0].tokens, beams[0].score, candidates=beams))
    return results


def nucleus(lm: Backend, prefix, stop_token: int, max_tokens: int, top_p: float, temperature: float,
            seed: int | None) -> list[Decoded]:
    """Top-p sampling. Each image has its own generator seeded with `seed`: a batch samples as singles do."""
    seed = secrets.randbits(31) if seed is None else seed
    generators = [np.random.default_rng(seed) for _ in range(prefix.shape[0])]

    def sample(logits: np.ndarray, rows: np.ndarray) -> np.ndarray:
        scaled = logits / temperature
        probs = np.exp(scaled - scaled.max(axis=-1, keepdims=True))
        probs /= probs.sum(axis=-1, keepdims=True)
        order = np.argsort(-probs, axis=-1, kind="stable")
        sorted_probs = np.take_along_axis(probs, order, axis=-1)
        outside = np.cumsum(sorted_probs, axis=-1) - sorted_probs >= top_p  # the first token is always kept
        kept = np.cumsum(np.where(outside, 0.0, sorted_probs), axis=-1)
        picks = [int(np.searchsorted(row, generators[image].random() * row[-1], side="right"))
                 for row, image in zip(kept, rows)]
        return order[np.arange(len(picks)), np.minimum(picks, order.shape[-1] - 1)]

    return _one_token_at_a_time(lm, prefix, stop_token, max_tokens, sample)


def _one_token_at_a_time(lm: Backend, prefix, stop_token: int, max_tokens: int,
                         choose: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> list[Decoded]:
    """One sequence per image; `choose` picks each next token from the logits of the rows still running (and is
    told which rows those are). A row that reached the stop token leaves the batch."""
    batch = prefix.shape[0]
    logits, cache = lm.start(prefix, max_tokens)
    running = np.arange(batch)  # the rows the cache holds, in its order
    tokens = np.zeros((batch, max_tokens), dtype=np.int64)
    logprob_sum = np.zeros(batch, dtype=np.float32)
    lengths = np.zeros(batch, dtype=np.int64)
    for step in range(max_tokens):
        next_tokens = choose(logits, running).astype(np.int64)
        tokens[running, step] = next_tokens
        logprob_sum[running] += logits[np.arange(len(running)), next_tokens] - log_sum_exp(logits)[:, 0]
        lengths[running] += 1
        going_on = next_tokens != stop_token
        if not going_on.any() or step == max_tokens - 1:
            break
        if not going_on.all():
            cache = lm.reorder(cache, np.flatnonzero(going_on))
            running, next_tokens = running[going_on], next_tokens[going_on]
        logits, cache = lm.step(next_tokens, cache)
    return _collect(tokens, lengths, logprob_sum / np.maximum(lengths, 1))


def _collect(tokens: np.ndarray, lengths: np.ndarray, scores: np.ndarray) -> list[Decoded]:
    return [Decoded(tokens=row[:length], score=float(score))
            for row, length, score in zip(tokens.tolist(), lengths.tolist(), scores.tolist())]
