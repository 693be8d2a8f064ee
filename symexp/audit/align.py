"""Permutation alignment of two networks of the same architecture by weight matching (Ainsworth et al.,
Git Re-Basin): for every layer whose units feed one successor, find the permutation of B's units that
maximises the inner product of their parameter vectors (incoming with the previous permutation applied,
bias, norm affine, outgoing with the next one applied) with A's, by linear assignment
(scipy.optimize.linear_sum_assignment), layer by layer in random order until no permutation changes.
Layers whose units meet a residual sum keep their order (their permutation is tied to the stream)."""

from __future__ import annotations

import copy

import torch
from scipy.optimize import linear_sum_assignment
from torch import nn

from symexp.audit.graph import Layer, walk
from symexp.audit.targets import AuditError


def permutable(layers: list[Layer]) -> list[Layer]:
    return [layer for layer in layers if layer.successor is not None]


def _vectors(modules: dict[str, nn.Module], layer: Layer, perms: dict[str, torch.Tensor],
             pred: dict[str, str]) -> torch.Tensor:
    """B-side unit vectors of ``layer`` in A's frame of its neighbours (A side: identity perms)."""
    w = layer.module.weight.detach().double()
    if layer.name in pred:  # the input units are a permuted layer's outputs
        w = w[:, perms[pred[layer.name]]]
    parts = [w.reshape(layer.units, -1)]
    if getattr(layer.module, "bias", None) is not None:
        parts.append(layer.module.bias.detach().double()[:, None])
    if layer.norm is not None:
        norm = modules[layer.norm]
        parts += [p.detach().double()[:, None] for p in (getattr(norm, "weight", None), getattr(norm, "bias", None))
                  if p is not None]
    succ = modules[layer.successor].weight.detach().double()
    if layer.successor in perms:
        succ = succ[perms[layer.successor]]
    parts.append(succ.transpose(0, 1).reshape(layer.units, -1))
    return torch.cat(parts, 1)


def weight_matching(model_a: nn.Module, model_b: nn.Module, max_iter: int = 100, seed: int = 0
                    ) -> dict[str, torch.Tensor]:
    """layer name -> perm (B unit perm[i] matches A unit i) for every permutable layer."""
    sa, sb = model_a.state_dict(), model_b.state_dict()
    if sa.keys() != sb.keys() or any(sa[k].shape != sb[k].shape for k in sa):
        raise AuditError("compare: the two models do not have the same architecture (state_dict keys or shapes differ)")
    layers_a, _ = walk(model_a)
    layers_b = {layer.name: layer for layer in walk(model_b)[0]}
    chain = permutable(layers_a)
    mods_a, mods_b = dict(model_a.named_modules()), dict(model_b.named_modules())
    pred = {layer.successor: layer.name for layer in chain}
    ident = {layer.name: torch.arange(layer.units) for layer in chain}
    perms = dict(ident)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(max_iter):
        changed = False
        for i in torch.randperm(len(chain), generator=gen).tolist():
            la, lb = chain[i], layers_b[chain[i].name]
            ua = _vectors(mods_a, la, ident, pred)
            ub = _vectors(mods_b, lb, perms, pred)
            rows, cols = linear_sum_assignment((ua @ ub.T).numpy(), maximize=True)
            new = torch.as_tensor(cols)[torch.argsort(torch.as_tensor(rows))]
            if not torch.equal(new, perms[la.name]):
                perms[la.name], changed = new, True
        if not changed:
            break
    return perms


@torch.no_grad()
def permute(model: nn.Module, perms: dict[str, torch.Tensor]) -> nn.Module:
    """A copy of model with every permutable layer's units reordered by perms (the function is unchanged)."""
    out = copy.deepcopy(model)
    layers = {layer.name: layer for layer in walk(out)[0]}
    modules = dict(out.named_modules())
    for name, p in perms.items():
        layer = layers[name]
        layer.module.weight.copy_(layer.module.weight[p])
        if getattr(layer.module, "bias", None) is not None:
            layer.module.bias.copy_(layer.module.bias[p])
        if layer.norm is not None:
            norm = modules[layer.norm]
            for attr in ("weight", "bias", "running_mean", "running_var"):
                t = getattr(norm, attr, None)
                if isinstance(t, torch.Tensor):
                    t.copy_(t[p])
        succ = modules[layer.successor]
        succ.weight.copy_(succ.weight[:, p])
    return out


def matched_similarity(model_a: nn.Module, model_b: nn.Module) -> dict[str, float]:
    """Mean cosine similarity of corresponding unit vectors (identity pairing) per permutable layer."""
    layers_a, _ = walk(model_a)
    layers_b = {layer.name: layer for layer in walk(model_b)[0]}
    mods_a, mods_b = dict(model_a.named_modules()), dict(model_b.named_modules())
    out = {}
    for layer in permutable(layers_a):
        ua = _vectors(mods_a, layer, {}, {})
        ub = _vectors(mods_b, layers_b[layer.name], {}, {})
        out[layer.name] = float(torch.nn.functional.cosine_similarity(ua, ub, dim=1).mean())
    return out
