"""Verdicts of seed 004's mirror experiments: does the run show the paper's effect against its control?

Each function takes the run's own numbers and returns one line that starts with ``holds:``, ``does not
hold:`` or ``undecided:`` (a diverged or missing number), followed by the numbers it rests on and the
settings (budget) they were measured at. A verdict always compares the symmetric model with a control
that lacks the symmetry: a control that behaves like the treatment (no contrast) or a treatment without
the effect is refused, whatever the absolute numbers. The thresholds are symexp's (seed 004 gives none);
they are module constants so tests and docs can name them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

RANK_MIN_DROP = 0.1          # the factorised rank must fall by >= 10% of d (and >= 2) over the lr grid ...
RANK_CONTROL_SHARE = 0.25    # ... while the control falls by at most a quarter of that
SPARSITY_MIN_SHARE = 0.1     # >= 10% of coordinates exactly on the mirror somewhere on the grid ...
SPARSITY_CONTROL_SHARE = 0.25  # ... with the vanilla model at most a quarter of that
ENSEMBLE_MIN_SHARE = 0.5     # >= half the live units twinned at the largest weight decay ...
ENSEMBLE_CONTROL_SHARE = 0.5  # ... at most half as many without (or with the smallest) weight decay
PLASTICITY_LOST = 10.0       # last-task loss >= 10x the first task's: plasticity lost
PLASTICITY_KEPT = 3.0        # last-task loss <= 3x the first task's: plasticity kept


def _finite(*values: float) -> bool:
    return all(v is not None and math.isfinite(float(v)) for v in values)


def _judge(evidence: str, budget: str, *checks: tuple[bool, str]) -> str:
    """The first failed check (failed, why) says why the verdict does not hold; with none failed it holds."""
    reason = next((why for failed, why in checks if failed), None)
    return (f"holds: {evidence}" if reason is None else f"does not hold: {reason}; {evidence}") + f" ({budget})"


def rank_verdict(lrs: Sequence[float], treatment: Sequence[float], control: Sequence[float], dim: int,
                 budget: str, control_name: str = "residual (U + I)(V + I)") -> str:
    """Fig. 3 middle: the rank of W = U V falls as the learning rate (the minibatch noise) grows, the rank
    of the residual control does not. Drops are rank at the smallest lr minus the lowest rank on the grid."""
    if not (_finite(*treatment, *control) and len(treatment) == len(control) == len(lrs) >= 2):
        return f"undecided: a diverged or missing rank (U V {list(treatment)}, control {list(control)}) ({budget})"
    drop_t, drop_c = treatment[0] - min(treatment), control[0] - min(control)
    need = max(2.0, RANK_MIN_DROP * dim)
    evidence = (f"rank of W = U V {treatment[0]:.0f} -> {treatment[-1]:.0f} (drop {drop_t:.0f}) as lr grows "
                f"{lrs[0]:g} -> {lrs[-1]:g}; {control_name} {control[0]:.0f} -> {control[-1]:.0f} (drop {drop_c:.0f})")
    return _judge(evidence, budget,
                  (drop_t < need, f"the rank of U V does not fall (drop {drop_t:.0f} < {need:.0f})"),
                  (drop_c > RANK_CONTROL_SHARE * drop_t,
                   f"the control falls too (drop {drop_c:.0f} > {RANK_CONTROL_SHARE:g} x {drop_t:.0f})"))


def sparsity_verdict(sym_share: Sequence[Sequence[float]], plain_share: Sequence[Sequence[float]],
                     lrs: Sequence[float], budget: str) -> str:
    """Fig. 3 left: theta = u * v puts coordinates exactly on the rescaling mirror, more at a larger learning
    rate; vanilla theta = w does not. Shares are [lr][weight decay] grids (NaN = diverged, left out)."""
    order = sorted(range(len(lrs)), key=lambda i: lrs[i])  # the trend is read from the smallest to the largest lr
    sym_share, plain_share, lrs = [sym_share[i] for i in order], [plain_share[i] for i in order], [lrs[i] for i in order]
    sym = [[v for v in row if _finite(v)] for row in sym_share]
    plain = [v for row in plain_share for v in row if _finite(v)]
    if not all(sym) or not plain:
        return f"undecided: every run of a learning rate diverged ({budget})"
    best, best_plain = max(max(r) for r in sym), max(plain)
    first, last = max(sym[0]), max(sym[-1])
    evidence = (f"share exactly on the mirror, u * v: up to {best:.2f} ({first:.2f} at lr {lrs[0]:g} -> {last:.2f} "
                f"at lr {lrs[-1]:g}, best weight decay); vanilla w: up to {best_plain:.2f}")
    return _judge(evidence, budget,
                  (best < SPARSITY_MIN_SHARE, f"u * v has < {SPARSITY_MIN_SHARE:g} of its coordinates on the mirror"),
                  (best_plain > SPARSITY_CONTROL_SHARE * best, "the vanilla control is as sparse"),
                  (last <= first, "the share does not grow with the learning rate"))


def ensemble_verdict(weight_decays: Sequence[float], twinned: Sequence[float], budget: str) -> str:
    """Fig. 3 right: with weight decay most hidden units form homogeneous blocks (a twin), without it few do.
    The control is the smallest weight decay of the grid (the paper's inset: none)."""
    if len(twinned) < 2 or not _finite(twinned[0], twinned[-1]):
        return f"undecided: need two finite weight decays, got {list(twinned)} ({budget})"
    lo, hi = twinned[0], twinned[-1]
    evidence = (f"units with a twin {lo:.2f} at weight decay {weight_decays[0]:g} -> {hi:.2f} at "
                f"{weight_decays[-1]:g}")
    return _judge(evidence, budget,
                  (hi < ENSEMBLE_MIN_SHARE, f"< {ENSEMBLE_MIN_SHARE:g} of the units twinned with weight decay"),
                  (lo > ENSEMBLE_CONTROL_SHARE * hi, "as many twins without weight decay"))


def plasticity_verdict(first: dict[str, float], last: dict[str, float], budget: str) -> str:
    """Fig. 4: the rescaling-symmetric regressor loses plasticity (its last-task loss >> its first), the vanilla
    one does not, and both fixes (a fixed offset, noise) keep it. Losses are relative training losses at the
    end of the first and the last task, per variant."""
    names = ("vanilla", "rescaling", "rescaling_offset", "rescaling_noise")
    if not all(_finite(first.get(n), last.get(n)) and first[n] > 0 for n in names):
        return f"undecided: a diverged or missing loss ({budget})"
    ratio = {n: last[n] / first[n] for n in names}
    evidence = ", ".join(f"{n} {first[n]:.2g} -> {last[n]:.2g}" for n in names) + " (first -> last task)"
    kept = [n for n in names if n != "rescaling" and ratio[n] > PLASTICITY_KEPT]
    return _judge(evidence, budget,
                  (ratio["rescaling"] < PLASTICITY_LOST,
                   f"the symmetric model keeps learning (x{ratio['rescaling']:.2g} < x{PLASTICITY_LOST:g})"),
                  (bool(kept), f"{', '.join(kept)} lose(s) plasticity too (> x{PLASTICITY_KEPT:g})"))
