"""The verdict: one paragraph in plain words naming the layers that cross the thresholds (options), the
worst first, then the whole network's counts."""

from __future__ import annotations

from symexp.audit.options import AuditOptions


def _pct(v: float) -> str:
    return f"{100 * v:.0f}%"


def findings(report: dict, opts: AuditOptions) -> list[tuple[float, str]]:
    """(severity, phrase) for every threshold a layer crosses; severity ~ how far past it."""
    out = []
    for row in report["layers"]:
        name, units = row["name"], row["units"]
        hidden = row["activation"] is not None or row["successor"] is not None
        data = row.get("data")
        if data and row["activation"] is not None:
            frac = data["dead_units"] / units
            if frac >= opts.dead_fraction and frac > 0:
                out.append((1 + frac, f"{name}: {_pct(frac)} dead units on the data"))
        zero = row["units_info"]["zero_incoming"] / units
        if hidden and zero >= opts.zero_unit_fraction and zero > 0:
            out.append((1 + zero, f"{name}: {_pct(zero)} of units with zero incoming weights"))
        w = row["weight"]
        frac_w = w["effective_rank"] / w["max_rank"] if w["max_rank"] else 1.0
        if frac_w < opts.rank_fraction:
            out.append((1 + opts.rank_fraction - frac_w, f"{name}: weight effective rank {frac_w:.2f} of full"))
        if data:  # covariance eigenvalues above cov_tol x the largest: scale-free, unlike seed 002's absolute tol
            rep = data.get("post", data["pre"])
            cap = min(units, data["rows"] - 1) if data["rows"] > 1 else units
            frac_r = rep["covariance_rank_rel"] / cap
            if frac_r < opts.rank_fraction:
                out.append((1 + opts.rank_fraction - frac_r,
                            f"{name}: covariance rank {rep['covariance_rank_rel']:.0f}/{cap} on the data "
                            f"(eigenvalues above {opts.cov_tol:g} x the largest)"))
        perm = row["permutation"]
        if perm["groups"] >= opts.min_duplicate_groups and perm["groups"] > 0:
            what = "neurons" if row["kind"] == "linear" else "channels"
            out.append((1 + perm["collapsed_units"] / units,
                        f"{perm['groups']} group{'s' if perm['groups'] > 1 else ''} of duplicated {what} in {name} "
                        f"({perm['collapsed_units']} of {units} units are copies)"))
        resc = row.get("rescaling")
        if resc and resc["balance_distance"] > opts.imbalance:
            out.append((0.5 + resc["balance_distance"],
                        f"{name}: rescaling imbalance {resc['balance_distance']:.2f} (share of squared norm balancing removes)"))
        if w["zero_fraction"] > opts.sparsity:
            out.append((0.5 + w["zero_fraction"], f"{name}: {_pct(w['zero_fraction'])} of weights at zero"))
    for att in report.get("attention", []):
        frac = att["qk"]["effective_rank"] / att["max_rank"] if att["max_rank"] else 1.0
        if frac < opts.rank_fraction:
            out.append((1 + opts.rank_fraction - frac, f"{att['name']}: W_q^T W_k effective rank {frac:.2f} of full"))
    return sorted(out, key=lambda f: -f[0])


def verdict(report: dict, opts: AuditOptions) -> str:
    net = report["network"]
    name = report["target"].get("name") or report["target"].get("model", "the model")
    on = f"{report['inputs']['samples']} inputs" if "inputs" in report else "weights only"
    head = f"Audit of {name} ({net['params']:,} parameters, {net['layers']} weight layers; {on}): "
    found = findings(report, opts)
    if found:
        shown = [f for _, f in found[: opts.max_items]]
        more = len(found) - len(shown)
        body = "; ".join(shown) + (f"; and {more} more finding{'s' if more > 1 else ''} in the table below" if more else "")
        body += "."
    else:
        body = "No layer crosses the collapse thresholds."
    tail = []
    if "dead_fraction" in net and net["dead_fraction"] is not None:
        tail.append(f"{_pct(net['dead_fraction'])} of hidden units are dead on the data")
    tail.append(f"{net['collapsed_units']} units are copies of another "
                f"({net['duplicate_groups']} groups, {net['params_on_permutation_mirror']:,} parameters on the permutation mirror)")
    if net["zero_incoming_units"]:
        tail.append(f"{net['zero_incoming_units']} hidden units have zero incoming weights"
                    + (f" ({net['units_on_rescaling_mirror']} with zero outgoing weights too: on the rescaling mirror)"
                       if net.get("units_on_rescaling_mirror") else ""))
    sym = report.get("input_symmetry")
    if sym:
        pd = [v["partial_defect"] for v in sym["layers"].values()]
        tail.append(f"under {sym['transform']} the output defect is {sym['output_defect']:.2g}"
                    + (f" and the last hidden layer's active partial defect {pd[-1]:.2g}" if pd else ""))
    return head + body + " Overall " + "; ".join(tail) + "."
