"""FusedEngine (C kernel) against the reference AutogradEngine, and the fallback when unsupported."""

from __future__ import annotations

import copy

import pytest
import torch

from symexp.engines import AutogradEngine, build_engine
from symexp.engines import fused as fused_mod
from symexp.engines.fused import FusedEngine
from symexp.models.mlp import MLP
from symexp.models.rflr import RFLR

pytestmark = pytest.mark.usefixtures("one_torch_thread")


needs_kernel = pytest.mark.skipif(fused_mod.kernel() is None, reason="no C compiler: fused kernel unavailable")


def _data(K, S, d, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(K, S, d, generator=g) * 2 - 1
    y = torch.sin(3 * x[..., 0]) * torch.cos(2 * x[..., -1]) + 0.1 * torch.randn(K, S, generator=g)
    return x, y


def _pair(opt_cls, K=3, d=2, width=21, rank=4, depth=2, mlp=False, **opt_kw):
    if mlp:
        m_ref = MLP(d, width=width, depth=depth, seeds=range(K))
    else:
        m_ref = RFLR(d, width=width, rank=rank, depth=depth, seeds=range(K))
    m_fus = copy.deepcopy(m_ref)
    return (m_ref, opt_cls(m_ref.parameters(), **opt_kw)), (m_fus, opt_cls(m_fus.parameters(), **opt_kw))


def _rel(a, b):
    return ((a - b).norm() / b.norm().clamp_min(1e-30)).item()


def _assert_same(ref, fus, l_ref=None, l_fus=None, tol=1e-4):
    (m_ref, o_ref), (m_fus, o_fus) = ref, fus
    for p, q in zip(m_ref.parameters(), m_fus.parameters()):
        assert _rel(q, p) < tol
        s_ref, s_fus = o_ref.state[p], o_fus.state[q]
        assert float(s_ref["step"]) == float(s_fus["step"])
        assert isinstance(s_fus["step"], torch.Tensor) and s_fus["step"].dtype == s_ref["step"].dtype
        assert _rel(s_fus["exp_avg"], s_ref["exp_avg"]) < tol
        assert _rel(s_fus["exp_avg_sq"], s_ref["exp_avg_sq"]) < tol
    if l_ref is not None:
        assert l_fus.shape == l_ref.shape
        assert _rel(l_fus, l_ref) < tol


def _run_chunks(engine, x, y, chunk):
    return torch.cat([engine.run(x[:, s : s + chunk], y[:, s : s + chunk]) for s in range(0, x.shape[1], chunk)], 1)


@needs_kernel
@pytest.mark.parametrize(
    "opt_cls,wd",
    [(torch.optim.Adam, 0.0), (torch.optim.Adam, 1e-2), (torch.optim.AdamW, 0.0), (torch.optim.AdamW, 1e-1)],
)
def test_matches_autograd(opt_cls, wd):
    ref, fus = _pair(opt_cls, lr=3e-3, weight_decay=wd)
    x, y = _data(3, 300, 2)
    l_ref = AutogradEngine(*ref).run(x, y)
    engine = build_engine("auto", *fus)
    assert isinstance(engine, FusedEngine)
    torch.set_num_threads(2)  # the kernel splits members over torch.get_num_threads() threads
    l_fus = _run_chunks(engine, x, y, 128)  # uneven chunks: 128 + 128 + 44
    _assert_same(ref, fus, l_ref, l_fus)


@needs_kernel
@pytest.mark.parametrize(
    "shape", [dict(d=1, width=17, rank=5, depth=1), dict(d=3, width=32, rank=3, depth=3),
              dict(d=2, width=40, rank=20, depth=2), dict(d=1, width=16, rank=3, depth=16)]  # last: Figure 2's depth
)
def test_matches_autograd_other_shapes(shape):
    ref, fus = _pair(torch.optim.Adam, K=2, lr=1e-3, betas=(0.8, 0.99), eps=1e-6, **shape)
    x, y = _data(2, 200, shape["d"], seed=1)
    l_ref = AutogradEngine(*ref).run(x, y)
    l_fus = _run_chunks(FusedEngine(*fus), x, y, 200)
    _assert_same(ref, fus, l_ref, l_fus)


@needs_kernel
@pytest.mark.parametrize(
    "opt_cls,wd,shape",
    [(torch.optim.Adam, 0.0, dict(d=2, width=19, depth=2)), (torch.optim.AdamW, 0.1, dict(d=1, width=24, depth=3)),
     (torch.optim.Adam, 1e-2, dict(d=3, width=9, depth=1)), (torch.optim.Adam, 0.0, dict(d=1, width=8, depth=16))],
)
def test_mlp_matches_autograd(opt_cls, wd, shape):
    ref, fus = _pair(opt_cls, K=2, mlp=True, lr=2e-3, weight_decay=wd, **shape)
    x, y = _data(2, 200, shape["d"], seed=4)
    l_ref = AutogradEngine(*ref).run(x, y)
    engine = build_engine("auto", *fus)
    assert isinstance(engine, FusedEngine)
    l_fus = _run_chunks(engine, x, y, 64)
    _assert_same(ref, fus, l_ref, l_fus)


@needs_kernel
def test_portable_build_matches(monkeypatch):
    """The baseline (no AVX2) build used on other CPUs gives the same result."""
    monkeypatch.setenv("SYMEXP_FUSED_ISA", "baseline")
    if fused_mod.kernel() is None:
        pytest.skip(f"baseline build failed: {fused_mod.build_error()}")
    ref, fus = _pair(torch.optim.AdamW, lr=3e-3, weight_decay=1e-2)
    x, y = _data(3, 200, 2)
    l_ref = AutogradEngine(*ref).run(x, y)
    l_fus = FusedEngine(*fus).run(x, y)
    _assert_same(ref, fus, l_ref, l_fus)


@needs_kernel
@pytest.mark.parametrize("opt_cls", [torch.optim.Adam, torch.optim.AdamW])
def test_engine_switch_mid_run(opt_cls):
    """Optimizer state is the torch optimizer's: autograd -> fused -> autograd equals autograd throughout,
    also across a state_dict round trip and an lr change between chunks."""
    ref, fus = _pair(opt_cls, lr=2e-3, weight_decay=1e-2)
    x, y = _data(3, 300, 2, seed=2)
    AutogradEngine(*ref).run(x[:, :50], y[:, :50])
    AutogradEngine(*fus).run(x[:, :50], y[:, :50])
    for _, o in (ref, fus):
        o.param_groups[0]["lr"] = 1e-3
    AutogradEngine(*ref).run(x[:, 50:200], y[:, 50:200])
    FusedEngine(*fus).run(x[:, 50:200], y[:, 50:200])
    m_fus, o_fus = fus
    o_new = opt_cls(m_fus.parameters(), lr=1e-3, weight_decay=1e-2)
    o_new.load_state_dict(copy.deepcopy(o_fus.state_dict()))
    fus = (m_fus, o_new)
    AutogradEngine(*ref).run(x[:, 200:], y[:, 200:])
    AutogradEngine(*fus).run(x[:, 200:], y[:, 200:])
    _assert_same(ref, fus)


class AnchorHooks:
    """syre-style anchored decay (weight_decay * (p - theta0)) expressed as autograd-engine hooks."""

    fused_compatible = True

    def __init__(self, model, wd, lr, decoupled):
        self.theta0 = {n: p.detach().clone() + 0.05 for n, p in model.named_parameters()}
        self.theta0[next(iter(self.theta0))] = None  # a parameter without anchor decays towards 0
        self.wd, self.lr, self.decoupled = wd, lr, decoupled

    def anchors(self, model):
        return self.theta0

    def before_step(self, model, optimizer):
        if not self.decoupled:  # Adam adds wd * p to the gradient; make it wd * (p - anchor)
            for n, p in model.named_parameters():
                if self.theta0[n] is not None:
                    p.grad.add_(self.theta0[n], alpha=-self.wd)

    def after_step(self, model, optimizer):
        if self.decoupled:  # AdamW did p -= lr * wd * p; make it lr * wd * (p - anchor)
            with torch.no_grad():
                for n, p in model.named_parameters():
                    if self.theta0[n] is not None:
                        p.add_(self.theta0[n], alpha=self.lr * self.wd)


@needs_kernel
@pytest.mark.parametrize("opt_cls,mlp", [(torch.optim.Adam, False), (torch.optim.AdamW, False),
                                         (torch.optim.AdamW, True)])
def test_anchored_weight_decay(opt_cls, mlp):
    wd, lr = 0.1, 3e-3
    ref, fus = _pair(opt_cls, lr=lr, weight_decay=wd, mlp=mlp)
    decoupled = opt_cls is torch.optim.AdamW
    h_ref, h_fus = AnchorHooks(ref[0], wd, lr, decoupled), AnchorHooks(fus[0], wd, lr, decoupled)
    x, y = _data(3, 250, 2, seed=3)
    l_ref = AutogradEngine(*ref, hooks=h_ref).run(x, y)
    engine = build_engine("fused", *fus, hooks=h_fus)
    l_fus = engine.run(x, y)
    _assert_same(ref, fus, l_ref, l_fus)


def test_fallback_when_unsupported(monkeypatch):
    m = RFLR(2, width=16, rank=3, depth=2, seeds=range(2))
    cases = [
        (RFLR(2, width=16, rank=3, depth=2, activation="tanh", seeds=range(2)), torch.optim.Adam, None),
        (RFLR(2, width=16, rank=3, depth=2, mixer_bias=True, seeds=range(2)), torch.optim.Adam, None),
        (MLP(2, width=16, depth=2, activation="tanh", seeds=range(2)), torch.optim.Adam, None),
        (MLP(2, width=16, depth=2, out_dim=2, seeds=range(2)), torch.optim.Adam, None),
        (m, torch.optim.SGD, None),
        (m, torch.optim.Adam, object()),  # hooks that are not fused_compatible
    ]
    for model, opt_cls, hooks in cases:
        opt = opt_cls(model.parameters(), lr=1e-3)
        assert not FusedEngine.supports(model, opt, hooks)
        assert isinstance(build_engine("auto", model, opt, hooks), AutogradEngine)
        with pytest.raises(ValueError):
            build_engine("fused", model, opt, hooks)
    amsgrad = torch.optim.Adam(m.parameters(), lr=1e-3, amsgrad=True)
    assert isinstance(build_engine("auto", m, amsgrad), AutogradEngine)


def test_fallback_without_compiler(monkeypatch):
    """No C compiler (or a failing build): supports() is False and 'auto' picks the autograd engine."""
    monkeypatch.setattr(fused_mod, "_cache", {})
    monkeypatch.setattr(fused_mod, "_compiler", lambda: None)
    m = RFLR(2, width=16, rank=3, depth=2, seeds=range(2))
    opt = torch.optim.Adam(m.parameters(), lr=1e-3)
    assert not FusedEngine.supports(m, opt)
    assert isinstance(fused_mod.build_error(), RuntimeError)
    assert isinstance(build_engine("auto", m, opt), AutogradEngine)
    with pytest.raises(ValueError):
        build_engine("fused", m, opt)
