"""Lifting symmetries from a small network to larger ones (seed 003, Prop. 4.1, Cor. 4.2-4.3).

A transformation of a two-layer block (W1, W2) with data X that preserves W2 sigma(W1 X) also preserves:
  * a wider network (Cor. 4.2): apply it to the first h hidden units, leave the others alone;
  * a deeper network (Cor. 4.3): apply it to one block whose data is the previous layer's output
    phi = tanh(W0 X) (the induced action is data-dependent through W0, as in Prop. 4.1), followed by
    more layers.
Transforms here are batched functions (W1 (B, h, n), W2 (B, m, h), X (B, n, k)) -> (W1', W2').
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from symexp.discovery.evaluate import integrate_flow, relative_change
from symexp.discovery.targets import TwoLayer
from symexp.stats import median

BlockTransform = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


def wide_forward(sigma, w1, w2, x):
    return w2 @ sigma(w1 @ x)


def lift_wider(transform: BlockTransform, w1: torch.Tensor, w2: torch.Tensor, x: torch.Tensor, h: int):
    """Cor. 4.2: transform the first h hidden units of a wider block (w1 (B, h', n), w2 (B, m, h'))."""
    a1, a2 = transform(w1[:, :h], w2[:, :, :h], x)
    return torch.cat([a1, w1[:, h:]], 1), torch.cat([a2, w2[:, :, h:]], 2)


def deep_forward(sigma, params: dict[str, torch.Tensor], x):
    """pre layer W0 (tanh) -> the block W2 sigma(W1 .) -> tanh -> W3."""
    phi = torch.tanh(params["W0"] @ x)
    return params["W3"] @ torch.tanh(params["W2"] @ sigma(params["W1"] @ phi))


def lift_deeper(transform: BlockTransform, params: dict[str, torch.Tensor], x: torch.Tensor) -> dict[str, torch.Tensor]:
    """Cor. 4.3 / Prop. 4.1: transform the block (W1, W2) with data h(theta_1, X) = tanh(W0 X)."""
    phi = torch.tanh(params["W0"] @ x)
    w1, w2 = transform(params["W1"], params["W2"], phi)
    return {**params, "W1": w1, "W2": w2}


def rescale_units(alpha: torch.Tensor) -> BlockTransform:
    """The positive rescaling of homogeneous activations: W1 rows * alpha, W2 columns / alpha."""
    def fn(w1, w2, x):
        return w1 * alpha[:, None], w2 / alpha[None, :]
    return fn


def gl_data_action(g: torch.Tensor, sigma, sigma_inv) -> BlockTransform:
    """The data-dependent GL action of an invertible activation: W2' = W2 g^-1, W1' = sigma^-1(g sigma(W1 X)) X^+."""
    def fn(w1, w2, x):
        return sigma_inv(g @ sigma(w1 @ x)) @ torch.linalg.pinv(x), w2 @ torch.linalg.inv(g)
    return fn


def flow_transform(target: TwoLayer, model, i: int, arclength: float, steps: int = 20) -> BlockTransform:
    """The finite transformation obtained by integrating the learned field of h_i on the block."""
    def fn(w1, w2, x):
        theta = torch.cat([w1.flatten(1), w2.flatten(1)], 1)
        x_flat = x.flatten(1)
        moved = integrate_flow(lambda t: model.field(model.h[i], t, x_flat), theta, arclength, steps)
        p = target.unflatten(moved)
        return p["W1"], p["W2"]
    return fn


def random_transform(target: TwoLayer, arclength: float, gen: torch.Generator) -> BlockTransform:
    def fn(w1, w2, x):
        theta = torch.cat([w1.flatten(1), w2.flatten(1)], 1)
        d = torch.randn(theta.shape, generator=gen).to(theta)
        p = target.unflatten(theta + arclength * d / d.norm(dim=-1, keepdim=True))
        return p["W1"], p["W2"]
    return fn


def lifted_loss_changes(target, model, arclength: float, seed: int, n: int = 128, extra: int = 2,
                        steps: int = 20) -> dict:
    """gen/lift_wider(_random), gen/lift_deeper(_random): median relative loss change of the wider and
    deeper networks after the learned flow (worst generator) or a random move of the same length on the
    block. Empty for targets that are not a two-layer block."""
    if not isinstance(target, TwoLayer):
        return {}
    gen = torch.Generator().manual_seed(seed + 4242)
    h, n_in, m, k = target.hidden, target.in_dim, target.out_dim, target.k
    sigma = target.sigma
    x = torch.randn(n, n_in, k, generator=gen)
    w1 = torch.randn(n, h + extra, n_in, generator=gen)
    w2 = torch.randn(n, m, h + extra, generator=gen)
    y = torch.randn(n, m, k, generator=gen)
    deep = {"W0": torch.randn(n, n_in, n_in, generator=gen), "W1": torch.randn(n, h, n_in, generator=gen),
            "W2": torch.randn(n, m, h, generator=gen), "W3": torch.randn(n, 1, m, generator=gen)}
    y_deep = torch.randn(n, 1, k, generator=gen)

    def wide_loss(a, b):
        return (wide_forward(sigma, a, b, x) - y).square().flatten(1).sum(-1)

    def deep_loss(p):
        return (deep_forward(sigma, p, x) - y_deep).square().flatten(1).sum(-1)

    base_w, base_d = wide_loss(w1, w2), deep_loss(deep)
    out: dict[str, torch.Tensor] = {}
    with torch.enable_grad():
        transforms = [flow_transform(target, model, i, arclength, steps) for i in range(model.k)]
        wider = [median(relative_change(base_w, wide_loss(*lift_wider(t, w1, w2, x, h)))) for t in transforms]
        deeper = [median(relative_change(base_d, deep_loss(lift_deeper(t, deep, x)))) for t in transforms]
    rnd = random_transform(target, arclength, gen)
    out["gen/lift_wider"] = torch.stack(wider).max().detach()
    out["gen/lift_wider_random"] = median(relative_change(base_w, wide_loss(*lift_wider(rnd, w1, w2, x, h))))
    out["gen/lift_deeper"] = torch.stack(deeper).max().detach()
    out["gen/lift_deeper_random"] = median(relative_change(base_d, deep_loss(lift_deeper(rnd, deep, x))))
    return out
