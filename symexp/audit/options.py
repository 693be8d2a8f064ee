"""The audit's knobs: tolerances of the measurements and thresholds of the verdict. One dataclass feeds
the command line (``--dead-fraction 0.2``), the run config (conf/audit/on.yaml) and the report."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, fields
from typing import Any


@dataclass
class AuditOptions:
    # measurements
    n_samples: int = 1000            # inputs for the activation metrics (seed 002: covariance ranks on 1000)
    batch_size: int = 250            # forward passes in chunks of this many inputs
    max_rows: int = 4096             # conv maps: spatial positions are samples; at most this many rows per layer
    cov_tol: float = 1e-4            # seed 002: covariance eigenvalues below this count as zero
    approx_threshold: float = 0.99   # approximate rank: smallest k holding this share of sum sv^2
    duplicate_tol: float = 1e-3      # units within tol * their norm of each other are copies (permutation collapse)
    zero_tol: float = 1e-3           # a weight (a unit) is zero below tol * the layer's RMS weight (unit norm)
    tau: float = 1e-3                # active partials: variance above tau * the largest (seed 000)
    transform: str | None = None     # declared input symmetry (neg, reflect<i>, swap<i><j>): mirror pairs, defects
    seed: int = 0                    # row subsampling of conv maps
    # verdict thresholds
    dead_fraction: float = 0.1       # report a layer whose dead units (on the data) reach this fraction
    zero_unit_fraction: float = 0.1  # ... whose units with zero incoming weights reach this fraction
    rank_fraction: float = 0.5       # ... whose weight effective rank or data covariance rank is below this share of full
    imbalance: float = 0.5           # ... whose balanced-rescaling distance (share of squared norm) exceeds this
    sparsity: float = 0.5            # ... whose share of zero weights exceeds this
    min_duplicate_groups: int = 1    # ... that holds at least this many groups of duplicated units
    max_items: int = 6               # findings named in the verdict paragraph

    @classmethod
    def from_mapping(cls, values: dict[str, Any] | None, key: str = "audit") -> AuditOptions:
        """Options from a config mapping; an unknown key fails naming it."""
        values = dict(values or {})
        known = {f.name for f in fields(cls)}
        bad = sorted(set(values) - known - {"enabled", "data", "wandb"})
        if bad:
            raise ValueError(f"{key}.{bad[0]}: unknown audit option; choose from {sorted(known)}")
        opts = cls(**{k: v for k, v in values.items() if k in known})
        opts.check(key)
        return opts

    def check(self, key: str = "audit") -> None:
        for name in ("n_samples", "batch_size", "max_rows", "max_items"):
            if int(getattr(self, name)) <= 0:
                raise ValueError(f"{key}.{name}: must be positive, got {getattr(self, name)}")
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, float) and v < 0:
                raise ValueError(f"{key}.{f.name}: must be non-negative, got {v}")

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
