"""Vision transformer as in the CIFAR-10 ViT the syre appendix uses: patch 4, dim 512, depth 6, heads 8,
MLP 512, dropout 0.1, a class token, learned position embeddings, pre-norm blocks. Attention uses
plain nn.Linear projections (not nn.MultiheadAttention's raw parameters) so syre's module-type
selection sees every weight.

Layer names: ``embed``, ``blocks.<i>``, ``pre_head`` (the final layer's input: normed class token), ``head``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from symexp.models.vision_common import seeded, single_seed


class Attention(nn.Module):
    def __init__(self, dim: int, heads: int, head_dim: int, dropout: float) -> None:
        super().__init__()
        self.heads, self.head_dim = heads, head_dim
        self.qkv = nn.Linear(dim, 3 * heads * head_dim, bias=False)
        self.proj = nn.Linear(heads * head_dim, dim)
        self.drop = nn.Dropout(dropout)
        self.p = dropout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        out = nn.functional.scaled_dot_product_attention(q, k, v, dropout_p=self.p if self.training else 0.0)
        return self.drop(self.proj(out.transpose(1, 2).reshape(b, n, -1)))


class Block(nn.Module):
    def __init__(self, dim: int, heads: int, head_dim: int, mlp_dim: int, dropout: float) -> None:
        super().__init__()
        self.norm1, self.attn = nn.LayerNorm(dim), Attention(dim, heads, head_dim, dropout)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(
            nn.Linear(dim, mlp_dim), nn.GELU(), nn.Dropout(dropout), nn.Linear(mlp_dim, dim), nn.Dropout(dropout)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class ViT(nn.Module):
    def __init__(
        self,
        in_channels: int = 3,
        image_size: int = 32,
        num_classes: int = 10,
        patch: int = 4,
        dim: int = 512,
        depth: int = 6,
        heads: int = 8,
        head_dim: int = 64,
        mlp_dim: int = 512,
        dropout: float = 0.1,
        emb_dropout: float = 0.1,
        seeds: Sequence[int] = (0,),
    ) -> None:
        super().__init__()
        if image_size % patch:
            raise ValueError(f"model.patch: image_size {image_size} is not divisible by patch {patch}")
        self.patch, self.feature_dim = patch, dim
        n_patches = (image_size // patch) ** 2
        with seeded(single_seed(seeds, "vit")):
            self.embed = nn.Sequential(nn.LayerNorm(in_channels * patch * patch), nn.Linear(in_channels * patch * patch, dim), nn.LayerNorm(dim))
            self.cls = nn.Parameter(torch.randn(1, 1, dim))
            self.pos = nn.Parameter(torch.randn(1, n_patches + 1, dim))
            self.drop = nn.Dropout(emb_dropout)
            self.blocks = nn.Sequential(*[Block(dim, heads, head_dim, mlp_dim, dropout) for _ in range(depth)])
            self.norm = nn.LayerNorm(dim)
            self.pre_head = nn.Identity()
            self.head = nn.Linear(dim, num_classes)

    def init_extra(self) -> None:
        with torch.no_grad():
            self.cls.normal_()
            self.pos.normal_()

    def patches(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        p = self.patch
        x = x.view(b, c, h // p, p, w // p, p).permute(0, 2, 4, 3, 5, 1)
        return x.reshape(b, (h // p) * (w // p), p * p * c)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.embed(self.patches(x))
        tokens = torch.cat([self.cls.expand(x.shape[0], -1, -1), tokens], 1) + self.pos
        tokens = self.blocks(self.drop(tokens))
        return self.pre_head(self.norm(tokens[:, 0]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))
