"""Learnable generators h_1..h_k in gl(n) and a learnable group action a(g, theta, X) (seed 003, Sec. 5).

``kind: mlp`` is the paper's action, a 4-layer MLP (hidden 64) taking (vec g, theta, vec X); with
``residual: true`` it outputs theta + MLP(...), which leaves the identity axiom to the loss but starts
near it. ``kind: linear`` is the data-independent linear action a(g, theta) = g theta, for which h itself
is comparable with a textbook generator. ``kind: deformed`` (ours) is the linear action deformed by the
same MLP r taking (g theta, theta, vec X): a = g theta + r(g theta, theta, X) - r(theta, theta, X). The
identity axiom holds exactly, and its field (I + J_r(theta, X)) h theta starts linear in theta, whereas the
paper's MLP field J(theta, X) W_g vec(h) starts nearly constant in theta and gets stuck there (see
docs/discovery.md). ``kind: bilinear`` (ours) multiplies the data into the field: a_X(g, theta) = theta +
A(X) (g - I) theta with A(X) = T_0 + sum_j x_j T_j (T_0 starts at 0), so the field A(X) h theta is linear in
theta and in X; the MLP and deformed actions see X only through activation gating and could not learn a
data-dependent field (docs/discovery.md). The infinitesimal action D_g a_X|_{I,theta}(h) is a forward-mode
derivative (torch.func.jvp) of g -> a(g, theta, X) at g = I along h.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

KINDS = ("mlp", "linear", "deformed", "bilinear")
_ACTS = {"silu": nn.SiLU, "tanh": nn.Tanh, "relu": nn.ReLU, "gelu": nn.GELU}


def _derivative(layer: nn.Module, z: torch.Tensor) -> torch.Tensor:
    """Elementwise derivative of an activation module at its input z."""
    if isinstance(layer, nn.Tanh):
        return 1 - torch.tanh(z) ** 2
    if isinstance(layer, nn.SiLU):
        s = torch.sigmoid(z)
        return s * (1 + z * (1 - s))
    if isinstance(layer, nn.ReLU):
        return (z > 0).to(z)
    return torch.func.jvp(layer, (z,), (torch.ones_like(z),))[1]


def _second_derivative(layer: nn.Module, z: torch.Tensor) -> torch.Tensor:
    """Elementwise second derivative of an activation module at z (for the nested forward mode)."""
    if isinstance(layer, nn.Tanh):
        t = torch.tanh(z)
        return -2 * t * (1 - t**2)
    if isinstance(layer, nn.SiLU):
        s = torch.sigmoid(z)
        return s * (1 - s) * (2 + z * (1 - 2 * s))
    if isinstance(layer, nn.ReLU):
        return torch.zeros_like(z)
    if isinstance(layer, nn.GELU) and layer.approximate == "none":
        return torch.exp(-0.5 * z**2) / (2 * torch.pi) ** 0.5 * (2 - z**2)
    ones = torch.ones_like(z)
    return torch.func.jvp(lambda u: torch.func.jvp(layer, (u,), (ones,))[1], (z,), (ones,))[1]


class GeneratorModel(nn.Module):
    """Holds h (k, n, n) and the action; built lazily once the target's sizes are known (build())."""

    def __init__(
        self,
        k: int = 1,
        kind: str = "mlp",
        hidden: int = 64,
        layers: int = 4,
        activation: str = "silu",
        residual: bool = True,
        init_std: float = 0.5,
        seeds: Sequence[int] = (0,),
    ) -> None:
        super().__init__()
        if len(seeds) > 1:
            raise ValueError("ensemble.size: generator learning trains one model; use ensemble.size=1")
        if kind not in KINDS:
            raise ValueError(f"model.kind: unknown action {kind!r}; choose one of {KINDS}")
        if activation not in _ACTS:
            raise ValueError(f"model.activation: unknown {activation!r}; choose one of {sorted(_ACTS)}")
        if not isinstance(k, int) or k < 1:
            raise ValueError(f"model.k: must be a positive integer, got {k!r}")
        if layers < 2:
            raise ValueError(f"model.layers: need at least 2 linear layers, got {layers}")
        self.k, self.kind, self.hidden, self.layers = k, kind, hidden, layers
        self.activation, self.residual, self.init_std = activation, residual, init_std
        self.seed = int(seeds[0])
        self.n = self.x_size = 0

    @property
    def members(self) -> int:
        return 1

    def build(self, n: int, x_size: int) -> GeneratorModel:
        gen = torch.Generator().manual_seed(self.seed)
        self.n, self.x_size = n, x_size
        self.h = nn.Parameter(torch.randn(self.k, n, n, generator=gen) * self.init_std / n**0.5)
        if self.kind == "bilinear":
            # T_0 = 0: at the start the field is purely data-driven, sum_j x_j T_j h theta
            t = torch.randn(x_size + 1, n, n, generator=gen) / n**0.5
            t[0] = 0.0
            self.t = nn.Parameter(t)
        elif self.kind != "linear":
            torch.manual_seed(self.seed)
            g_size = n * n if self.kind == "mlp" else n  # deformed: the MLP sees g theta, not g
            dims = [g_size + n + x_size] + [self.hidden] * (self.layers - 1) + [n]
            mods: list[nn.Module] = []
            for i in range(len(dims) - 1):
                mods.append(nn.Linear(dims[i], dims[i + 1]))
                if i < len(dims) - 2:
                    mods.append(_ACTS[self.activation]())
            self.net = nn.Sequential(*mods)
        return self

    def act(self, g: torch.Tensor, theta: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """a_X(g, theta): g (B, n, n), theta (B, n), x (B, x_size) -> (B, n)."""
        if self.kind == "linear":
            return (g @ theta[..., None])[..., 0]
        if self.kind == "bilinear":
            moved = ((g - self.identity(theta)) @ theta[..., None])[..., 0]
            return theta + (self.data_matrix(x) @ moved[..., None])[..., 0]
        if self.kind == "deformed":
            moved = (g @ theta[..., None])[..., 0]
            return moved + (self.net(torch.cat([moved, theta, x], -1)) - self.net(torch.cat([theta, theta, x], -1)))
        out = self.net(torch.cat([g.flatten(-2), theta, x], -1))
        return theta + out if self.residual else out

    def data_matrix(self, x: torch.Tensor) -> torch.Tensor:
        """Bilinear action: A(X) = T_0 + sum_j x_j T_j for every sample, (B, n, n)."""
        return self.t[0] + torch.einsum("bj,jnm->bnm", x, self.t[1:])

    def identity(self, theta: torch.Tensor) -> torch.Tensor:
        return torch.eye(self.n, device=theta.device, dtype=theta.dtype).expand(theta.shape[0], -1, -1)

    def field(self, h: torch.Tensor, theta: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """D_g a_X|_{I,theta}(h) for one h (n, n) at every sample: (B, n). Forward-mode by hand through the
        MLP (tangent of its input: (vec h, 0, 0) for mlp, (h theta, 0, 0) for deformed): the same number as torch.func.jvp (see field_jvp, which
        the tests compare against), several times cheaper on small batches."""
        if self.kind == "linear":
            return theta @ h.T
        if self.kind == "bilinear":
            return (self.data_matrix(x) @ (theta @ h.T)[..., None])[..., 0]
        n, first = self.n, self.net[0]
        if self.kind == "deformed":
            moved = theta @ h.T
            z = first(torch.cat([theta, theta, x], -1))
            return moved + self._tangent(z, moved @ first.weight[:, :n].T)
        z = first(torch.cat([self.identity(theta).flatten(-2), theta, x], -1))
        dz = (h.reshape(-1) @ first.weight[:, : n * n].T).expand(theta.shape[0], -1)
        return self._tangent(z, dz)

    def _tangent(self, z: torch.Tensor, dz: torch.Tensor) -> torch.Tensor:
        """Push the tangent dz of the first layer's output z through the rest of the MLP (forward mode)."""
        for layer in list(self.net)[1:]:
            if isinstance(layer, nn.Linear):
                z, dz = layer(z), dz @ layer.weight.T
            else:
                dz = dz * _derivative(layer, z)
                z = layer(z)
        return dz

    def field_jvp(self, h: torch.Tensor, theta: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """The same infinitesimal action through torch.func.jvp (reference implementation)."""
        eye = self.identity(theta).contiguous()
        return torch.func.jvp(lambda g: self.act(g, theta, x), (eye,), (h.expand_as(eye).contiguous(),))[1]

    def field_tangents(self, hs: torch.Tensor, theta: torch.Tensor, x: torch.Tensor, vs: torch.Tensor) -> torch.Tensor:
        """J_{V_h_p}(theta) v_p for P pairs at once: how the field of h_p changes along v_p. hs (P, n, n), theta
        (B, n), x (B, x_size), vs (P, B, n) -> (P, B, n). Forward-over-forward mode by hand through the MLP
        (the associativity term needs 2 per generator pair; torch.func's nested jvp was ~10x slower)."""
        if self.kind == "linear":
            return torch.einsum("pbm,pnm->pbn", vs, hs)
        if self.kind == "bilinear":  # the field A(X) h theta is linear in theta
            return torch.einsum("bnm,pbm->pbn", self.data_matrix(x), torch.einsum("pbm,pnm->pbn", vs, hs))
        n, first = self.n, self.net[0]
        w = first.weight
        if self.kind == "deformed":
            # field = h theta + J_r(theta) h theta; along v: h v + (d J_r . v) h theta + J_r h v
            z = first(torch.cat([theta, theta, x], -1))
            moved = torch.einsum("bm,pnm->pbn", theta, hs)  # h_p theta: (P, B, n)
            moved_t = torch.einsum("pbm,pnm->pbn", vs, hs)  # h_p v_p
            dz, zt = moved @ w[:, :n].T, vs @ (w[:, :n] + w[:, n : 2 * n]).T
            return moved_t + self._second_tangent(z, dz, zt, moved_t @ w[:, :n].T)
        z = first(torch.cat([self.identity(theta).flatten(-2), theta, x], -1))  # (B, H), shared by all p
        dz = (hs.flatten(1) @ w[:, : n * n].T)[:, None, :]  # d/dg along h: (P, 1, H)
        zt = vs @ w[:, n * n : n * n + n].T  # d/dtheta along v: (P, B, H)
        return self._second_tangent(z, dz, zt, torch.zeros_like(zt))  # dz does not depend on theta

    def _second_tangent(self, z, dz, zt, dzt) -> torch.Tensor:
        """Forward-over-forward through the MLP after its first layer: z the first layer's output, dz its
        tangent along h, zt along v, dzt the mixed second-order tangent; returns the output's mixed tangent."""
        for layer in list(self.net)[1:]:
            if isinstance(layer, nn.Linear):
                z = layer(z)
                dz, zt, dzt = dz @ layer.weight.T, zt @ layer.weight.T, dzt @ layer.weight.T
            else:
                d1, d2 = _derivative(layer, z), _second_derivative(layer, z)
                dzt = dzt * d1 + dz * d2 * zt
                dz, zt, z = dz * d1, zt * d1, layer(z)
        return dzt

    def fields(self, theta: torch.Tensor, x: torch.Tensor) -> list[torch.Tensor]:
        return [self.field(self.h[i], theta, x) for i in range(self.k)]
