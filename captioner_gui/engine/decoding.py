"""Caption decoding from prefix embeddings: greedy, beam search and nucleus sampling.

All three keep GPT-2's key/value cache (each step feeds one new token instead of the whole sequence) and run
a batch of images at once. Their results match the reference implementation's loops token for token:
- greedy: argmax each step, stop after the stop token (".") or the token limit;
- beam: beams ranked by total log-probability / length, a beam stops at the stop token;
- nucleus: sample from the smallest set of tokens whose probability reaches top_p, at a temperature.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Callable, Protocol

import torch
import torch.nn.functional as F

from .options import DecodeOptions


@dataclass
class Decoded:
    tokens: list[int]  # the generated ids, the stop token included when it was reached
    score: float  # mean log-probability of those tokens
    candidates: list[Decoded] = field(default_factory=list)  # beam search: every final beam, best first


class Cache(Protocol):
    """A back end's key/value cache: the two operations beam search needs besides feeding it."""

    def batch_repeat_interleave(self, repeats: int) -> None: ...

    def reorder_cache(self, rows: torch.Tensor) -> None: ...


class Backend(Protocol):
    """What decoding needs of a language model: transformers' GPT-2 (PrefixLM, exact) or the lean FastGPT2
    (fast_gpt2.FastPrefixLM). Each call returns the fp32 logits of the last position (batch, vocab) and the
    cache."""

    def start(self, prefix: torch.Tensor, max_new_tokens: int) -> tuple[torch.Tensor, Cache]:
        """Feeds the prefix embeddings (batch, K, D); room is kept for `max_new_tokens` more."""
        ...

    def step(self, tokens: torch.Tensor, cache: Cache) -> tuple[torch.Tensor, Cache]:
        """Feeds one new token per row (batch,)."""
        ...


class PrefixLM:
    """GPT-2 (a transformers GPT2LMHeadModel) as a Backend: prefix embeddings, then one token at a time."""

    def __init__(self, gpt):
        self.gpt = gpt
        self.embed = gpt.get_input_embeddings()
        # transformers 5 calls the key/value cache `cache`; earlier releases called it `past_key_values`.
        self.cache_name = "cache" if "cache" in inspect.signature(gpt.forward).parameters else "past_key_values"

    def start(self, prefix: torch.Tensor, max_new_tokens: int) -> tuple[torch.Tensor, Cache]:
        return self._run(prefix, None)

    def step(self, tokens: torch.Tensor, cache: Cache) -> tuple[torch.Tensor, Cache]:
        return self._run(self.embed(tokens[:, None]), cache)

    def _run(self, embeds: torch.Tensor, cache: Cache | None) -> tuple[torch.Tensor, Cache]:
        out = self.gpt(inputs_embeds=embeds, use_cache=True, logits_to_keep=1, **{self.cache_name: cache})
        return out.logits[:, -1].float(), getattr(out, self.cache_name)


def decode(lm: Backend, prefix: torch.Tensor, stop_token: int, options: DecodeOptions) -> list[Decoded]:
    if options.method == "greedy" or (options.method == "beam" and options.beam_size == 1):
        return greedy(lm, prefix, stop_token, options.max_tokens)
    if options.method == "beam":
        return beam_search(lm, prefix, stop_token, options.max_tokens, options.beam_size, options.temperature)
    return nucleus(lm, prefix, stop_token, options.max_tokens, options.top_p, options.temperature, options.seed)


def greedy(lm: Backend, prefix: torch.Tensor, stop_token: int, max_tokens: int) -> list[Decoded]:
    return _one_token_at_a_time(lm, prefix, stop_token, max_tokens, lambda logits: logits.argmax(dim=-1))


@torch.inference_mode()
def beam_search(lm: Backend, prefix: torch.Tensor, stop_token: int, max_tokens: int, beam_size: int,
                temperature: float = 1.0) -> list[Decoded]:
    """The reference's beam search, for a batch of images: rows are (image, beam), image-major."""
    batch, device = prefix.shape[0], prefix.device
    logits, cache = lm.start(prefix, max_tokens)
    vocab = logits.shape[-1]
    width = min(beam_size, vocab)
    logprobs = F.log_softmax(logits / temperature, dim=-1)
    scores, first = logprobs.topk(width, dim=-1)  # (batch, width): every beam starts from the shared prefix
    tokens = first.reshape(-1, 1)
    scores = scores.reshape(-1)
    lengths = torch.ones(batch * width, device=device)
    stopped = tokens[:, 0] == stop_token
    cache.batch_repeat_interleave(width)
    row_offsets = (torch.arange(batch, device=device) * width)[:, None]
    for _ in range(max_tokens - 1):
        if bool(stopped.all()):
            break
        logits, cache = lm.step(tokens[:, -1], cache)
        logprobs = F.log_softmax(logits / temperature, dim=-1)
        # A stopped beam can only be continued by a filler token (id 0) that costs nothing and is cut off later.
        logprobs[stopped] = float("-inf")
        logprobs[stopped, 0] = 0.0
        totals = scores[:, None] + logprobs
        new_lengths = lengths + (~stopped).float()
        averages = (totals / new_lengths[:, None]).view(batch, width * vocab)
        best, index = averages.topk(width, dim=-1)
        source = (index // vocab + row_offsets).reshape(-1)
        next_tokens = (index % vocab).reshape(-1)
        lengths = new_lengths[source]
        scores = best.reshape(-1) * lengths
        tokens = torch.cat((tokens[source], next_tokens[:, None]), dim=1)
        stopped = stopped[source] | (next_tokens == stop_token)
        cache.reorder_cache(source)
    averages = (scores / lengths).view(batch, width)
    ranked, order = averages.sort(dim=-1, descending=True, stable=True)  # best first; ties: the first beam
    rows = (order + row_offsets).reshape(-1)
    every = _collect(tokens[rows], lengths[rows].long(), ranked.reshape(-1))
    results = []
    for image in range(batch):
        beams = every[image * width:(image + 1) * width]
        results.append(Decoded(beams[0].tokens, beams[0].score, candidates=beams))
    return results


def nucleus(lm: Backend, prefix: torch.Tensor, stop_token: int, max_tokens: int, top_p: float,
            temperature: float, seed: int | None) -> list[Decoded]:
    """Top-p sampling. Each image has its own generator seeded with `seed`: a batch samples as singles do."""
    if seed is None:
        seed = int(torch.randint(0, 2**31 - 1, (1,)).item())
    generators = [torch.Generator(device="cpu").manual_seed(seed) for _ in range(prefix.shape[0])]

    def sample(logits: torch.Tensor) -> torch.Tensor:
        probs = F.softmax(logits / temperature, dim=-1)
        sorted_probs, order = probs.sort(dim=-1, descending=True)
        outside = sorted_probs.cumsum(dim=-1) - sorted_probs >= top_p  # the first token is always kept
        sorted_probs = sorted_probs.masked_fill(outside, 0.0).cpu()
        picks = torch.stack([torch.multinomial(row, 1, generator=g) for row, g in zip(sorted_probs, generators)])
        return order.gather(1, picks.to(order.device))[:, 0]

    return _one_token_at_a_time(lm, prefix, stop_token, max_tokens, sample)


@torch.inference_mode()
def _one_token_at_a_time(lm: Backend, prefix: torch.Tensor, stop_token: int, max_tokens: int,
                         choose: Callable[[torch.Tensor], torch.Tensor]) -> list[Decoded]:
    """One sequence per image; `choose` picks each next token from the logits. A row that reached the stop
    token keeps running with the others, but its tokens after the stop are cut and not scored."""
    batch, device = prefix.shape[0], prefix.device
    logits, cache = lm.start(prefix, max_tokens)
    tokens = torch.empty(batch, 0, dtype=torch.long, device=device)
    logprob_sum = torch.zeros(batch, device=device)
    lengths = torch.zeros(batch, dtype=torch.long, device=device)
    stopped = torch.zeros(batch, dtype=torch.bool, device=device)
    for step in range(max_tokens):
        next_tokens = choose(logits)
        running = ~stopped
        logprobs = F.log_softmax(logits, dim=-1).gather(1, next_tokens[:, None])[:, 0]
        logprob_sum += torch.where(running, logprobs, 0.0)
        lengths += running.long()
        tokens = torch.cat((tokens, next_tokens[:, None]), dim=1)
        stopped |= next_tokens == stop_token
        if bool(stopped.all()) or step == max_tokens - 1:
            break
        logits, cache = lm.step(next_tokens, cache)
    return _collect(tokens, lengths, logprob_sum / lengths.clamp(min=1))


def _collect(tokens: torch.Tensor, lengths: torch.Tensor, scores: torch.Tensor) -> list[Decoded]:
    rows = tokens.cpu().tolist()
    return [
        Decoded(tokens=row[:length], score=float(score))
        for row, length, score in zip(rows, lengths.cpu().tolist(), scores.cpu().tolist())
    ]
