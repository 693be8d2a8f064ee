"""``+audit=on``: the audit of a run's trained model, written at the end of symexp.run.run into
<job>/audit/ on the run's own test split (``audit.data: none`` for weights only). An audit failure is
logged and written to audit/error.txt; it never turns a finished run into a failed one."""

from __future__ import annotations

import logging
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from symexp.audit.core import audit_model
from symexp.audit.inputs import from_datamodule
from symexp.audit.options import AuditOptions

log = logging.getLogger("symexp.audit")


def audit_run(cfg: DictConfig, task, out_dir: Path) -> Path | None:
    """Write <out_dir>/audit/report.{md,json}; returns the markdown path (None when off or failed)."""
    settings = OmegaConf.to_container(cfg.audit, resolve=True) if cfg.get("audit") else {}
    if not settings or not settings.get("enabled", True):
        return None
    from symexp.audit.report import log_wandb, write

    out = out_dir / "audit"
    try:
        opts = AuditOptions.from_mapping(settings)
        x = None
        if settings.get("data", "job") != "none":
            x, _ = from_datamodule(task.datamodule, opts.n_samples)
            names = getattr(task.datamodule, "transform_names", None)
            if opts.transform is None and names:
                opts.transform = names[0]
        target = {"name": str(cfg.name), "source": "run", "path": str(out_dir), "model": type(task.model).__name__,
                  "job_dir": str(out_dir)}
        audit = audit_model(task.model, x, opts, target)
        if x is not None:
            audit.report["inputs"]["source"] = "the run's test split"
        paths = write(audit, out)
        if OmegaConf.select(cfg, "logger.backend") == "wandb":
            log_wandb(audit.report, paths, out_dir, project=OmegaConf.select(cfg, "logger.project"),
                      group=OmegaConf.select(cfg, "logger.group"), name=f"{cfg.name}/{out_dir.name}/audit",
                      mode=OmegaConf.select(cfg, "logger.mode"))
        log.info("symexp audit: %s", audit.report["verdict"])
        return paths["md"]
    except Exception as exc:  # the run itself succeeded; keep its results and say why the audit did not
        out.mkdir(parents=True, exist_ok=True)
        (out / "error.txt").write_text(f"{type(exc).__name__}: {exc}\n")
        log.error("symexp audit failed: %s: %s", type(exc).__name__, exc)
        return None
