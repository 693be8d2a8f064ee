"""One audit of one model: walk the layers, measure weights (always) and activations (when inputs are
given), add seed 000's input-symmetry tools when a transform is declared, summarise, write the verdict."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch
from torch import nn

from symexp.audit.activations import layer_activations, run_layers
from symexp.audit.graph import attention_projections, walk
from symexp.audit.input_symmetry import declared_transform, layer_defect, mirror_pairs, output_defect
from symexp.audit.options import AuditOptions
from symexp.audit.spectra import one_thread
from symexp.audit.verdict import verdict
from symexp.audit.weights import attention_ranks, layer_weights

SCHEMA = 1  # audit/report.json layout version; bump on incompatible changes


@dataclass
class Audit:
    """The report (JSON-ready) and the arrays the figures draw."""

    report: dict
    weight_spectra: dict[str, torch.Tensor] = field(default_factory=dict)


def _fraction(num: float, den: float) -> float | None:
    return num / den if den else None


def _network(layers: list[dict], model: nn.Module) -> dict:
    hidden = [row for row in layers if row["activation"] is not None or row["successor"] is not None]
    units = sum(row["units"] for row in hidden)
    net = {
        "params": sum(p.numel() for p in model.parameters()),
        "layers": len(layers), "hidden_layers": len(hidden), "hidden_units": units,
        "zero_incoming_units": sum(row["units_info"]["zero_incoming"] for row in hidden),
        "units_on_rescaling_mirror": sum(row["units_info"].get("rescaling_mirror", 0) for row in hidden),
        "duplicate_groups": sum(row["permutation"]["groups"] for row in layers),
        "collapsed_units": sum(row["permutation"]["collapsed_units"] for row in layers),
        "params_on_permutation_mirror": sum(row["permutation"]["params_lost"] for row in layers),
        "median_weight_rank_fraction": float(torch.tensor([row["weight"]["effective_rank"] / row["weight"]["max_rank"]
                                                           for row in layers]).median()) if layers else None,
    }
    with_data = [row for row in hidden if "data" in row]
    if with_data:
        dead = sum(row["data"]["dead_units"] for row in with_data if row["activation"] is not None)
        net["dead_units"] = dead
        net["dead_fraction"] = _fraction(dead, sum(r["units"] for r in with_data if r["activation"] is not None))
    return net


@torch.no_grad()
def audit_model(model: nn.Module, x: torch.Tensor | None = None, opts: AuditOptions | None = None,
                target: dict | None = None) -> Audit:
    """Audit ``model``; activation metrics on the first opts.n_samples rows of ``x`` when given."""
    opts = opts or AuditOptions()
    opts.check()
    t0 = time.perf_counter()
    layers, trace_note = walk(model)
    modules = dict(model.named_modules())
    rows, spectra = [], {}
    for layer in layers:
        with one_thread():  # many medium-sized ops: threads only add contention (see spectra.one_thread)
            w, sv = layer_weights(modules, layer, opts)
        spectra[layer.name] = sv.float()
        rows.append({
            "name": layer.name, "type": type(layer.module).__name__, "kind": layer.kind,
            "shape": list(layer.module.weight.shape), "units": layer.units, "norm": layer.norm,
            "activation": layer.activation, "successor": layer.successor, "path_ends": layer.ends,
            "weight": w["weight"], "units_info": w["units"], "permutation": w["permutation"],
            **{k: w[k] for k in ("rescaling", "rotation") if k in w},
        })
    t_weights = time.perf_counter() - t0
    report: dict = {
        "schema": SCHEMA, "kind": "audit", "target": target or {"model": type(model).__name__},
        "options": opts.as_dict(), "notes": [trace_note] if trace_note else [],
        "attention": [attention_ranks(a, opts) for a in attention_projections(model)],
    }
    if x is not None and layers:
        x = x[: opts.n_samples]
        t1 = time.perf_counter()
        streams, f = run_layers(model, layers, x, opts)
        by_name = {row["name"]: row for row in rows}
        with one_thread():
            for name, stream in streams.items():
                by_name[name]["data"] = layer_activations(stream, opts)
        report["inputs"] = {"samples": int(x.shape[0]), "shape": list(x.shape[1:])}
        if opts.transform:
            t = declared_transform(opts.transform, x)
            streams_t, f_t = run_layers(model, layers, t(x), opts)
            sym: dict = {"transform": opts.transform, "output_defect": output_defect(f, f_t), "layers": {}}
            for name, stream in streams.items():
                if stream.per_sample and streams_t[name].per_sample and stream.layer.activation is not None:
                    p, p_t = torch.cat(stream.per_sample), torch.cat(streams_t[name].per_sample)
                    sym["layers"][name] = layer_defect(p.double(), p_t.double(), opts.tau)
                    by_name[name]["data"].update(sym["layers"][name])
            if opts.transform == "neg" and (pairs := mirror_pairs(model, layers)) is not None:
                sym["first_layer_mirror_pairs"] = pairs
            report["input_symmetry"] = sym
        report.setdefault("timing", {})["activations_s"] = time.perf_counter() - t1
    elif x is None:
        report["notes"].append("no inputs given: weight-only audit (dead units on data and representation ranks need --data)")
    if not layers:
        report["notes"].append("no Linear or Conv modules found: nothing to audit per layer")
    report["layers"] = rows
    report["network"] = _network(rows, model)
    report.setdefault("timing", {})["weights_s"] = t_weights
    report["verdict"] = verdict(report, opts)
    report["timing"]["total_s"] = time.perf_counter() - t0
    return Audit(report, spectra)
