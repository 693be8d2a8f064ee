"""One dashboard layout per study family: which final metrics get panels, which training curves, the
step axis the family's runs log against, and the figure-like views the paper draws.

Patterns are fnmatch patterns matched against the metrics the sweep's jobs actually wrote, so a panel
never names a metric the sweep does not have."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Layout:
    title: str
    finals: tuple[str, ...]                      # final metrics (run summaries): bar panels per swept value
    curves: tuple[str, ...]                      # history metrics drawn against the step axis
    axis: str | None = None                      # the runs' step metric (None: W&B's default x for the runs)
    scatter: tuple[tuple[str, str], ...] = ()    # (x, y) pairs of final metrics, one point per run
    log_scale: bool = False
    member_curves: tuple[str, ...] = field(default=())  # history metrics also logged per member

    def pick(self, metrics: list[str], limit: int = 16) -> list[str]:
        """The sweep's metrics that match the layout's final-metric patterns, in pattern order."""
        out: list[str] = []
        for pattern in self.finals:
            out += [m for m in metrics if fnmatch.fnmatchcase(m, pattern) and m not in out and "/block" not in m]
        return out[:limit]


LAYOUTS = {
    "seed000": Layout(
        title="seed 000: Table 1 and regimes (RF-LR vs MLP)",
        finals=("test/mse", "sym/output_defect", "sym/partial_defect", "sym/partial_defect_pooled",
                "sym/mirror_mismatch", "sym/mirror_mismatch_null", "sym/prop1_observed", "sym/prop1_bound"),
        curves=("val/mse", "train/loss"),
        axis="epoch",
        scatter=(("sym/output_defect", "sym/partial_defect"), ("test/mse", "sym/partial_defect")),
        log_scale=True,
        member_curves=("val/mse",),
    ),
    "syre": Layout(
        title="seed 002 (syre): collapse and rank",
        finals=("probe/*", "rank/*", "sym/*", "test/*", "train/acc", "train/loss", "train/objective*", "ridge/*",
                "cl/*", "val/*"),
        curves=("train/loss", "val/*", "rank/*", "sym/*"),
        scatter=(("rank/effective_rank/hidden", "test/loss"), ("rank/first_post/cov_rank", "test/acc")),
    ),
    "ppo": Layout(
        title="PPO plasticity (Slippery Ant / shifting pendulum)",
        finals=("train/return_final", "train/return_mean", "rank/effective_rank_pct", "rank/effective_rank_pct_min",
                "model/weight_magnitude", "env/parameter_changes"),
        curves=("train/episode_return", "rank/effective_rank_pct", "rank/abs_approx_rank_pct",
                "model/weight_magnitude", "env/parameter"),
        axis="env_step",
        scatter=(("rank/effective_rank_pct_min", "train/return_final"),),
    ),
    "discovery": Layout(
        title="seed 003: learned symmetry generators",
        finals=("gen/alignment", "gen/alignment/h*", "gen/invariance_learned/h*", "gen/lift_wider", "gen/lift_deeper",
                "gen/*"),
        curves=("train/loss", "train/*"),
        axis="step",
    ),
    "mirror": Layout(
        title="seed 004: mirror symmetries (sparsity, rank, ensembles, plasticity)",
        finals=("mirror/sparsity_*_max", "mirror/diverged_*", "rank/*_min", "plasticity/*/last_task_loss", "sym/mirror*",
                "mirror/*"),
        curves=("train/*",),
    ),
    "generic": Layout(title="sweep overview", finals=("test/*", "val/*", "sym/*", "rank/*", "*"),
                      curves=("train/loss", "val/*")),
}
