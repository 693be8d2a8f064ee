"""Target networks whose parameter symmetries are searched for (seed 003, Sections 5.3-5.4).

Every target is a function of one flat parameter vector theta (n,) and one data batch X; its loss is
L(theta, X, Y) = ||f(theta, X) - Y||^2. ``known_tangent_groups`` returns named families of tangent
directions of the symmetries we know at (theta, X), against which ``gen/alignment`` measures the learned
action:
  * ``gl``: identity activation, GL(h) acting as V -> g V, U -> U g^-1 (data-independent, linear in theta);
  * ``rescaling``: homogeneous activations (ReLU, leaky ReLU), positive rescaling of each hidden unit;
  * ``gl_data``: invertible activations with k <= n_in data columns, the data-dependent GL(h)
    action V' = sigma^-1(g sigma(V X)) X^+, U' = U g^-1;
  * ``linear_region``: piecewise-linear activations (ReLU, leaky ReLU): on the sample's activation region the
    output is linear in the per-unit products u_a v_a, and every first-order invariant direction is
    explained by that (the rescaling is its data-independent part; units whose slopes agree on the k data
    columns add data-dependent ones, on most samples of the 4-column targets);
  * ``unseen``: moves of a layer's weights orthogonal to its input (for W1 the null space of X^T when X
    has fewer columns than rows; for a ReLU unit, moves orthogonal to the columns it is active on), which
    the loss cannot see.
``TargetNet.invariant_dim`` counts the first-order invariant directions of the output (n - rank of its
Jacobian); where it exceeds the known span's dimension, some invariant directions are explained by no
known family (``gen/unexplained_invariant_dims``).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

ACTIVATIONS: dict[str, tuple[Callable, Callable | None]] = {
    # name -> (sigma, sigma' as a function of the pre-activation) ; sigma' None: not invertible
    "identity": (lambda z: z, lambda z: torch.ones_like(z)),
    "relu": (F.relu, None),
    "leaky_relu": (lambda z: F.leaky_relu(z, 0.1), lambda z: torch.where(z > 0, 1.0, 0.1).to(z)),
    "sigmoid": (torch.sigmoid, lambda z: torch.sigmoid(z) * (1 - torch.sigmoid(z))),
    "tanh": (torch.tanh, lambda z: 1 - torch.tanh(z) ** 2),
}
HOMOGENEOUS = {"identity", "relu", "leaky_relu"}
# piecewise-linear activations: slope of each linear piece as a function of the pre-activation
SLOPES: dict[str, Callable] = {
    "relu": lambda z: (z > 0).to(z),
    "leaky_relu": lambda z: torch.where(z > 0, 1.0, 0.1).to(z),
}


def activation(name: str, key: str = "data.activation") -> tuple[Callable, Callable | None]:
    if name not in ACTIVATIONS:
        raise ValueError(f"{key}: unknown activation {name!r}; choose one of {sorted(ACTIVATIONS)}")
    return ACTIVATIONS[name]


class TargetNet:
    """Base: a flat parameter layout [(name, shape)], the forward map and the loss for one sample."""

    layout: list[tuple[str, tuple[int, ...]]]
    x_shape: tuple[int, ...]
    y_shape: tuple[int, ...]

    @property
    def n_params(self) -> int:
        return sum(math.prod(s) for _, s in self.layout)

    @property
    def x_size(self) -> int:
        return math.prod(self.x_shape)

    def unflatten(self, theta: torch.Tensor) -> dict[str, torch.Tensor]:
        out, i = {}, 0
        for name, shape in self.layout:
            size = math.prod(shape)
            out[name] = theta[..., i : i + size].reshape(*theta.shape[:-1], *shape)
            i += size
        return out

    def param_labels(self) -> list[str]:
        labels = []
        for name, shape in self.layout:
            for idx in torch.cartesian_prod(*[torch.arange(s) for s in shape]).reshape(-1, len(shape)).tolist():
                labels.append(f"{name}[{','.join(str(i) for i in idx)}]" if math.prod(shape) > 1 else name)
        return labels

    def forward(self, theta: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def loss(self, theta: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Loss of one sample: theta (n,), x x_shape, y y_shape -> scalar."""
        return (self.forward(theta, x) - y).square().sum()

    def batch_loss(self, theta: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return torch.func.vmap(self.loss)(theta, x, y)

    def known_tangent_groups(self, theta: torch.Tensor, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Named families of known symmetries at one sample, each (r, n) tangent vectors; empty if none.
        ``gen/alignment/<name>`` measures the learned field against each family, ``gen/alignment`` their union."""
        return {}

    def known_tangents(self, theta: torch.Tensor, x: torch.Tensor) -> torch.Tensor | None:
        """(r, n) tangent vectors spanning the known symmetries at one sample, or None if none is known."""
        groups = self.known_tangent_groups(theta, x)
        return torch.cat(list(groups.values())) if groups else None

    def _unseen(self, name: str, inputs: torch.Tensor) -> torch.Tensor | None:
        """Moves of weight ``name`` (rows x cols) orthogonal to the columns of its input (cols x k): the layer's
        output cannot see them (zero rows if the input spans R^cols)."""
        shape = dict(self.layout)[name]
        u, sv, _ = torch.linalg.svd(inputs.double(), full_matrices=True)
        rank = int((sv > 1e-6 * sv.max().clamp_min(1e-30)).sum())
        null = u[:, rank:].T.to(inputs.dtype)  # orthonormal basis of the complement of the input's columns
        if null.shape[0] == 0:
            return None
        offset = 0
        for other, s in self.layout:
            if other == name:
                break
            offset += math.prod(s)
        out = []
        for a in range(shape[0]):
            for direction in null:  # orthonormal moves: no near-zero rows for the span to amplify
                e = torch.zeros(shape)
                e[a] = direction
                t = torch.zeros(self.n_params)
                t[offset : offset + math.prod(shape)] = e.reshape(-1)
                out.append(t)
        return torch.stack(out)

    def known_generators(self) -> torch.Tensor | None:
        """(r, n, n) generators of a known linear, data-independent action, or None."""
        return None

    def invariant_dim(self, theta: torch.Tensor, x: torch.Tensor) -> int:
        """n - rank of the output's Jacobian at one sample: how many directions leave f(theta, X), hence the
        loss for any Y, unchanged to first order. The known families' span can be at most this large."""
        jac = torch.func.jacrev(lambda th: self.forward(th, x.double()).reshape(-1))(theta.double())
        sv = torch.linalg.svdvals(jac)
        rank = int((sv > 1e-8 * sv.max().clamp_min(1e-30)).sum()) if sv.numel() else 0
        return self.n_params - rank

    def layer_inputs(self, theta: torch.Tensor, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Batched input of every weight matrix, {name: (B, cols, k)}: what the layer's output sees."""
        raise NotImplementedError

    def null_space_part(self, theta: torch.Tensor, x: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """The part of directions v (B, n) that moves each layer's weights orthogonally to its input (the
        ``unseen`` family, batched and differentiable in v): the task's exclusion penalty uses |P v| / |v|."""
        inputs = self.layer_inputs(theta, x)
        parts, i = [], 0
        for name, shape in self.layout:
            size = math.prod(shape)
            w = v[:, i : i + size].reshape(-1, *shape)
            z = inputs[name]
            if z.shape[-1] >= z.shape[-2]:  # k >= cols: random inputs span R^cols, nothing is unseen
                parts.append(torch.zeros_like(w).flatten(1))
            else:
                q = torch.linalg.qr(z.detach()).Q  # (B, cols, k) orthonormal columns of the input
                parts.append((w - (w @ q) @ q.transpose(-1, -2)).flatten(1))
            i += size
        return torch.cat(parts, -1)


class TwoLayer(TargetNet):
    """f = W2 sigma(W1 X): W1 (hidden x in_dim), W2 (out_dim x hidden), X (in_dim x k)."""

    def __init__(self, in_dim: int = 1, hidden: int = 1, out_dim: int = 1, k: int = 1, act: str = "identity"):
        for key, v in (("in_dim", in_dim), ("hidden", hidden), ("out_dim", out_dim), ("k", k)):
            if not isinstance(v, int) or v < 1:
                raise ValueError(f"data.target.{key}: must be a positive integer, got {v!r}")
        self.in_dim, self.hidden, self.out_dim, self.k, self.act = in_dim, hidden, out_dim, k, act
        self.sigma, self.dsigma = activation(act, "data.target.act")
        self.layout = [("W1", (hidden, in_dim)), ("W2", (out_dim, hidden))]
        self.x_shape, self.y_shape = (in_dim, k), (out_dim, k)

    def forward(self, theta, x):
        p = self.unflatten(theta)
        return p["W2"] @ self.sigma(p["W1"] @ x)

    def _pack(self, dv: torch.Tensor, du: torch.Tensor) -> torch.Tensor:
        return torch.cat([dv.reshape(-1), du.reshape(-1)])

    def _basis(self, diagonal_only: bool) -> list[torch.Tensor]:
        h = self.hidden
        pairs = [(a, a) for a in range(h)] if diagonal_only else [(a, b) for a in range(h) for b in range(h)]
        mats = []
        for a, b in pairs:
            e = torch.zeros(h, h)
            e[a, b] = 1.0
            mats.append(e)
        return mats

    def known_generators(self):
        if self.act == "relu" or self.act == "leaky_relu" or self.act == "identity":
            gens = []
            n = self.n_params
            for e in self._basis(diagonal_only=self.act != "identity"):
                cols = []
                for j in range(n):  # the linear map theta -> (E V, -U E) column by column
                    t = torch.zeros(n)
                    t[j] = 1.0
                    p = self.unflatten(t)
                    cols.append(self._pack(e @ p["W1"], -p["W2"] @ e))
                gens.append(torch.stack(cols, 1))
            return torch.stack(gens)
        return None

    def layer_inputs(self, theta, x):
        p = self.unflatten(theta)
        return {"W1": x, "W2": self.sigma(p["W1"] @ x)}

    def known_tangent_groups(self, theta, x):
        """``rescaling`` (homogeneous: positive rescaling of each hidden unit), ``gl`` (identity activation:
        V -> g V, U -> U g^-1), ``gl_data`` (invertible activation, k <= in_dim: the data-dependent
        GL(h) action to first order), ``unseen`` (moves of V or U orthogonal to their inputs X, sigma(V X))."""
        p = self.unflatten(theta)
        v, u = p["W1"], p["W2"]
        groups: dict[str, torch.Tensor] = {}
        if self.act in HOMOGENEOUS:
            name = "gl" if self.act == "identity" else "rescaling"
            groups[name] = torch.stack([self._pack(e @ v, -u @ e) for e in self._basis(self.act != "identity")])
        if self.act in SLOPES:
            groups["linear_region"] = self._linear_region(theta, x)
        if self.dsigma is not None and self.act != "identity" and self.k <= self.in_dim:
            z = v @ x
            s = self.sigma(z)
            x_pinv = torch.linalg.pinv(x)
            groups["gl_data"] = torch.stack([self._pack(((e @ s) / self.dsigma(z)) @ x_pinv, -u @ e)
                                             for e in self._basis(diagonal_only=False)])
        first = self._unseen_rows(x, SLOPES[self.act](v @ x)) if self.act in SLOPES else self._unseen("W1", x)
        unseen = [t for t in (first, self._unseen("W2", self.sigma(v @ x))) if t is not None]
        if unseen:
            groups["unseen"] = torch.cat(unseen)
        return groups

    def _unseen_rows(self, x: torch.Tensor, slopes: torch.Tensor) -> torch.Tensor | None:
        """Piecewise-linear units: row a of W1 changes sigma(W1 X) through the columns where its slope is
        nonzero only (a ReLU unit is blind to the columns it is off on); moves orthogonal to those."""
        out = []
        for a in range(self.hidden):
            seen = x[:, slopes[a] != 0]
            if seen.shape[1] == 0:
                basis = torch.eye(self.in_dim, dtype=x.dtype)
            else:
                q, sv, _ = torch.linalg.svd(seen.double(), full_matrices=True)
                rank = int((sv > 1e-6 * sv.max().clamp_min(1e-30)).sum())
                basis = q[:, rank:].T.to(x.dtype)
            for direction in basis:
                w1 = torch.zeros(self.hidden, self.in_dim, dtype=x.dtype)
                w1[a] = direction
                out.append(self._pack(w1, torch.zeros(self.out_dim, self.hidden, dtype=x.dtype)))
        return torch.stack(out) if out else None

    def _linear_region(self, theta: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Piecewise-linear activations: on one activation region the output is f_c = x_c^T sum_a s_ac u_a v_a
        (s_ac the slope of unit a on column c), linear in the products u_a v_a; every first-order invariant
        direction there is explained by that structure (the rescaling is its data-independent part). Returns
        a basis of the output Jacobian's null space: it mixes units whose slopes agree on the data (e.g. both
        in their linear part), which happens on most samples of the 4-column ReLU / leaky-ReLU targets."""
        jac = torch.func.jacrev(lambda th: self.forward(th, x.double()).reshape(-1))(theta.double())
        _, sv, vh = torch.linalg.svd(jac, full_matrices=True)
        rank = int((sv > 1e-8 * sv.max().clamp_min(1e-30)).sum())
        return vh[rank:].to(theta.dtype)


class ThreeLayerTanhSkip(TargetNet):
    """f = W3 (tanh(W2 h1) + h1), h1 = tanh(W1 X): a three-layer tanh MLP whose middle layer has a skip
    connection (our reading of seed 003's Fig. 4 network; the paper does not say where the skip sits).
    Known: only moves of a layer that its input cannot see; anything else the search finds is new."""

    def __init__(self, in_dim: int = 2, hidden: int = 2, out_dim: int = 1, k: int = 1):
        self.in_dim, self.hidden, self.out_dim, self.k = in_dim, hidden, out_dim, k
        self.layout = [("W1", (hidden, in_dim)), ("W2", (hidden, hidden)), ("W3", (out_dim, hidden))]
        self.x_shape, self.y_shape = (in_dim, k), (out_dim, k)

    def forward(self, theta, x):
        p = self.unflatten(theta)
        h1 = torch.tanh(p["W1"] @ x)
        return p["W3"] @ (torch.tanh(p["W2"] @ h1) + h1)

    def layer_inputs(self, theta, x):
        p = self.unflatten(theta)
        h1 = torch.tanh(p["W1"] @ x)
        return {"W1": x, "W2": h1, "W3": torch.tanh(p["W2"] @ h1) + h1}

    def known_tangent_groups(self, theta, x):
        """``unseen``: moves of each layer orthogonal to its input (X for W1, h1 for W2, tanh(W2 h1) + h1 for
        W3; Prop. 4.1 lifts the first to the later layers). Any other invariant direction is new."""
        p = self.unflatten(theta)
        h1 = torch.tanh(p["W1"] @ x)
        r = torch.tanh(p["W2"] @ h1) + h1
        unseen = [t for t in (self._unseen("W1", x), self._unseen("W2", h1), self._unseen("W3", r)) if t is not None]
        return {"unseen": torch.cat(unseen)} if unseen else {}


def build_target(kind: str, **kwargs) -> TargetNet:
    if kind == "two_layer":
        return TwoLayer(**kwargs)
    if kind == "three_layer_tanh_skip":
        return ThreeLayerTanhSkip(**kwargs)
    raise ValueError(f"data.target.kind: unknown target {kind!r}; choose two_layer or three_layer_tanh_skip")
