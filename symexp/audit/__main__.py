"""python -m symexp.audit TARGET [options]            one network's report in audit/
python -m symexp.audit compare A B [options]        two networks side by side, aligned, with the LMC barrier

TARGET: a symexp job folder, a Lightning .ckpt, a torch.save'd module or state_dict, or module:callable
(e.g. symexp.models.resnet18:ResNet18, torchvision.models:resnet18, timm:vit_tiny_patch16_224).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import yaml

from symexp.audit.core import Audit, audit_model
from symexp.audit.inputs import load_inputs
from symexp.audit.options import AuditOptions
from symexp.audit.targets import AuditError, Target, load_target


def _parser(compare: bool) -> argparse.ArgumentParser:
    prog = "python -m symexp.audit" + (" compare" if compare else "")
    p = argparse.ArgumentParser(prog=prog, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    if compare:
        p.add_argument("a", help="first network (any TARGET form)")
        p.add_argument("b", help="second network, same architecture")
        p.add_argument("--points", type=int, default=11, help="interpolation points of the LMC path")
    else:
        p.add_argument("target", help="job folder, .ckpt, saved module/state_dict, or module:callable")
        p.add_argument("--weights", help="state_dict or checkpoint for a module:callable TARGET")
    p.add_argument("--model", help="module:callable building the architecture of a plain state_dict")
    p.add_argument("--kwargs", default="{}", help="JSON keyword arguments for module:callable")
    p.add_argument("--config", help="a job folder, results.json or resolved config YAML that builds the architecture")
    p.add_argument("--data", nargs="+", metavar="DATA",
                   help="inputs: a symexp data config (digits, synthetic_images data.channels=3 ...), a tensor "
                        "file (.pt/.npy/.npz), or none; default: a job's own data, else weights only")
    p.add_argument("--n-samples", type=int, help="inputs for the activation metrics (default 1000)")
    p.add_argument("--transform", help="declared input symmetry: neg, reflect<i>, swap<i><j> (seed 000's tools)")
    p.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE", help="any audit option, e.g. dead_fraction=0.2")
    p.add_argument("--out", type=Path, help="output folder (default: JOB/audit, else audit/<name>)")
    p.add_argument("--no-figures", action="store_true", help="skip the figures (faster)")
    p.add_argument("--wandb", action="store_true", help="log the report as a W&B run with job_type=audit (offline by default)")
    p.add_argument("--wandb-project", default=None, help="default: $WANDB_PROJECT, else symexp")
    return p


def options(args: argparse.Namespace) -> AuditOptions:
    values: dict = {}
    for item in args.set:
        key, sep, raw = item.partition("=")
        if not sep:
            raise AuditError(f"--set {item}: expected KEY=VALUE")
        values[key.strip()] = yaml.safe_load(raw)
    if args.n_samples is not None:
        values["n_samples"] = args.n_samples
    if args.transform is not None:
        values["transform"] = args.transform
    try:
        return AuditOptions.from_mapping(values, key="--set")
    except (TypeError, ValueError) as exc:
        raise AuditError(str(exc)) from None


def _kwargs(args) -> dict:
    try:
        kw = json.loads(args.kwargs)
    except json.JSONDecodeError as exc:
        raise AuditError(f"--kwargs: not JSON ({exc})") from None
    if not isinstance(kw, dict):
        raise AuditError("--kwargs: must be a JSON object")
    return kw


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "model"


def default_out(target: Target) -> Path:
    return target.job_dir / "audit" if target.job_dir is not None else Path("audit") / _slug(target.name)


def run_audit(target: Target, data: list[str] | None, opts: AuditOptions) -> tuple[Audit, object, object]:
    """The audit of one loaded target on its inputs; (audit, x, y)."""
    x, y, desc = load_inputs(data, target, opts.n_samples, opts.seed)
    if x is not None and opts.transform is None and target.config:
        names = (target.config.get("data") or {}).get("transforms")
        if names:  # a symmetric-regression job declares its input symmetry itself
            opts.transform = names[0]
    try:
        audit = audit_model(target.model, x, opts, target.describe())
    except RuntimeError as exc:
        shape = tuple(x.shape) if x is not None else None
        raise AuditError(f"running {target.name} on inputs of shape {shape} failed: {str(exc).splitlines()[0]}") from None
    if "inputs" in audit.report:
        audit.report["inputs"]["source"] = desc
    audit.report["notes"] += target.notes
    return audit, x, y


def main_audit(argv: list[str]) -> int:
    from symexp.audit.report import log_wandb, write

    args = _parser(False).parse_args(argv)
    opts = options(args)
    target = load_target(args.target, args.weights, args.model, _kwargs(args), args.config)
    audit, _, _ = run_audit(target, args.data, opts)
    out = args.out or default_out(target)
    paths = write(audit, out, draw=not args.no_figures)
    if args.wandb:
        log_wandb(audit.report, paths, out, project=args.wandb_project)
    print(audit.report["verdict"])
    print(f"symexp audit: wrote {paths['md']} and {paths['json']} ({audit.report['timing']['total_s']:.1f} s)")
    return 0


def main_compare(argv: list[str]) -> int:
    from symexp.audit.compare import compare_models, write_compare

    args = _parser(True).parse_args(argv)
    opts = options(args)
    kw = _kwargs(args)
    ta = load_target(args.a, None, args.model, kw, args.config)
    tb = load_target(args.b, None, args.model, kw, args.config)
    audit_a, x, y = run_audit(ta, args.data, opts)
    audit_b, _, _ = run_audit(tb, args.data if args.data else (None if x is None else None), opts) if args.data or tb.config else run_audit(tb, args.data, opts)
    report = compare_models(audit_a, audit_b, ta.model, tb.model, x, y, args.points, opts.seed)
    out = args.out or Path("audit") / f"compare_{_slug(ta.name)}_vs_{_slug(tb.name)}"
    paths = write_compare(report, out)
    if "lmc" in report:
        lmc = report["lmc"]
        print(f"LMC loss barrier: {lmc['before']['loss_barrier']:.4g} before alignment, "
              f"{lmc['after']['loss_barrier']:.4g} after")
    print(f"symexp audit compare: wrote {paths['md']} and {paths['json']}")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if argv and argv[0] == "compare":
            return main_compare(argv[1:])
        return main_audit(argv)
    except AuditError as exc:
        print(f"symexp audit: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
