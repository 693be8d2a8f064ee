"""DCS (seed 004): enforce a constraint P theta = 0 through an artificial mirror symmetry plus weight decay.

theta = (I - P) w + (P u) * (P v), trained with weight decay gamma (|u|^2 + |v|^2 + |w|^2) (our
best reading). The product (P u) * (P v) has the rescaling mirror u -> -u, v -> -v on the range of P, so
weight decay drives P theta toward 0; P = I gives theta = u * v, whose minimum-norm factorisation makes the
decay equal to the L1 penalty 2 gamma |theta|_1 (the lasso); P = 0 is the plain model.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


class DCS(nn.Module):
    """A reparametrised parameter vector (batch of `copies` independent vectors of size `dim`)."""

    def __init__(self, dim: int, projector: str | Sequence[float] | torch.Tensor = "identity", copies: int = 1,
                 init_std: float = 0.1, seed: int = 0) -> None:
        super().__init__()
        if isinstance(projector, str):
            if projector not in ("identity", "zero"):
                raise ValueError(f"model.projector: choose identity, zero or a 0/1 mask, got {projector!r}")
            mask = torch.ones(dim) if projector == "identity" else torch.zeros(dim)
            self.register_buffer("p", torch.diag(mask))
        else:
            p = torch.as_tensor(projector, dtype=torch.float32)
            if p.dim() == 1:
                p = torch.diag(p)
            if p.shape != (dim, dim):
                raise ValueError(f"model.projector: need a mask of {dim} or a {dim}x{dim} matrix, got {tuple(p.shape)}")
            self.register_buffer("p", p)
        gen = torch.Generator().manual_seed(seed)
        self.u = nn.Parameter(torch.randn(copies, dim, generator=gen) * init_std)
        self.v = nn.Parameter(torch.randn(copies, dim, generator=gen) * init_std)
        self.w = nn.Parameter(torch.randn(copies, dim, generator=gen) * init_std)

    def theta(self) -> torch.Tensor:
        eye = torch.eye(self.p.shape[0], device=self.p.device)
        return self.w @ (eye - self.p).T + (self.u @ self.p.T) * (self.v @ self.p.T)

    def decay(self) -> torch.Tensor:
        """|u|^2 + |v|^2 + |w|^2 per copy (add gamma times this, or use the optimizer's weight decay)."""
        return self.u.square().sum(-1) + self.v.square().sum(-1) + self.w.square().sum(-1)

    def mirror_constraint(self) -> torch.Tensor:
        """|O^T theta'| with theta' = (u, v) on the range of P: per copy, the mean over coordinates of the
        rescaling mirror's |(P u)_i, (P v)_i|."""
        pu, pv = self.u @ self.p.T, self.v @ self.p.T
        return torch.sqrt(pu.square() + pv.square()).mean(-1)


def dcs_model(dim: int, projector="identity", copies: int = 1, init_std: float = 0.1,
              seeds: Sequence[int] = (0,)) -> DCS:
    """Hydra factory (model group)."""
    if len(seeds) > 1:
        raise ValueError("ensemble.size: DCS models batch their own copies; use ensemble.size=1")
    return DCS(dim, projector, copies, init_std, int(seeds[0]))
