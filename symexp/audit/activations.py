"""Measurements on data: every layer's pre- and post-activation on n inputs, streamed in batches.

Units are the last axis of a Linear output and the channel axis of a conv map; for conv maps (and token
sequences) every spatial position (token) is a sample, and at most ``max_rows`` rows are kept per layer
(a fixed random subset) for the ranks. Dead units are counted on all of them: a unit is dead when its
post-activation is exactly 0 on every input (symexp.symmetry.rank's definition).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from symexp.audit.graph import ACTIVATION_FN, Layer
from symexp.audit.options import AuditOptions
from symexp.audit.spectra import rank_measures, singular_values
from symexp.symmetry import rank as R


def units_last(out: torch.Tensor, kind: str) -> torch.Tensor:
    """(rows, units): conv maps move channels last, every other axis becomes a sample axis."""
    if kind == "conv" and out.dim() > 2:
        out = out.movedim(1, -1)
    return out.reshape(-1, out.shape[-1])


class _Stream:
    """Per-layer accumulators over batches: alive mask, a row subsample (pre and post), full per-sample
    features when each sample is one row (needed for the partial defects)."""

    def __init__(self, layer: Layer, rows_per_sample: float, gen: torch.Generator) -> None:
        self.layer, self.rows_per_sample, self.gen = layer, rows_per_sample, gen
        self.alive = torch.zeros(layer.units, dtype=torch.bool)
        self.pre: list[torch.Tensor] = []
        self.post: list[torch.Tensor] = []
        self.per_sample: list[torch.Tensor] = []
        self.rows_seen = 0

    def add(self, out: torch.Tensor, batch: int) -> None:
        act = ACTIVATION_FN.get(self.layer.activation)
        pre = units_last(out.detach().float(), self.layer.kind)
        post = act(pre) if act is not None else pre
        self.alive |= (post != 0).any(0).cpu()
        self.rows_seen += pre.shape[0]
        if pre.shape[0] == batch:
            self.per_sample.append(post.cpu())
        rows = pre.shape[0]
        k = min(rows, max(1, math.ceil(self.rows_per_sample * batch))) if rows > batch else rows
        idx = torch.randperm(rows, generator=self.gen)[:k] if k < rows else slice(None)
        self.pre.append(pre[idx].cpu())
        self.post.append(post[idx].cpu())


def _ranks(rows: torch.Tensor, opts: AuditOptions) -> dict[str, float]:
    sv = singular_values(rows)
    ranks = rank_measures(sv, max(rows.shape) * torch.finfo(torch.float32).eps, opts.approx_threshold)
    ranks["covariance_rank"] = float(R.covariance_rank(rows, opts.cov_tol)[0])  # seed 002: absolute tol
    ranks["covariance_rank_rel"] = float(R.covariance_rank(rows, opts.cov_tol, relative=True)[0])  # scale-free
    return ranks


def _end_module(modules: dict[str, nn.Module], layer: Layer) -> nn.Module:
    return modules[layer.norm] if layer.norm is not None else layer.module


@torch.no_grad()
def run_layers(model: nn.Module, layers: list[Layer], x: torch.Tensor, opts: AuditOptions
               ) -> tuple[dict[str, _Stream], torch.Tensor]:
    """Stream x through the model in batches; per-layer accumulators and the model outputs."""
    modules = dict(model.named_modules())
    gen = torch.Generator().manual_seed(opts.seed)
    n = x.shape[0]
    streams = {layer.name: _Stream(layer, opts.max_rows / max(n, 1), gen) for layer in layers}
    handles, current = [], {"batch": 0}
    for layer in layers:
        def hook(_m, _inp, out, name=layer.name):
            out = out[0] if isinstance(out, tuple) else out
            streams[name].add(out, current["batch"])
        handles.append(_end_module(modules, layer).register_forward_hook(hook))
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    outputs = []
    try:
        for i in range(0, n, opts.batch_size):
            xb = x[i : i + opts.batch_size].to(device)
            current["batch"] = xb.shape[0]
            out = model(xb)
            outputs.append((out[0] if isinstance(out, tuple) else out).detach().float().cpu())
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return streams, torch.cat(outputs)


def layer_activations(stream: _Stream, opts: AuditOptions) -> dict:
    """Dead units and representation ranks of one layer (pre-activation, and post when it has one)."""
    layer = stream.layer
    res: dict = {"dead_units": int((~stream.alive).sum()), "rows": int(sum(p.shape[0] for p in stream.pre)),
                 "samples_per_row": "spatial positions" if layer.kind == "conv" else "inputs"}
    res["pre"] = _ranks(torch.cat(stream.pre), opts)
    if layer.activation is not None:
        res["post"] = _ranks(torch.cat(stream.post), opts)
    return res
