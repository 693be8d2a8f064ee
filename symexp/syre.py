"""syre (seed 002): model-agnostic symmetry removal, and its baselines W-fix and sigma-Asym.

static bias (Eq. 6): train l(theta + theta0) + gamma |theta|^2 with theta0 ~ sigma0 * N(0, 1) drawn once.
With phi = theta + theta0 this is l(phi) + gamma |phi - theta0|^2: **weight decay anchored at theta0**,
which costs nothing in the forward pass. That is the default ``form: anchored``; ``form: offset`` is the
literal Eq. 6 (theta_eff = theta + theta0 through ``torch.nn.utils.parametrize``), kept to check the
equivalence. The decay strength gamma is the optimizer's own ``weight_decay`` (the paper: "weight decay
is the same as the standard implementation"); ``weight_decay`` here, when set, overwrites it in every
param group. The optimizer keeps applying its decay toward 0 and syre adds the theta0 term:

- coupled L2 (SGD, Adam, RMSprop, ...): ``grad -= gamma * theta0`` before the step, so the optimizer sees
  ``grad + gamma * (phi - theta0)`` (gradients and Adam moments equal those of the offset form);
- decoupled (AdamW, ``decoupled_weight_decay=True``): ``phi += lr * gamma * theta0`` after the step.

advanced removal (Eq. 7): gamma |theta|_D^2 with D_ii ~ U(1 - sigma_D, 1 + sigma_D) (sigma_D = 0 is the
static bias). The optimizer's scalar decay cannot express D, so syre adds the difference exactly.

Parameters are chosen by the type of the module that holds them and by glob patterns on their names;
normalization parameters never (by default). symexp's ensemble models keep stacked (K, ...) weights in
ParameterLists, so ``ParameterList`` is among the default types; member k's theta0 is drawn from
``generator(seed_k, "syre")`` only, so it equals a solo run's. Frozen buffers are never touched.
"""

from __future__ import annotations

import fnmatch
import logging
import math
from collections.abc import Sequence

import torch
from torch import nn
from torch.nn.utils import parametrize

from symexp.seeding import generator

log = logging.getLogger("symexp.syre")

DEFAULT_TYPES = (
    "Linear", "Bilinear", "Conv1d", "Conv2d", "Conv3d", "ConvTranspose1d", "ConvTranspose2d", "ConvTranspose3d",
    "ParameterList", "ParameterDict",
)
NORM_TYPES = (nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm, nn.LocalResponseNorm, nn.RMSNorm)
COUPLED = (torch.optim.SGD, torch.optim.Adam, torch.optim.RMSprop, torch.optim.Adagrad, torch.optim.NAdam,
           torch.optim.RAdam, torch.optim.Adamax)


# ---------------------------------------------------------------------------------------------- selection
def _owner(model: nn.Module, name: str) -> tuple[nn.Module, str]:
    path, _, attr = name.rpartition(".")
    return (model.get_submodule(path) if path else model), attr


def select_parameters(
    model: nn.Module,
    module_types: Sequence[str] | None = DEFAULT_TYPES,
    include: Sequence[str] = ("*",),
    exclude: Sequence[str] = (),
    include_norm: bool = False,
) -> dict[str, nn.Parameter]:
    """Trainable parameters whose owner's class name is in module_types (None: any) and whose dotted name
    matches an include glob and no exclude glob; normalization parameters only with include_norm."""
    out = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        owner, _ = _owner(model, name)
        if isinstance(owner, NORM_TYPES) and not include_norm:
            continue
        if module_types is not None and type(owner).__name__ not in module_types:
            continue
        if not any(fnmatch.fnmatchcase(name, g) for g in include) or any(fnmatch.fnmatchcase(name, g) for g in exclude):
            continue
        out[name] = p
    return out


def _member_draw(model: nn.Module, seeds: Sequence[int], shapes: dict[str, torch.Size], fn,
                 named: bool = False) -> dict[str, torch.Tensor]:
    """fn(generator, per-member shape[, name]) for every parameter in order; stacked over members for ensembles.

    Ensemble models (an attribute ``members``) get one draw per member from that member's own stream,
    so member k's values depend only on seeds[k]; other models draw with seeds[0]."""
    stacked = hasattr(model, "members")
    if stacked:
        K = len(seeds)
        bad = [n for n, s in shapes.items() if len(s) == 0 or s[0] != K]
        if bad:
            raise ValueError(f"syre: parameters {bad} have no leading member axis of size ensemble.size={K}")
        gens = [generator(s, "syre") for s in seeds]
        return {n: torch.stack([fn(g, s[1:], *((n,) if named else ())) for g in gens]) for n, s in shapes.items()}
    if len(seeds) > 1:
        raise ValueError(f"ensemble.size={len(seeds)}: this model is not an ensemble model; use ensemble.size=1")
    g = generator(seeds[0], "syre")
    return {n: fn(g, s, *((n,) if named else ())) for n, s in shapes.items()}


def _fan_in(shape: torch.Size) -> int:
    return int(math.prod(shape[1:])) if len(shape) >= 2 else 1


class _Offset(nn.Module):
    """theta_eff = theta + theta0 (the literal Eq. 6)."""

    def __init__(self, theta0: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("theta0", theta0)

    def forward(self, theta: torch.Tensor) -> torch.Tensor:
        return theta + self.theta0


def _decoupled(optimizer: torch.optim.Optimizer, group: dict) -> bool:
    if isinstance(optimizer, torch.optim.AdamW):
        return True
    if isinstance(optimizer, COUPLED):
        return bool(group.get("decoupled_weight_decay", False))
    raise ValueError(f"syre: optimizer {type(optimizer).__name__} has no known weight-decay semantics; "
                     f"use one of AdamW, {', '.join(c.__name__ for c in COUPLED)}")


def _lr(group: dict) -> float:
    lr = group["lr"]
    return float(lr.item() if isinstance(lr, torch.Tensor) else lr)


# ---------------------------------------------------------------------------------------------- base
class SyreBase:
    """No-op hooks; subclasses override. ``fused_compatible``: the fused RF-LR engine may replace the
    hooks by anchored weight decay (``anchors``) instead of calling before/after_step."""

    fused_compatible = False

    def __init__(self, seeds: Sequence[int] = (0,), seed: int | None = None, module_types=DEFAULT_TYPES,
                 include: Sequence[str] = ("*",), exclude: Sequence[str] = (), include_norm: bool = False) -> None:
        self.seeds = [int(seed) + k for k in range(len(seeds))] if seed is not None else list(seeds)
        self.module_types = None if module_types is None else tuple(module_types)
        self.include, self.exclude, self.include_norm = tuple(include), tuple(exclude), include_norm

    def select(self, model: nn.Module) -> dict[str, nn.Parameter]:
        sel = select_parameters(model, self.module_types, self.include, self.exclude, self.include_norm)
        if not sel:
            raise ValueError("syre.include: no parameter of the model matches module_types/include/exclude")
        return sel

    def configure(self, model: nn.Module, optimizer: torch.optim.Optimizer) -> None:
        pass

    def before_step(self, model: nn.Module, optimizer: torch.optim.Optimizer) -> None:
        pass

    def after_step(self, model: nn.Module, optimizer: torch.optim.Optimizer) -> None:
        pass

    def anchors(self, model: nn.Module) -> dict[str, torch.Tensor | None]:
        return {}

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


class Off(SyreBase):
    """Explicit no-op (``syre=off`` builds no object at all; this exists for configs that want one)."""

    def __init__(self, seeds: Sequence[int] = (0,), **_) -> None:
        super().__init__(seeds)


# ---------------------------------------------------------------------------------------------- static bias
class StaticBias(SyreBase):
    """Static bias theta0 (+ optional D of the advanced removal) with anchored or offset weight decay.

    syre has two parts that act differently: the *initial perturbation* (the anchored form starts at
    theta_init + theta0, ``shift_init``) and the *anchored decay* (the gamma theta0 term that makes weight
    decay pull toward theta0 rather than 0, ``anchor``). ``shift_init=false`` keeps the anchor alone;
    ``anchor=false`` keeps the perturbation alone (ordinary decay toward 0 from a perturbed start), so a
    figure can say which of the two produces an effect."""

    def __init__(
        self,
        sigma0: float = 0.01,
        mode: str = "absolute",
        form: str = "anchored",
        sigma_D: float = 0.0,
        weight_decay: float | None = None,
        shift_init: bool = True,
        anchor: bool = True,
        seeds: Sequence[int] = (0,),
        seed: int | None = None,
        module_types: Sequence[str] | None = DEFAULT_TYPES,
        include: Sequence[str] = ("*",),
        exclude: Sequence[str] = (),
        include_norm: bool = False,
    ) -> None:
        super().__init__(seeds, seed, module_types, include, exclude, include_norm)
        if not anchor and (form != "anchored" or not shift_init):
            raise ValueError("syre.anchor: false (perturbation only) needs form=anchored and shift_init=true")
        if mode not in ("absolute", "fan_in_relative", "global"):
            raise ValueError(f"syre.mode: {mode!r} is not absolute, fan_in_relative or global")
        if form not in ("anchored", "offset"):
            raise ValueError(f"syre.form: {form!r} is not anchored or offset")
        if sigma0 < 0 or not 0 <= sigma_D < 1:
            raise ValueError(f"syre.sigma0/sigma_D: need sigma0 >= 0 and 0 <= sigma_D < 1, got {sigma0}, {sigma_D}")
        if form == "offset" and sigma_D > 0:
            raise ValueError("syre.form: offset cannot express D (sigma_D > 0); use form=anchored")
        if weight_decay is not None and weight_decay < 0:
            raise ValueError(f"syre.weight_decay: must be >= 0, got {weight_decay}")
        self.sigma0, self.mode, self.form, self.sigma_D = float(sigma0), mode, form, float(sigma_D)
        self.weight_decay, self.shift_init, self.anchor = weight_decay, shift_init, bool(anchor)
        self.fused_compatible = form == "anchored" and self.sigma_D == 0 and self.anchor
        self.theta0: dict[str, torch.Tensor] = {}
        self.D: dict[str, torch.Tensor] = {}
        self.shifted = False
        self._params: dict[str, nn.Parameter] = {}
        self._groups: list[tuple[dict, bool, list[tuple[nn.Parameter, torch.Tensor, torch.Tensor | None]]]] = []

    # ---------------------------------------------------------------- draws
    def _draw(self, model: nn.Module) -> None:
        sel = self.select(model)
        self._params = sel
        if self.theta0:  # restored from a checkpoint
            missing = set(sel) - set(self.theta0)
            if missing:
                raise ValueError(f"syre: checkpoint has no theta0 for {sorted(missing)}")
            self.theta0 = {n: t.to(sel[n]) for n, t in self.theta0.items() if n in sel}
            self.D = {n: t.to(sel[n]) for n, t in self.D.items() if n in sel}
            return
        shapes = {n: p.shape for n, p in sel.items()}
        eps = _member_draw(model, self.seeds, shapes, lambda g, s: torch.randn(*s, generator=g))
        if self.mode == "global":
            per_member = sum(math.prod(s[1:]) if hasattr(model, "members") else math.prod(s) for s in shapes.values())
            scale = {n: self.sigma0 / math.sqrt(per_member) for n in sel}
        elif self.mode == "fan_in_relative":
            scale = {n: self.sigma0 / math.sqrt(self._fan_in(model, n, shapes)) for n in sel}
        else:
            scale = {n: self.sigma0 for n in sel}
        self.theta0 = {n: (eps[n] * scale[n]).to(sel[n]) for n in sel}
        if self.sigma_D > 0:
            u = _member_draw(model, self.seeds, shapes, lambda g, s: torch.rand(*s, generator=g))
            self.D = {n: (1 - self.sigma_D + 2 * self.sigma_D * u[n]).to(sel[n]) for n in sel}

    @staticmethod
    def _fan_in(model: nn.Module, name: str, shapes: dict[str, torch.Size]) -> int:
        """Fan-in of a weight's member slice; a bias takes its weight's (module.weight or weights.<l>)."""
        shape = shapes[name][1:] if hasattr(model, "members") else shapes[name]
        if len(shape) >= 2:
            return _fan_in(shape)
        path, _, attr = name.rpartition(".")
        for partner in (f"{path}.weight" if path else "weight", name.replace("biases.", "weights.")):
            if partner != name and partner in shapes:
                ps = shapes[partner][1:] if hasattr(model, "members") else shapes[partner]
                return _fan_in(ps)
        return 1

    # ---------------------------------------------------------------- hooks
    def configure(self, model: nn.Module, optimizer: torch.optim.Optimizer) -> None:
        if not self._params:
            self._draw(model)
        if self.weight_decay is not None:
            for group in optimizer.param_groups:
                group["weight_decay"] = float(self.weight_decay)
        ids = {id(p): n for n, p in self._params.items()}
        self._groups = []
        for group in optimizer.param_groups:
            decoupled = _decoupled(optimizer, group)
            items = [(p, self.theta0[ids[id(p)]], self.D.get(ids[id(p)])) for p in group["params"] if id(p) in ids]
            if items:
                self._groups.append((group, decoupled, items))
        if all(float(g["weight_decay"]) == 0 for g, _, _ in self._groups):
            if self.shift_init or self.form == "offset":
                log.warning("syre: weight_decay is 0 in every param group, so the anchor term (gamma theta0) "
                            "vanishes; what remains is the initial perturbation: plain training from "
                            "theta_init + theta0 (set shift_init=false to remove it too)")
            else:
                log.warning("syre: weight_decay is 0 in every param group and shift_init=false, so syre changes "
                            "nothing: the anchor term gamma theta0 is 0")
        with torch.no_grad():
            if self.form == "anchored" and self.shift_init and not self.shifted:
                for n, p in self._params.items():
                    p.add_(self.theta0[n])
            elif self.form == "offset" and not self.shifted:
                for n in self._params:
                    owner, attr = _owner(model, n)
                    parametrize.register_parametrization(owner, attr, _Offset(self.theta0[n]), unsafe=True)
        self.shifted = True

    @torch.no_grad()
    def before_step(self, model: nn.Module, optimizer: torch.optim.Optimizer) -> None:
        if self.form == "offset" or not self.anchor:
            return
        for group, decoupled, items in self._groups:
            wd = float(group["weight_decay"])
            if wd == 0:
                continue
            if decoupled:
                if not self.D:
                    continue
                # the optimizer will do p <- p (1 - lr wd) - lr u; pre-image so that the result is
                # p - lr wd D (p - theta0) - lr u exactly (u does not depend on p)
                c = _lr(group) * wd
                for p, t0, D in items:
                    p.sub_(c * D * (p - t0)).div_(1 - c)
                continue
            if not self.D:  # the default: one fused multi-tensor add, no temporaries
                pairs = [(p.grad, t0) for p, t0, _ in items if p.grad is not None]
                if pairs:
                    grads, t0s = zip(*pairs)
                    torch._foreach_add_(list(grads), list(t0s), alpha=-wd)
                continue
            for p, t0, D in items:
                if p.grad is not None:  # optimizer adds wd p; want wd D (p - theta0)
                    p.grad.add_(wd * ((D - 1) * p - D * t0))

    @torch.no_grad()
    def after_step(self, model: nn.Module, optimizer: torch.optim.Optimizer) -> None:
        if self.form == "offset" or self.D or not self.anchor:
            return
        for group, decoupled, items in self._groups:
            wd = float(group["weight_decay"])
            if wd == 0 or not decoupled:
                continue
            torch._foreach_add_([p for p, _, _ in items], [t0 for _, t0, _ in items], alpha=_lr(group) * wd)

    def anchors(self, model: nn.Module) -> dict[str, torch.Tensor | None]:
        if not self.theta0:
            self._draw(model)
        return dict(self.theta0)

    def state_dict(self) -> dict:
        return {"kind": "static_bias", "form": self.form, "shifted": self.shifted,
                "theta0": {n: t.detach().cpu() for n, t in self.theta0.items()},
                "D": {n: t.detach().cpu() for n, t in self.D.items()}}

    def load_state_dict(self, state: dict) -> None:
        self.theta0 = {n: t.clone() for n, t in state.get("theta0", {}).items()}
        self.D = {n: t.clone() for n, t in state.get("D", {}).items()}
        self.shifted = bool(state.get("shifted", False)) and self.form == "anchored"
        self._params = {}


# ---------------------------------------------------------------------------------------------- W-fix
def _per_layer(key: str, value, kind, check) -> tuple | None:
    """A scalar, or a list with one entry per fixed weight (``syre.<key>``); None passes through."""
    if value is None:
        return None
    values = tuple(value) if isinstance(value, Sequence) and not isinstance(value, str) else (value,)
    for v in values:
        if not isinstance(v, kind) or isinstance(v, bool) or not check(v):
            raise ValueError(f"syre.{key}: {value!r} is not a valid value (each entry: {check.__doc__})")
    return values


def _fraction_ok(v) -> bool:
    """a number in [0, 1]"""
    return 0 <= v <= 1


def _count_ok(v) -> bool:
    """an integer >= 0"""
    return v >= 0


def _kappa_ok(v) -> bool:
    """a number >= 0"""
    return v >= 0


class WFix(SyreBase):
    """W-Asym of Lim et al. (the syre paper's W-fix): per output row a fraction (or count) of entries at
    random positions is fixed to kappa * N(0, 1). Their gradients are masked before the step and they
    are rewritten after it, so no optimizer (weight decay included) can move them. 1-D parameters are
    one row; biases are skipped unless include_bias.

    ``fraction``, ``count`` and ``kappa`` are each a scalar (every layer) or a list with one entry per fixed
    weight, in the model's parameter order: Lim et al.'s MLP recipe fixes (64, 64, 64, 256) entries per row
    with kappa (1, 1, 1/2, 1/4). ``kappa_is``: ``std`` (Lim et al.'s code: value = kappa * N(0, 1)) or
    ``variance`` (value = sqrt(kappa) * N(0, 1); the syre paper writes "a fixed variance kappa = 0.01")."""

    def __init__(
        self,
        fraction: float | Sequence[float] | None = 0.3,
        count: int | Sequence[int] | None = None,
        kappa: float | Sequence[float] = 0.01,
        kappa_is: str = "std",
        include_bias: bool = False,
        sigma0: float | None = None,
        seeds: Sequence[int] = (0,),
        seed: int | None = None,
        module_types: Sequence[str] | None = DEFAULT_TYPES,
        include: Sequence[str] = ("*",),
        exclude: Sequence[str] = (),
        include_norm: bool = False,
    ) -> None:
        super().__init__(seeds, seed, module_types, include, exclude, include_norm)
        del sigma0  # accepted and unused: a preset may set the static bias scale and still sweep syre=wfix
        if (fraction is None) == (count is None):
            raise ValueError("syre.fraction/syre.count: set exactly one of them (the other null)")
        if kappa_is not in ("std", "variance"):
            raise ValueError(f"syre.kappa_is: {kappa_is!r} is not std or variance")
        self.fraction = _per_layer("fraction", fraction, (int, float), _fraction_ok)
        self.count = _per_layer("count", count, int, _count_ok)
        self.kappa = _per_layer("kappa", kappa, (int, float), _kappa_ok)
        self.kappa_is, self.include_bias = kappa_is, include_bias
        self.masks: dict[str, torch.Tensor] = {}
        self.values: dict[str, torch.Tensor] = {}
        self._params: dict[str, nn.Parameter] = {}
        self._plist: list[nn.Parameter] = []
        self._keep: list[torch.Tensor] = []
        self._fixed: list[torch.Tensor] = []

    def _layer_settings(self, names: Sequence[str]) -> dict[str, tuple[int | float, bool, float]]:
        """name -> (count or fraction, is_count, std of the fixed values), per-layer lists checked."""
        per = self.count if self.count is not None else self.fraction
        key = "count" if self.count is not None else "fraction"
        for k, v in ((key, per), ("kappa", self.kappa)):
            if len(v) not in (1, len(names)):
                raise ValueError(f"syre.{k}: {len(v)} entries for {len(names)} fixed weights ({', '.join(names)}); "
                                 f"give one value or one per weight")
        out = {}
        for i, n in enumerate(names):
            kappa = float(self.kappa[i if len(self.kappa) > 1 else 0])
            std = kappa if self.kappa_is == "std" else math.sqrt(kappa)
            out[n] = (per[i if len(per) > 1 else 0], self.count is not None, std)
        return out

    @staticmethod
    def _draw_one(g: torch.Generator, shape: torch.Size, per: int | float, is_count: bool, std: float) -> torch.Tensor:
        rows = shape[0] if len(shape) >= 2 else 1
        cols = math.prod(shape) // max(rows, 1)
        k = max(0, min(int(per if is_count else round(per * cols)), cols))
        order = torch.argsort(torch.rand(rows, cols, generator=g), dim=1)
        mask = torch.zeros(rows, cols, dtype=torch.bool)
        mask.scatter_(1, order[:, :k], True)
        values = torch.randn(rows, cols, generator=g) * std
        return torch.stack([mask.float(), values]).reshape(2, *shape)

    def configure(self, model: nn.Module, optimizer: torch.optim.Optimizer) -> None:
        sel = self.select(model)
        if not self.include_bias:
            sel = {n: p for n, p in sel.items() if not (n.endswith("bias") or "biases." in n)}
        self._params = sel
        if not self.masks:
            settings = self._layer_settings(list(sel))
            shapes = {n: p.shape for n, p in sel.items()}
            both = _member_draw(model, self.seeds, shapes, lambda g, s, n: self._draw_one(g, s, *settings[n]), named=True)
            stacked = hasattr(model, "members")
            for n, t in both.items():
                m, v = (t[:, 0], t[:, 1]) if stacked else (t[0], t[1])
                self.masks[n], self.values[n] = m.bool().to(sel[n].device), v.to(sel[n])
        # p <- p * keep + values with values zero off the mask (exact: p * 0 + v = v, p * 1 + 0 = p), as lists
        # for fused multi-tensor ops; state: mask and keep (bool) and values, 1.5 copies of the fixed weights
        for n in self._params:
            self.values[n] = torch.where(self.masks[n], self.values[n], torch.zeros_like(self.values[n]))
        self._plist = list(self._params.values())
        self._keep = [~self.masks[n] for n in self._params]
        self._fixed = [self.values[n] for n in self._params]
        self._rewrite()

    @torch.no_grad()
    def _rewrite(self) -> None:
        if self._plist:
            torch._foreach_mul_(self._plist, self._keep)
            torch._foreach_add_(self._plist, self._fixed)

    @torch.no_grad()
    def before_step(self, model: nn.Module, optimizer: torch.optim.Optimizer) -> None:
        pairs = [(p.grad, k) for p, k in zip(self._plist, self._keep) if p.grad is not None]
        if pairs:
            grads, keeps = zip(*pairs)
            torch._foreach_mul_(list(grads), list(keeps))

    def after_step(self, model: nn.Module, optimizer: torch.optim.Optimizer) -> None:
        self._rewrite()

    def state_dict(self) -> dict:
        return {"kind": "wfix", "masks": dict(self.masks), "values": dict(self.values)}

    def load_state_dict(self, state: dict) -> None:
        self.masks = dict(state.get("masks", {}))
        self.values = dict(state.get("values", {}))


# ---------------------------------------------------------------------------------------------- sigma-Asym
class SigmaAsymActivation(nn.Module):
    """x * sigmoid(C x) with a fixed random C (Lim et al.'s sigma-Asym), C acting on the feature axis
    (the last axis; axis 1 for conv inputs of 3+ dims). C ~ scale * N(0, 1) (/ sqrt(channels) for conv,
    or always with normalize). Drawn lazily at the first call from its own seed, so the width need not
    be known; for ensemble inputs (K, n, W) with members=K, member k draws from seeds[k]."""

    def __init__(self, seeds: Sequence[int] = (0,), index: int = 0, scale: float = 1.0, normalize: bool = False,
                 members: int | None = None) -> None:
        super().__init__()
        self.seeds, self.index, self.scale, self.normalize, self.members = list(seeds), index, scale, normalize, members
        self.register_buffer("C", None)

    def _draw(self, width: int, conv: bool, ref: torch.Tensor) -> None:
        scale = self.scale / math.sqrt(width) if (conv or self.normalize) else self.scale

        def one(seed: int) -> torch.Tensor:
            g = generator(seed + 7919 * self.index, "syre")
            return torch.randn(width, width, generator=g) * scale

        C = torch.stack([one(s) for s in self.seeds]) if self.members else one(self.seeds[0])
        self.C = C.to(ref)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        conv = not self.members and x.dim() >= 3
        width = x.shape[1] if conv else x.shape[-1]
        if self.C is None or self.C.shape[-1] != width:
            self._draw(width, conv, x)
        if conv:
            cx = torch.einsum("oc,nc...->no...", self.C, x)
        elif self.members:
            cx = torch.bmm(x.reshape(x.shape[0], -1, width), self.C.transpose(1, 2)).reshape(x.shape)
        else:
            cx = x @ self.C.T
        return x * torch.sigmoid(cx)


ACTIVATION_MODULES = (nn.ReLU, nn.GELU, nn.Tanh, nn.SiLU, nn.LeakyReLU, nn.ELU, nn.Sigmoid)


def swap_activations(model: nn.Module, seeds: Sequence[int] = (0,), scale: float = 1.0,
                     normalize: bool = False) -> int:
    """Opt a model into sigma-Asym: every activation module (nn.ReLU, nn.GELU, ...) is replaced by a
    SigmaAsymActivation with its own C; symexp ensemble models with an ``act`` callable get one shared
    stacked activation. Returns how many activations were swapped."""
    swapped = 0
    if hasattr(model, "act") and not isinstance(model.act, nn.Module) and hasattr(model, "members"):
        model.act = SigmaAsymActivation(seeds, 0, scale, normalize, members=model.members)
        swapped += 1
    for module in list(model.modules()):
        for child_name, child in list(module.named_children()):
            if isinstance(child, ACTIVATION_MODULES):
                swapped += 1
                setattr(module, child_name, SigmaAsymActivation(seeds, swapped, scale, normalize))
    return swapped


class SigmaAsym(SyreBase):
    """sigma-Asym as a syre option: swaps the model's activations at configure (before any training
    step). Models opt in by using activation modules or, for ensemble models, an ``act`` attribute."""

    def __init__(self, scale: float = 1.0, normalize: bool = False, seeds: Sequence[int] = (0,),
                 seed: int | None = None) -> None:
        super().__init__(seeds, seed)
        self.scale, self.normalize = scale, normalize
        self.swapped: int | None = None

    def configure(self, model: nn.Module, optimizer: torch.optim.Optimizer) -> None:
        if self.swapped is None:
            self.swapped = swap_activations(model, self.seeds, self.scale, self.normalize)
            if self.swapped == 0:
                raise ValueError("syre=sigma_asym: the model has no activation module or `act` attribute to swap")
