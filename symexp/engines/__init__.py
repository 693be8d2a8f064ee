"""Batch-size-1 training engines for ensemble-native regression models.

An engine advances every member of a stacked model by S sequential optimizer steps, one unpaired point
per member per step, and returns the pre-update per-step losses. ``autograd`` works for any stacked
model and torch optimizer; ``fused`` is the fast path for RF-LR/MLP (see fused.py).
"""

from symexp.engines.autograd import AutogradEngine

__all__ = ["AutogradEngine", "build_engine"]


def build_engine(kind: str, model, optimizer, hooks=None):
    """The engine named by task.engine ('autograd', 'fused' or 'auto': fused where supported)."""
    if kind not in ("auto", "autograd", "fused"):
        raise ValueError(f"task.engine: unknown engine {kind!r}; choose auto, autograd or fused")
    if kind in ("auto", "fused"):
        try:
            from symexp.engines.fused import FusedEngine
        except ImportError:
            FusedEngine = None
        if FusedEngine is not None and FusedEngine.supports(model, optimizer, hooks):
            return FusedEngine(model, optimizer, hooks)
        if kind == "fused":
            raise ValueError("task.engine=fused: this model/optimizer/syre combination has no fused path")
    return AutogradEngine(model, optimizer, hooks)
