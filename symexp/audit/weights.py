"""Weight-only measurements of one layer: spectrum and ranks (rotation symmetry), zero weights and zero
units (rescaling mirror), groups of identical units (permutation mirror), rescaling imbalance.

Seed 004: a loss with the O-mirror symmetry pulls theta onto O^T theta = 0 under weight decay or
gradient noise. For a hidden unit, the rescaling mirror's constraint is "incoming and outgoing weights
zero" (a dead unit, sparsity), the permutation mirror's is "two units identical" (a homogeneous
ensemble), the rotation mirror's is "W_in^T n = 0 and W_out n = 0" (a rank deficit of the stacked
[W_in | W_out^T]). The closed forms here equal |O^T theta| of symexp.discovery.mirror's constructors.
"""

from __future__ import annotations

import torch
from torch import nn

from symexp.audit.graph import Layer
from symexp.audit.options import AuditOptions
from symexp.audit.spectra import default_rtol, rank_measures, singular_values
from symexp.symmetry.permutation import collapsed_units, duplicate_groups


def incoming(layer: Layer) -> torch.Tensor:
    """(units, fan_in [+1]) incoming weights and bias of every unit."""
    w = layer.module.weight.detach().reshape(layer.units, -1)
    b = getattr(layer.module, "bias", None)
    return torch.cat([w, b.detach()[:, None]], 1) if b is not None else w


def norm_affine(modules: dict[str, nn.Module], layer: Layer) -> torch.Tensor | None:
    """(units, 1-2) scale and shift of the per-unit norm on the path, if it has them."""
    if layer.norm is None:
        return None
    norm = modules[layer.norm]
    cols = [p.detach().reshape(layer.units, -1) for p in (getattr(norm, "weight", None), getattr(norm, "bias", None))
            if p is not None]
    return torch.cat(cols, 1) if cols else None


def outgoing(modules: dict[str, nn.Module], layer: Layer) -> torch.Tensor | None:
    """(units, fan_out) weights of the successor that read each unit."""
    if layer.successor is None:
        return None
    w = modules[layer.successor].weight.detach()
    return w.transpose(0, 1).reshape(layer.units, -1)


def unit_vectors(modules: dict[str, nn.Module], layer: Layer) -> torch.Tensor:
    """Everything a permutation of the units moves: incoming, bias, norm affine, outgoing."""
    parts = [incoming(layer), norm_affine(modules, layer), outgoing(modules, layer)]
    return torch.cat([p.double() for p in parts if p is not None], 1)


def _zero(norms: torch.Tensor, tol: float) -> torch.Tensor:
    """Units whose norm is below tol times the layer's RMS unit norm (all of them when everything is 0)."""
    ref = norms.square().mean().sqrt()
    return norms <= tol * ref


def layer_weights(modules: dict[str, nn.Module], layer: Layer, opts: AuditOptions) -> tuple[dict, torch.Tensor]:
    """The layer's weight measurements and its singular values (for the spectra figure)."""
    w = layer.module.weight.detach()
    mat = w.reshape(layer.units, -1)
    sv = singular_values(mat)
    ranks = rank_measures(sv, default_rtol(tuple(mat.shape), w.dtype), opts.approx_threshold)
    rms = w.double().square().mean().sqrt()
    out: dict = {
        "weight": {**ranks, "max_rank": float(min(mat.shape)),
                   "zero_fraction": float((w.double().abs() <= opts.zero_tol * rms).float().mean())},
    }
    inc = incoming(layer).double()
    aff = norm_affine(modules, layer)
    # the unit's effective incoming parameters: a per-unit norm replaces the weights' scale by its own
    eff_in = aff.double() if aff is not None else inc
    zero_in = _zero(eff_in.norm(dim=1), opts.zero_tol)
    units: dict = {"count": layer.units, "zero_incoming": int(zero_in.sum())}
    out_w = outgoing(modules, layer)
    if out_w is not None:
        out_w = out_w.double()
        zero_out = _zero(out_w.norm(dim=1), opts.zero_tol)
        units["zero_outgoing"] = int(zero_out.sum())
        units["rescaling_mirror"] = int((zero_in & zero_out).sum())  # O^T theta = 0 for the unit's mirror
    out["units"] = units

    vecs = unit_vectors(modules, layer)
    alive = ~_zero(vecs.norm(dim=1), opts.zero_tol)
    idx = torch.nonzero(alive).flatten()
    groups = [[int(idx[i]) for i in g] for g in duplicate_groups(vecs[idx], opts.duplicate_tol)]
    groups.sort(key=len, reverse=True)
    out["permutation"] = {
        "groups": len(groups), "collapsed_units": collapsed_units(groups),
        "largest_group": max((len(g) for g in groups), default=0),
        "params_lost": collapsed_units(groups) * vecs.shape[1],  # dimensions of the symmetric subspace's complement
        "uses_outgoing": out_w is not None,
        "group_members": groups[:10],
    }
    if layer.rescaling_symmetric and out_w is not None:
        a, c = eff_in.norm(dim=1), out_w.norm(dim=1)
        total = (a.square() + c.square())
        live = total > 0
        imb = ((a.square() - c.square()) / total.clamp_min(1e-300))[live]
        out["rescaling"] = {
            "median_abs_imbalance": float(imb.abs().median()) if imb.numel() else 0.0,
            # share of the squared norm that balancing each unit (a -> sqrt(a c), c -> sqrt(a c)) removes
            "balance_distance": float((a - c).square().sum() / total.sum().clamp_min(1e-300)),
        }
    if out_w is not None and layer.activation is None and layer.norm is None:
        # a linear path: rotating the units (W_in -> R W_in, W_out -> W_out R^T) is a symmetry
        stacked = torch.cat([inc, out_w], 1)
        ssv = singular_values(stacked)
        kept = float((ssv > default_rtol(tuple(stacked.shape)) * ssv.max()).sum()) if float(ssv.max()) > 0 else 0.0
        out["rotation"] = {"rank_deficit": float(min(stacked.shape)) - kept}
    return out, sv


def attention_ranks(att: dict, opts: AuditOptions) -> dict:
    """Ranks of W_q^T W_k and W_o W_v: the products the attention's rotation (GL) symmetry leaves
    invariant; weight decay pulls them low-rank (seed 002, Kobayashi et al.)."""
    q, k, v, o = (att[n].double() for n in ("q", "k", "v", "o"))
    res = {"name": att["name"], "heads": att["heads"], "max_rank": float(min(q.shape))}
    for key, mat in (("qk", q.T @ k), ("vo", o @ v)):
        sv = singular_values(mat)
        res[key] = rank_measures(sv, default_rtol(tuple(mat.shape)), opts.approx_threshold)
    return res
