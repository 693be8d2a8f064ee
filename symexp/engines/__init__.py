"""Batch-size-1 training engines for ensemble-native regression models.

An engine advances every member of a stacked model by S sequential optimizer steps, one unpaired point
per member per step, and returns the pre-update per-step losses. ``autograd`` works for any stacked
model and torch optimizer; ``fused`` is the fast path for RF-LR/MLP (see fused.py).
"""

import logging

from symexp.engines.autograd import AutogradEngine

__all__ = ["AutogradEngine", "build_engine"]
log = logging.getLogger("symexp")
_warned: set[str] = set()


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
        reason = _kernel_unavailable(model, optimizer, hooks)
        if kind == "fused":
            raise ValueError("task.engine=fused: " + (f"the fused kernel is unavailable: {reason}" if reason else
                             "this model/optimizer/syre combination has no fused path"))
        if reason:
            if reason not in _warned:  # once per process: a sweep's jobs share the cause
                _warned.add(reason)
                log.warning("task.engine=auto: the fused kernel is unavailable (%s); training with autograd, "
                            "about 10x slower. Install a C compiler (or set CC) for the fast path.", reason)
            engine = AutogradEngine(model, optimizer, hooks)
            engine.fallback = f"fused kernel unavailable: {reason}"
            return engine
    return AutogradEngine(model, optimizer, hooks)


def _kernel_unavailable(model, optimizer, hooks) -> str | None:
    """Why the fused path is off for a combination it supports (no compiler, build failure), else None."""
    try:
        from symexp.engines.fused import FusedEngine, build_error
    except ImportError as exc:
        return f"cannot import the fused engine: {exc}"
    if not FusedEngine.supports(model, optimizer, hooks, check_kernel=False):
        return None
    err = build_error()
    return str(err).splitlines()[0] if err is not None else None


def engine_info(engine) -> dict:
    """results.json env.engine: which engine ran (and the ISA for the fused one, the reason for a fallback)."""
    return engine.info() if hasattr(engine, "info") else {"name": type(engine).__name__}
