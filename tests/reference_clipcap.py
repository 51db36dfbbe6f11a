"""The reference ClipCap (Mokady et al.), transcribed for the tests: its model classes and its decoding loops.

The engine is checked against this: the same checkpoint layout, the same prefix, the same tokens. The loops re-run
GPT-2 over the whole sequence at every step, without a cache, as the reference code does.
"""

from __future__ import annotations

import torch
import torch.nn.functional as nnf
from torch import nn


class MLP(nn.Module):
    def __init__(self, sizes, bias=True, act=nn.Tanh):
        super().__init__()
        layers = []
        for i in range(len(sizes) - 1):
            layers.append(nn.Linear(sizes[i], sizes[i + 1], bias=bias))
            if i < len(sizes) - 2:
                layers.append(act())
        self.model = nn.Sequential(*layers)

    def forward(self, x):
        return self.model(x)


class MlpTransformer(nn.Module):
    def __init__(self, in_dim, h_dim, out_d=None, act=nnf.relu):
        super().__init__()
        self.fc1 = nn.Linear(in_dim, h_dim)
        self.act = act
        self.fc2 = nn.Linear(h_dim, out_d or in_dim)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class MultiHeadAttention(nn.Module):
    def __init__(self, dim_self, dim_ref, num_heads, bias=True):
        super().__init__()
        self.num_heads = num_heads
        self.scale = (dim_self // num_heads) ** -0.5
        self.to_queries = nn.Linear(dim_self, dim_self, bias=bias)
        self.to_keys_values = nn.Linear(dim_ref, dim_self * 2, bias=bias)
        self.project = nn.Linear(dim_self, dim_self)

    def forward(self, x):
        b, n, c = x.shape
        queries = self.to_queries(x).reshape(b, n, self.num_heads, c // self.num_heads)
        keys_values = self.to_keys_values(x).reshape(b, n, 2, self.num_heads, c // self.num_heads)
        keys, values = keys_values[:, :, 0], keys_values[:, :, 1]
        attention = torch.einsum("bnhd,bmhd->bnmh", queries, keys) * self.scale
        attention = attention.softmax(dim=2)
        out = torch.einsum("bnmh,bmhd->bnhd", attention, values).reshape(b, n, c)
        return self.project(out)


class TransformerLayer(nn.Module):
    def __init__(self, dim_self, num_heads, mlp_ratio=2.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim_self)
        self.attn = MultiHeadAttention(dim_self, dim_self, num_heads, bias=False)
        self.norm2 = nn.LayerNorm(dim_self)
        self.mlp = MlpTransformer(dim_self, int(dim_self * mlp_ratio))

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class Transformer(nn.Module):
    def __init__(self, dim_self, num_heads, num_layers):
        super().__init__()
        self.layers = nn.ModuleList([TransformerLayer(dim_self, num_heads) for _ in range(num_layers)])

    def forward(self, x):
        for layer in self.layers:
            x = layer(x)
        return x


class TransformerMapper(nn.Module):
    def __init__(self, dim_clip, dim_embedding, prefix_length, clip_length, num_layers=8):
        super().__init__()
        self.clip_length = clip_length
        self.transformer = Transformer(dim_embedding, 8, num_layers)
        self.linear = nn.Linear(dim_clip, clip_length * dim_embedding)
        self.prefix_const = nn.Parameter(torch.randn(prefix_length, dim_embedding))

    def forward(self, x):
        x = self.linear(x).view(x.shape[0], self.clip_length, -1)
        prefix = self.prefix_const.unsqueeze(0).expand(x.shape[0], *self.prefix_const.shape)
        return self.transformer(torch.cat((x, prefix), dim=1))[:, self.clip_length:]


class ClipCaptionModel(nn.Module):
    def __init__(self, gpt, prefix_length, clip_dim, mapping="mlp", clip_length=None, num_layers=8):
        super().__init__()
        self.prefix_length = prefix_length
        self.gpt = gpt
        size = gpt.transformer.wte.weight.shape[1]
        if mapping == "mlp":
            self.clip_project = MLP((clip_dim, (size * prefix_length) // 2, size * prefix_length))
        else:
            self.clip_project = TransformerMapper(clip_dim, size, prefix_length, clip_length, num_layers)

    def prefix_embeds(self, clip_vector, normalize=False):
        if normalize:
            clip_vector = clip_vector / clip_vector.norm(2, -1, keepdim=True)
        return self.clip_project(clip_vector).reshape(clip_vector.shape[0], self.prefix_length, -1)


@torch.no_grad()
def reference_greedy(model, embed, stop_token_index, entry_length=67):
    """The reference's loop: the whole sequence through GPT-2 each step, argmax, stop after the stop token."""
    tokens = None
    generated = embed
    for _ in range(entry_length):
        logits = model.gpt(inputs_embeds=generated).logits[:, -1, :]
        next_token = torch.argmax(logits, -1).unsqueeze(0)
        next_token_embed = model.gpt.transformer.wte(next_token)
        tokens = next_token if tokens is None else torch.cat((tokens, next_token), dim=1)
        generated = torch.cat((generated, next_token_embed), dim=1)
        if stop_token_index == next_token.item():
            break
    return tokens[0].tolist()


@torch.no_grad()
def reference_beam(model, embed, stop_token_index, beam_size=5, entry_length=67, temperature=1.0):
    """The reference's generate_beam, returning the best beam's tokens (cut at its length)."""
    tokens = None
    scores = None
    device = embed.device
    seq_lengths = torch.ones(beam_size, device=device)
    is_stopped = torch.zeros(beam_size, device=device, dtype=torch.bool)
    generated = embed
    for _ in range(entry_length):
        logits = model.gpt(inputs_embeds=generated).logits
        logits = logits[:, -1, :] / (temperature if temperature > 0 else 1.0)
        logits = logits.softmax(-1).log()
        if scores is None:
            scores, next_tokens = logits.topk(beam_size, -1)
            generated = generated.expand(beam_size, *generated.shape[1:])
            next_tokens, scores = next_tokens.permute(1, 0), scores.squeeze(0)
            tokens = next_tokens
        else:
            logits[is_stopped] = -float(torch.inf)
            logits[is_stopped, 0] = 0
            scores_sum = scores[:, None] + logits
            seq_lengths[~is_stopped] += 1
            scores_sum_average = scores_sum / seq_lengths[:, None]
            scores_sum_average, next_tokens = scores_sum_average.view(-1).topk(beam_size, -1)
            next_tokens_source = next_tokens // scores_sum.shape[1]
            seq_lengths = seq_lengths[next_tokens_source]
            next_tokens = next_tokens % scores_sum.shape[1]
            next_tokens = next_tokens.unsqueeze(1)
            tokens = tokens[next_tokens_source]
            tokens = torch.cat((tokens, next_tokens), dim=1)
            generated = generated[next_tokens_source]
            scores = scores_sum_average * seq_lengths
            is_stopped = is_stopped[next_tokens_source]
        next_token_embed = model.gpt.transformer.wte(next_tokens.squeeze()).view(generated.shape[0], 1, -1)
        generated = torch.cat((generated, next_token_embed), dim=1)
        is_stopped = is_stopped + next_tokens.eq(stop_token_index).squeeze()
        if is_stopped.all():
            break
    scores = scores / seq_lengths
    best = int(scores.argsort(descending=True)[0])
    return tokens[best][: int(seq_lengths[best])].tolist()
