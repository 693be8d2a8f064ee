"""Layer walking: the weight layers of any nn.Module and what their units feed.

A *layer* is a Linear or Conv module. Its units are its output features (channels). When torch.fx can
trace the model, each layer's output is followed through per-unit operations (a norm with per-feature
affine parameters, one elementwise activation, dropout, pooling, flatten) to the next weight layer, its
*successor*, whose input columns are the units' outgoing weights. A path that branches or meets a
residual sum has no successor: its permutation is tied to other layers, so only incoming weights count.
"""

from __future__ import annotations

import logging
import operator
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

log = logging.getLogger("symexp.audit")

WEIGHT_TYPES = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
NORM_TYPES = (nn.modules.batchnorm._BatchNorm, nn.LayerNorm, nn.GroupNorm)
ACTIVATION_MODULES = {
    nn.ReLU: "relu", nn.ReLU6: "relu6", nn.LeakyReLU: "leaky_relu", nn.GELU: "gelu", nn.Tanh: "tanh",
    nn.SiLU: "silu", nn.Sigmoid: "sigmoid", nn.ELU: "elu", nn.Softplus: "softplus", nn.Mish: "mish",
}
ACTIVATION_FUNCTIONS = {
    F.relu: "relu", torch.relu: "relu", F.relu6: "relu6", F.leaky_relu: "leaky_relu", F.gelu: "gelu",
    torch.tanh: "tanh", F.tanh: "tanh", F.silu: "silu", torch.sigmoid: "sigmoid", F.sigmoid: "sigmoid",
    F.elu: "elu", F.softplus: "softplus", F.mish: "mish",
}
ACTIVATION_METHODS = {"relu": "relu", "tanh": "tanh", "sigmoid": "sigmoid"}
TRANSPARENT_MODULES = (nn.Identity, nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.Flatten,
                       nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d, nn.AvgPool1d, nn.AvgPool2d,
                       nn.AvgPool3d, nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AdaptiveMaxPool2d)
TRANSPARENT_CALLS = {F.dropout, torch.flatten, F.adaptive_avg_pool2d, F.avg_pool2d, F.max_pool2d}
TRANSPARENT_METHODS = {"flatten", "view", "reshape", "contiguous", "float", "squeeze"}
HOMOGENEOUS = {"relu", "leaky_relu", None}  # positive rescaling of a unit's in/out weights is a symmetry
ACTIVATION_FN = {
    "relu": F.relu, "relu6": F.relu6, "leaky_relu": F.leaky_relu, "gelu": F.gelu, "tanh": torch.tanh,
    "silu": F.silu, "sigmoid": torch.sigmoid, "elu": F.elu, "softplus": F.softplus, "mish": F.mish,
}


@dataclass
class Layer:
    name: str
    module: nn.Module
    kind: str                       # linear | conv
    units: int
    norm: str | None = None         # per-unit norm between the layer and its activation
    activation: str | None = None   # the elementwise activation on the path (None: none found)
    successor: str | None = None    # the weight layer reading the units (None: branch, residual or output)
    ends: str = "output"            # what the path met last: successor | branch | residual | output | other
    post_norm: bool = False         # a norm after the activation (rescaling no longer a symmetry)
    params: list[str] = field(default_factory=list)

    @property
    def rescaling_symmetric(self) -> bool:
        """Unit-wise positive rescaling (in * a, out / a) leaves the function unchanged."""
        return self.successor is not None and self.activation in HOMOGENEOUS and not self.post_norm


def in_width(module: nn.Module) -> int:
    return module.in_features if isinstance(module, nn.Linear) else module.in_channels


def out_width(module: nn.Module) -> int:
    return module.out_features if isinstance(module, nn.Linear) else module.out_channels


def _per_unit_norm(module: nn.Module, units: int) -> bool:
    if isinstance(module, nn.modules.batchnorm._BatchNorm):
        return module.num_features == units
    if isinstance(module, nn.LayerNorm):
        return tuple(module.normalized_shape) == (units,)
    return isinstance(module, nn.GroupNorm) and module.num_channels == units


def _activation_of(node, modules: dict[str, nn.Module]) -> str | None:
    if node.op == "call_module":
        return ACTIVATION_MODULES.get(type(modules[node.target]))
    if node.op == "call_function":
        return ACTIVATION_FUNCTIONS.get(node.target)
    if node.op == "call_method":
        return ACTIVATION_METHODS.get(node.target)
    return None


def _transparent(node, modules: dict[str, nn.Module]) -> bool:
    if node.op == "call_module":
        return isinstance(modules[node.target], TRANSPARENT_MODULES)
    if node.op == "call_function":
        return node.target in TRANSPARENT_CALLS
    return node.op == "call_method" and node.target in TRANSPARENT_METHODS


def _follow(layer: Layer, node, modules: dict[str, nn.Module]) -> None:
    """Walk the single-user chain after the layer's node; fill norm, activation, successor, ends."""
    cur = node
    while True:
        users = list(cur.users)
        if len(users) != 1:
            layer.ends = "output" if not users else "branch"
            return
        nxt = users[0]
        if nxt.op == "output":
            layer.ends = "output"
            return
        if nxt.op == "call_module" and isinstance(modules[nxt.target], WEIGHT_TYPES):
            mod = modules[nxt.target]
            ok = in_width(mod) == layer.units and getattr(mod, "groups", 1) == 1 and nxt.args[0] is cur
            layer.successor, layer.ends = (nxt.target, "successor") if ok else (None, "other")
            return
        if nxt.op == "call_module" and isinstance(modules[nxt.target], NORM_TYPES):
            if layer.activation is None and layer.norm is None and _per_unit_norm(modules[nxt.target], layer.units):
                layer.norm = nxt.target
            else:
                layer.post_norm = True
        elif (act := _activation_of(nxt, modules)) is not None:
            if layer.activation is not None:
                layer.ends = "other"
                return
            layer.activation = act
        elif nxt.op == "call_function" and nxt.target in (operator.add, operator.iadd, torch.add):
            layer.ends = "residual"
            return
        elif not _transparent(nxt, modules):
            layer.ends = "other"
            return
        cur = nxt


def walk(model: nn.Module) -> tuple[list[Layer], str | None]:
    """The model's weight layers in registration order, with their paths when fx can trace the model;
    the second value says why the paths are unknown (None when traced)."""
    layers = []
    for name, module in model.named_modules():
        if isinstance(module, WEIGHT_TYPES):
            kind = "linear" if isinstance(module, nn.Linear) else "conv"
            params = [f"{name}.{p}" for p, _ in module.named_parameters(recurse=False)]
            layers.append(Layer(name, module, kind, out_width(module), params=params))
    try:
        from torch.fx import symbolic_trace

        graph = symbolic_trace(model).graph
    except Exception as exc:  # any trace failure leaves only the weights themselves
        reason = f"torch.fx could not trace the model ({type(exc).__name__}); outgoing weights and activations unknown"
        log.warning("symexp audit: %s", reason)
        return layers, reason
    modules = dict(model.named_modules())
    by_name = {layer.name: layer for layer in layers}
    seen = set()
    for node in graph.nodes:
        if node.op == "call_module" and node.target in by_name:
            if node.target in seen:  # a module called twice: its units feed two paths
                by_name[node.target].successor, by_name[node.target].ends = None, "branch"
                continue
            seen.add(node.target)
            _follow(by_name[node.target], node, modules)
    return layers, None


def attention_projections(model: nn.Module) -> list[dict]:
    """Query/key/value/output weights of attention modules: nn.MultiheadAttention and modules holding a
    fused ``qkv`` Linear next to an output ``proj``/``out_proj`` Linear (symexp's and timm's ViT)."""
    found = []
    for name, module in model.named_modules():
        if isinstance(module, nn.MultiheadAttention) and module.in_proj_weight is not None:
            q, k, v = module.in_proj_weight.detach().chunk(3)
            found.append({"name": name, "heads": module.num_heads, "q": q, "k": k, "v": v,
                          "o": module.out_proj.weight.detach()})
            continue
        qkv = getattr(module, "qkv", None)
        proj = getattr(module, "proj", None) or getattr(module, "out_proj", None)
        if isinstance(qkv, nn.Linear) and isinstance(proj, nn.Linear) and qkv.out_features % 3 == 0:
            heads = int(getattr(module, "heads", getattr(module, "num_heads", 1)))
            q, k, v = qkv.weight.detach().chunk(3)
            found.append({"name": name, "heads": heads, "q": q, "k": k, "v": v, "o": proj.weight.detach()})
    return found
