"""Batch-size-1 training engines for ensemble-native regression models.

An engine advances every member of a stacked model by S sequential optimizer steps, one unpaired point
per member per step, and returns the pre-update per-step losses. ``autograd`` works for any stacked
model and torch optimizer; ``fused`` is the fast CPU path for RF-LR/MLP with Adam/AdamW (see fused.py);
``graph`` is the GPU path for any stacked model and capturable optimizer: the chunk's steps recorded
as CUDA graphs and replayed (see graph.py; on CPU it runs the same step function eagerly);
``graph_compiled`` is the same with forward + loss compiled by torch.compile (opt-in: never measured yet).
"""

from symexp.engines.autograd import AutogradEngine

__all__ = ["AutogradEngine", "ENGINES", "build_engine"]

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
        if kind == "fused":
            raise ValueError("task.engine=fused: this model/optimizer/syre combination has no fused path")
    return AutogradEngine(model, optimizer, hooks)
