"""Graph engine: the S batch-1 steps of a chunk captured once as a CUDA graph and replayed per chunk.

Why: on a GPU an eager batch-1 step is ~50 tiny kernel launches plus autograd and optimizer bookkeeping
in Python, ~0.4-0.6 ms whatever K, so the GPU idles. Here the step function (forward, backward,
optimizer step, syre's anchored decay) is recorded once per segment of ``graph_steps`` steps into a
``torch.cuda.CUDAGraph`` over static input buffers; a segment then costs one graph launch plus two
input copies instead of ``graph_steps`` x ~50 launches.

The step function is ordinary eager PyTorch with no host synchronisation, so it runs unchanged on any
device: on CPU (``capture=False``) it is the engine, and the tests compare it with
:class:`~symexp.engines.autograd.AutogradEngine` there. It is model-agnostic (any stacked model whose
forward maps (K, 1, d) to (K, 1)) and optimizer-agnostic among torch optimizers that have a
``capturable`` form (Adam, AdamW, NAdam, RAdam, Adamax, RMSprop, ASGD); Adam/AdamW additionally use
torch's single-kernel ``fused`` update on CUDA. Optimizers without one (SGD, Adagrad, LBFGS, ...) are
refused with a message, and ``task.engine=auto`` falls back to the autograd engine for them.

``compile=True`` (``task.engine=graph_compiled``) runs forward + loss through ``torch.compile``; the
compilation happens in the eager warm-up segment, and the captures record the generated kernels.

Hyperparameters. While the engine runs, every param group's ``lr`` is swapped for a 0-dim tensor on
the parameters' device that is refilled from the group's float ``lr`` at each call, so a scheduler's new
rate takes effect at the next chunk, as with the other engines; the captured kernels read the tensor.
On CUDA ``capturable`` (and ``fused`` for Adam/AdamW) are switched on for the same span. After the call
the group holds exactly what it held before (a float ``lr``, the user's flags), so optimizer
checkpoints and schedulers never see the swap. Any other hyperparameter change (betas, eps,
weight_decay), a replaced parameter or optimizer-state tensor (``optimizer.load_state_dict``, an
engine switch) invalidates the graphs, and the next segment is warmed up eagerly and recaptured.

A step that cannot be captured (a host synchronisation in a custom model's forward) raises a
:class:`CaptureError` naming the model and optimizer under ``task.engine=graph``; under
``task.engine=auto`` it is logged once and the run continues with the autograd engine.

syre: hooks with ``fused_compatible`` (the anchored static bias) are replaced by anchored weight decay
applied inside the step with the lr tensor (coupled: ``grad -= wd * theta0`` before the step; decoupled:
``p += lr * wd * theta0`` after it), exactly syre's own before/after_step; hooks whose before/after_step
are no-ops (sigma-Asym) need nothing; other hooks (W-fix, advanced) are refused.
"""

from __future__ import annotations

import contextlib
import logging

import torch
from torch import nn

log = logging.getLogger("symexp.engines.graph")


class CaptureError(RuntimeError):
    """The step could not be recorded as a CUDA graph (something in it synchronises with the host)."""


# steps per captured segment: ~40 kernels per step of the Table 1 RF-LR, so ~2.5k graph nodes, recorded
# once; a segment is one graph launch, negligible against its 64 steps of GPU time
DEFAULT_GRAPH_STEPS = 64


def unsupported_reason(model: nn.Module, optimizer: torch.optim.Optimizer, hooks=None) -> str | None:
    """Why GraphEngine cannot run this combination (None when it can)."""
    from symexp.syre import SyreBase

    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        return "the model has no trainable parameters"
    devices = {p.device for p in params}
    if len(devices) != 1:
        return f"parameters live on several devices {sorted(map(str, devices))}"
    grouped = {id(p) for g in optimizer.param_groups for p in g["params"]}
    if not {id(p) for p in params} <= grouped:
        return "some trainable parameters are not in the optimizer"
    if "capturable" not in optimizer.defaults:
        return (f"{type(optimizer).__name__} has no capturable form; use Adam, AdamW, NAdam, RAdam, Adamax, "
                "RMSprop or ASGD, or task.engine=autograd")
    if any(g.get("differentiable", False) for g in optimizer.param_groups):
        return "differentiable=True optimizers cannot be captured"
    if hooks is not None and not getattr(hooks, "fused_compatible", False):
        trivial = (type(hooks).before_step is SyreBase.before_step and type(hooks).after_step is SyreBase.after_step)
        if not trivial:
            return (f"syre {type(hooks).__name__} acts through per-step hooks the graph cannot replay; "
                    "use task.engine=autograd")
    return None


class GraphEngine:
    """S sequential batch-1 steps for every member, captured as CUDA graphs on CUDA and run eagerly
    elsewhere. Same contract as AutogradEngine: ``run(x (K, S, d), y (K, S)) -> losses (K, S)``."""

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer, hooks=None, capture: bool | None = None,
                 graph_steps: int = DEFAULT_GRAPH_STEPS, fused_optimizer: bool = True, fallback: bool = False,
                 compile: bool = False) -> None:
        reason = unsupported_reason(model, optimizer, hooks)
        if reason is not None:
            raise ValueError(f"task.engine=graph: {reason}")
        if graph_steps < 1:
            raise ValueError(f"GraphEngine: graph_steps must be >= 1, got {graph_steps}")
        self.model, self.optimizer, self.hooks = model, optimizer, hooks
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.device = self.params[0].device
        self.capture = self.device.type == "cuda" if capture is None else bool(capture)
        if self.capture and self.device.type != "cuda":
            raise ValueError(f"GraphEngine: capture needs CUDA parameters, these are on {self.device}")
        self.graph_steps = int(graph_steps)
        self.capturable = self.device.type == "cuda"  # torch's capturable optimizers need an accelerator
        self.fused_optimizer = fused_optimizer and self.capturable and "fused" in optimizer.defaults
        # torch.compile of forward + loss (+ its backward): fewer, fused kernels per step; compiled at the
        # first (eager, warm-up) segment, so captures only record the generated kernels
        self.compiled = bool(compile)
        self._loss_fn = torch.compile(self._loss, dynamic=False) if compile else self._loss
        self._lr = [torch.zeros((), dtype=torch.float32, device=self.device) for _ in optimizer.param_groups]
        self._anchor_pairs: list[tuple[int, list[nn.Parameter], list[torch.Tensor]]] | None = None
        self._graphs: dict[int, tuple[torch.cuda.CUDAGraph, torch.Tensor, torch.Tensor, torch.Tensor]] = {}
        self._graph_key: tuple | None = None
        self._warm_key: tuple | None = None
        self.fallback = fallback
        self._autograd = None  # set when a capture failed under fallback: the rest runs eagerly there
        self.captures = 0  # graphs recorded so far (a test and the bench read it)

    # ---------------------------------------------------------------- anchored syre decay
    def _anchors(self) -> list[tuple[int, list[nn.Parameter], list[torch.Tensor]]]:
        """Per param group (by index: optimizer.load_state_dict replaces the group dicts): the anchored
        parameters and their theta0."""
        if self._anchor_pairs is not None:
            return self._anchor_pairs
        out = []
        if self.hooks is not None and getattr(self.hooks, "fused_compatible", False):
            got = self.hooks.anchors(self.model) or {}
            by_id = {id(p): got.get(n) for n, p in self.model.named_parameters()}
            for i, group in enumerate(self.optimizer.param_groups):
                items = [(p, by_id[id(p)]) for p in group["params"] if by_id.get(id(p)) is not None]
                if items:
                    out.append((i, [p for p, _ in items], [t.detach().to(p).expand_as(p) for p, t in items]))
        self._anchor_pairs = out
        return out

    @torch.no_grad()
    def _decay(self, before: bool) -> None:
        """syre's anchored decay (coupled: into the gradient before the step; decoupled: after it)."""
        from symexp.syre import _decoupled

        for i, ps, t0 in self._anchors():
            group = self.optimizer.param_groups[i]
            wd = float(group["weight_decay"])
            if wd == 0:
                continue
            decoupled = _decoupled(self.optimizer, group)
            if before and not decoupled:
                pairs = [(p.grad, t) for p, t in zip(ps, t0) if p.grad is not None]
                if pairs:
                    grads, ts = zip(*pairs)
                    torch._foreach_add_(list(grads), list(ts), alpha=-wd)
            elif not before and decoupled:
                coef = group["lr"] * wd  # the lr tensor: follows the scheduler without recapture
                torch._foreach_add_(ps, torch._foreach_mul(t0, coef))

    # ---------------------------------------------------------------- the step function
    def _loss(self, xs: torch.Tensor, ys: torch.Tensor) -> torch.Tensor:
        """Per-member squared error of one step: xs (K, d), ys (K,) -> (K,)."""
        return (self.model(xs[:, None, :])[:, 0] - ys).square()

    def steps(self, x: torch.Tensor, y: torch.Tensor, losses: torch.Tensor) -> None:
        """The S steps of x (K, S, d), y (K, S), writing the pre-update losses into losses (K, S).

        No host synchronisation: this is what a CUDA graph records. Must run inside ``_hyper()``. The
        inputs are laid out step-major first, so every step's slice is a contiguous (K, d) block whose
        strides do not depend on S (a compiled loss then never sees a new layout)."""
        xt, yt = x.transpose(0, 1).contiguous(), y.transpose(0, 1).contiguous()
        for s in range(xt.shape[0]):
            for p in self.params:
                p.grad = None
            loss = self._loss_fn(xt[s], yt[s])
            loss.sum().backward()
            self._decay(before=True)
            self.optimizer.step()
            self._decay(before=False)
            losses[:, s] = loss.detach()

    @contextlib.contextmanager
    def _hyper(self):
        """Tensor lr (and capturable/fused on CUDA, foreach off on CPU) in every group while the engine runs."""
        saved, groups = [], self.optimizer.param_groups
        if len(self._lr) != len(groups):
            self._lr = [torch.zeros((), dtype=torch.float32, device=self.device) for _ in groups]
        for group, buf in zip(groups, self._lr):
            saved.append({k: group[k] for k in ("lr", "capturable", "fused", "foreach") if k in group})
            lr = group["lr"]
            buf.fill_(float(lr.item() if isinstance(lr, torch.Tensor) else lr))
            group["lr"] = buf
            if self.capturable:  # also when not capturing, so eager CUDA runs the very ops a graph records
                group["capturable"] = True
                if self.fused_optimizer:
                    group["fused"], group["foreach"] = True, False
            elif "foreach" in group:
                group["foreach"] = False  # torch's foreach kernels refuse a tensor lr unless capturable
        try:
            yield
        finally:
            for group, old in zip(self.optimizer.param_groups, saved):
                group.update(old)

    def _prepare_state(self) -> None:
        """capturable/fused optimizers keep ``step`` on the parameters' device as float32."""
        if not self.capturable:
            return
        for p in self.params:
            st = self.optimizer.state.get(p)
            if st and isinstance(st.get("step"), torch.Tensor) and st["step"].device != p.device:
                st["step"] = st["step"].to(device=p.device, dtype=torch.float32)
            elif st and "step" in st and not isinstance(st["step"], torch.Tensor):
                st["step"] = torch.tensor(float(st["step"]), dtype=torch.float32, device=p.device)

    def _key(self) -> tuple:
        """What the captured graphs depend on: tensor addresses and the non-lr hyperparameters."""
        ptrs = []
        for p in self.params:
            st = self.optimizer.state.get(p, {})
            ptrs.append((p.data_ptr(), tuple((k, v.data_ptr()) for k, v in sorted(st.items())
                                             if isinstance(v, torch.Tensor))))
        hyper = tuple(repr(sorted((k, v) for k, v in g.items() if k not in ("params", "lr")))
                      for g in self.optimizer.param_groups)
        anchors = tuple(t.data_ptr() for _, _, ts in self._anchors() for t in ts)
        return tuple(ptrs), hyper, anchors, tuple(b.data_ptr() for b in self._lr)

    # ---------------------------------------------------------------- capture and replay
    def _capture(self, g: int, x: torch.Tensor, y: torch.Tensor):
        sx, sy = torch.empty_like(x[:, :g]), torch.empty_like(y[:, :g])  # filled before every replay
        sl = torch.empty_like(sy)
        graph = torch.cuda.CUDAGraph()
        try:
            with torch.cuda.graph(graph):  # a private memory pool per graph: no ordering rules between them
                self.steps(sx, sy, sl)
        except Exception as exc:
            raise CaptureError(
                f"GraphEngine: capturing the step of {type(self.model).__name__} with "
                f"{type(self.optimizer).__name__} failed ({type(exc).__name__}: {exc}); something in the step "
                "synchronises with the host. Use task.engine=autograd.") from exc
        self.captures += 1
        self._graphs[g] = (graph, sx, sy, sl)
        return self._graphs[g]

    def _eager_on_side_stream(self, x, y, losses) -> None:
        """Warm-up before a capture (lazy optimizer state, cuBLAS handles), as torch's capture recipe does."""
        side = torch.cuda.Stream(device=self.device)
        side.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(side):
            self.steps(x, y, losses)
        torch.cuda.current_stream(self.device).wait_stream(side)

    def run(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """x (K, S, d), y (K, S) -> pre-update losses (K, S), on the parameters' device."""
        K = self.params[0].shape[0]
        if x.dim() != 3 or x.shape[0] != K or tuple(y.shape) != tuple(x.shape[:2]):
            raise ValueError(f"GraphEngine.run: x {tuple(x.shape)} / y {tuple(y.shape)} do not fit K={K}")
        x = x.detach().to(self.device).contiguous()
        y = y.detach().to(self.device).contiguous()
        S = x.shape[1]
        losses = torch.empty_like(y)
        if self._autograd is not None:
            return self._autograd.run(x, y)
        done = S
        try:
            with self._hyper():
                self._prepare_state()
                if not self.capture:
                    self.steps(x, y, losses)
                    return losses
                for start in range(0, S, self.graph_steps):
                    done = start
                    g = min(self.graph_steps, S - start)
                    self._segment(x[:, start : start + g], y[:, start : start + g], losses[:, start : start + g])
                done = S
        except CaptureError as exc:
            if not self.fallback:
                raise
            log.warning("%s; task.engine=auto continues with the autograd engine", exc)
            from symexp.engines.autograd import AutogradEngine

            self.reset()
            self._autograd = AutogradEngine(self.model, self.optimizer, self.hooks)
            losses[:, done:] = self._autograd.run(x[:, done:], y[:, done:])
        return losses

    def _segment(self, xs: torch.Tensor, ys: torch.Tensor, out: torch.Tensor) -> None:
        """One segment of g steps: replayed from its graph, or eagerly as the warm-up before a (re)capture."""
        g = xs.shape[1]
        key = self._key()
        if key != self._graph_key:
            self._graphs.clear()
            self._graph_key = None
            if key != self._warm_key:
                tmp = torch.empty_like(ys)
                self._eager_on_side_stream(xs, ys, tmp)
                out.copy_(tmp)
                self._warm_key = self._key()
                return
            self._graph_key = key
        graph, sx, sy, sl = self._graphs.get(g) or self._capture(g, xs, ys)
        sx.copy_(xs)
        sy.copy_(ys)
        graph.replay()
        out.copy_(sl)

    # ---------------------------------------------------------------- checkpoints
    def state_dict(self) -> dict:
        """Nothing beyond the optimizer's own state (saved with the optimizer); graphs are re-recorded."""
        return {}

    def load_state_dict(self, state: dict) -> None:
        """Drop the graphs: the restored tensors live elsewhere, so the next segment recaptures."""
        self.reset()

    def reset(self) -> None:
        self._graphs.clear()
        self._graph_key = self._warm_key = None
        self._anchor_pairs = None
