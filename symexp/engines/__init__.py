"""Batch-size-1 training engines for ensemble-native regression models.

An engine advances every member of a stacked model by S sequential optimizer steps, one unpaired point
per member per step, and returns the pre-update per-step losses. ``autograd`` works for any stacked
model and torch optimizer; ``fused`` is the fast CPU path for RF-LR/MLP with Adam/AdamW (see fused.py);
``graph`` is the GPU path for any stacked model and capturable optimizer: the chunk's steps recorded
as CUDA graphs and replayed (see graph.py; on CPU it runs the same step function eagerly);
``graph_compiled`` is the same with forward + loss compiled by torch.compile (opt-in: never measured yet).
"""

import logging

from symexp.engines.autograd import AutogradEngine

__all__ = ["AutogradEngine", "ENGINES", "build_engine", "engine_info"]
log = logging.getLogger("symexp")
_warned: set[str] = set()

ENGINES = ("auto", "autograd", "fused", "graph", "graph_compiled")


def _on_cuda(model) -> bool:
    return any(p.is_cuda for p in model.parameters())


def build_engine(kind: str, model, optimizer, hooks=None):
    """The engine named by task.engine: 'autograd', 'fused', 'graph' or 'auto' (graph on CUDA, fused on
    CPU, where each supports the model/optimizer/syre combination; autograd otherwise)."""
    if kind not in ENGINES:
        raise ValueError(f"task.engine: unknown engine {kind!r}; choose one of {', '.join(ENGINES)}")
    if kind in ("graph", "graph_compiled") or (kind == "auto" and _on_cuda(model)):
        from symexp.engines.graph import GraphEngine, unsupported_reason

        reason = unsupported_reason(model, optimizer, hooks)
        if reason is None:
            return GraphEngine(model, optimizer, hooks, fallback=kind == "auto", compile=kind == "graph_compiled")
        if kind != "auto":
            raise ValueError(f"task.engine={kind}: {reason}")
        return AutogradEngine(model, optimizer, hooks)
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
    """results.json env.engine: which engine ran (the ISA for the fused one, the reason for a fallback)."""
    if hasattr(engine, "info"):
        return engine.info()
    return {"name": type(engine).__name__.removesuffix("Engine").lower()}
