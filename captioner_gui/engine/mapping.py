"""The two mapping networks of ClipCap: a CLIP vector in, K prefix embeddings for GPT-2 out.

Parameter names follow the released checkpoints (under `clip_project.`), so they load with strict key checking.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class MLPMapper(nn.Module):
    """Linear(d_clip, D*K/2) -> Tanh -> Linear(D*K/2, D*K), reshaped to (K, D)."""

    def __init__(self, clip_dim: int, embed_dim: int, prefix_length: int):
        super().__init__()
        self.prefix_length = prefix_length
        self.embed_dim = embed_dim
        hidden = embed_dim * prefix_length // 2
        self.model = nn.Sequential(
            nn.Linear(clip_dim, hidden), nn.Tanh(), nn.Linear(hidden, embed_dim * prefix_length)
        )

    def forward(self, clip_vectors: torch.Tensor) -> torch.Tensor:
        return self.model(clip_vectors).view(-1, self.prefix_length, self.embed_dim)


class Attention(nn.Module):
    """Multi-head self-attention with the reference's layout: keys and values come from one projection."""

    def __init__(self, dim: int, n_head: int):
        super().__init__()
        self.n_head = n_head
        self.to_queries = nn.Linear(dim, dim, bias=False)
        self.to_keys_values = nn.Linear(dim, 2 * dim, bias=False)
        self.project = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        h = self.n_head
        q = self.to_queries(x).view(b, n, h, c // h).transpose(1, 2)
        kv = self.to_keys_values(x).view(b, n, 2, h, c // h)
        k, v = kv[:, :, 0].transpose(1, 2), kv[:, :, 1].transpose(1, 2)
        out = F.scaled_dot_product_attention(q, k, v)  # no mask, scale 1/sqrt(head_dim) as in the reference
        return self.project(out.transpose(1, 2).reshape(b, n, c))


class FeedForward(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.relu(self.fc1(x)))


class TransformerLayer(nn.Module):
    """Pre-LayerNorm block: x + attn(norm1(x)), then x + mlp(norm2(x))."""

    def __init__(self, dim: int, n_head: int, mlp_ratio: float = 2.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, n_head)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = FeedForward(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class Transformer(nn.Module):
    def __init__(self, dim: int, n_head: int, n_layers: int):
        super().__init__()
        self.layers = nn.ModuleList(TransformerLayer(dim, n_head) for _ in range(n_layers))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)
        return x


class TransformerMapper(nn.Module):
    """CLIP vector -> clip_length tokens, followed by K learned constants; the outputs at the constants are the prefix."""

    def __init__(self, clip_dim: int, embed_dim: int, prefix_length: int, clip_length: int, n_layers: int = 8,
                 n_head: int = 8):
        super().__init__()
        self.clip_length = clip_length
        self.linear = nn.Linear(clip_dim, clip_length * embed_dim)
        self.prefix_const = nn.Parameter(torch.randn(prefix_length, embed_dim))
        self.transformer = Transformer(embed_dim, n_head, n_layers)

    def forward(self, clip_vectors: torch.Tensor) -> torch.Tensor:
        x = self.linear(clip_vectors).view(clip_vectors.shape[0], self.clip_length, -1)
        const = self.prefix_const.unsqueeze(0).expand(x.shape[0], -1, -1)
        return self.transformer(torch.cat((x, const), dim=1))[:, self.clip_length:]
