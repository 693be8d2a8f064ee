"""GraphEngine (the GPU path): its step function run eagerly on CPU against AutogradEngine, the engine
choice, and (marker ``gpu``) the CUDA-graph capture against the eager step on the same GPU."""

from __future__ import annotations

import copy

import pytest
import torch

from symexp.engines import AutogradEngine, build_engine
from symexp.engines.graph import GraphEngine
from symexp.models.mlp import MLP
from symexp.models.rflr import RFLR
from symexp.syre import StaticBias, WFix

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _data(K, S, d, seed=0, device="cpu"):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(K, S, d, generator=g) * 2 - 1
    y = torch.sin(3 * x[..., 0]) * torch.cos(2 * x[..., -1]) + 0.1 * torch.randn(K, S, generator=g)
    return x.to(device), y.to(device)


def _model(kind, K, d):
    if kind == "mlp":
        return MLP(d, width=13, depth=2, seeds=range(K))
    return RFLR(d, width=24, rank=4, depth=2, seeds=range(K))


def _pair(kind, opt_cls, K=3, d=2, syre=False, device="cpu", **opt_kw):
    """Two identical (model, optimizer, hooks) triples; syre = the anchored static bias."""
    out = []
    base = _model(kind, K, d)
    for _ in range(2):
        m = copy.deepcopy(base).to(device)
        opt = opt_cls(m.parameters(), **opt_kw)
        hooks = None
        if syre:
            hooks = StaticBias(sigma0=0.05, seeds=list(range(K)))
            hooks.configure(m, opt)
        out.append((m, opt, hooks))
    return out


def _rel(a, b):
    return ((a - b).norm() / b.norm().clamp_min(1e-30)).item()


def _assert_same(ref, new, tol=1e-5):
    (m_ref, o_ref, _), (m_new, o_new, _) = ref, new
    for p, q in zip(m_ref.parameters(), m_new.parameters()):
        assert _rel(q, p) < tol
        s_ref, s_new = o_ref.state[p], o_new.state[q]
        assert float(s_ref["step"]) == float(s_new["step"])
        for name in s_ref:
            if name != "step":
                assert _rel(s_new[name], s_ref[name]) < tol, name


def _chunks(engine, x, y, chunk):
    return torch.cat([engine.run(x[:, s : s + chunk], y[:, s : s + chunk]) for s in range(0, x.shape[1], chunk)], 1)


@pytest.mark.parametrize(
    "kind,opt_cls,wd,syre",
    [("rflr", torch.optim.Adam, 0.0, False), ("rflr", torch.optim.AdamW, 1e-2, False),
     ("rflr", torch.optim.Adam, 1e-2, True), ("rflr", torch.optim.AdamW, 0.1, True),
     ("mlp", torch.optim.Adam, 1e-2, True), ("mlp", torch.optim.AdamW, 0.1, False)],
)
def test_eager_step_matches_autograd(kind, opt_cls, wd, syre):
    """200 steps, K=3: parameters, both moments, step counts and losses equal the reference engine.
    With syre the reference calls StaticBias's before/after_step; the graph engine applies the anchored
    decay itself with its lr tensor."""
    ref, new = _pair(kind, opt_cls, syre=syre, lr=3e-3, weight_decay=wd)
    x, y = _data(3, 200, 2)
    l_ref = AutogradEngine(*ref).run(x, y)
    engine = build_engine("graph", *new)
    assert isinstance(engine, GraphEngine) and not engine.capture
    l_new = _chunks(engine, x, y, 64)  # uneven chunks: 64 x 3 + 8
    _assert_same(ref, new)
    assert _rel(l_new, l_ref) < 1e-5
    if syre:  # the decay really acted: without the anchor the parameters differ
        plain = _pair(kind, opt_cls, syre=False, lr=3e-3, weight_decay=wd)[0]
        AutogradEngine(*plain).run(x, y)
        assert _rel(next(plain[0].parameters()), next(new[0].parameters())) > 1e-3


def test_other_capturable_optimizer_and_group_flags_restored():
    """Any capturable torch optimizer works; after a call the param groups hold what they held before."""
    ref, new = _pair("rflr", torch.optim.NAdam, K=2, lr=2e-3, weight_decay=1e-3)
    x, y = _data(2, 50, 2, seed=3)
    before = [dict((k, v) for k, v in g.items() if k != "params") for g in new[1].param_groups]
    l_ref = AutogradEngine(*ref).run(x, y)
    l_new = GraphEngine(*new).run(x, y)
    _assert_same(ref, new)
    assert _rel(l_new, l_ref) < 1e-5
    after = [dict((k, v) for k, v in g.items() if k != "params") for g in new[1].param_groups]
    assert after == before and isinstance(after[0]["lr"], float)


def test_scheduler_rate_takes_effect_at_next_call():
    """A scheduler's new lr (a float in the group) reaches the step at the next call, as in AutogradEngine."""
    ref, new = _pair("rflr", torch.optim.Adam, lr=1e-2)
    scheds = [torch.optim.lr_scheduler.StepLR(t[1], step_size=1, gamma=0.3) for t in (ref, new)]
    x, y = _data(3, 90, 2, seed=5)
    eng_ref, eng_new = AutogradEngine(*ref), GraphEngine(*new)
    for s in range(0, 90, 30):
        l_ref, l_new = eng_ref.run(x[:, s : s + 30], y[:, s : s + 30]), eng_new.run(x[:, s : s + 30], y[:, s : s + 30])
        assert _rel(l_new, l_ref) < 1e-5
        for sched in scheds:
            sched.step()
    _assert_same(ref, new)
    assert new[1].param_groups[0]["lr"] == pytest.approx(1e-2 * 0.3**3)


def test_auto_and_refusals():
    """auto keeps the CPU engines on CPU; graph refuses optimizers without a capturable form and per-step
    syre hooks with a message naming task.engine; auto falls back to autograd for them."""
    m = _model("rflr", 2, 2)
    assert not isinstance(build_engine("auto", m, torch.optim.Adam(m.parameters())), GraphEngine)
    sgd = torch.optim.SGD(m.parameters(), lr=0.1)
    with pytest.raises(ValueError, match="task.engine=graph: SGD has no capturable form"):
        build_engine("graph", m, sgd)
    opt = torch.optim.Adam(m.parameters(), weight_decay=1e-3)
    wfix = WFix(seeds=[0, 1])
    wfix.configure(m, opt)
    with pytest.raises(ValueError, match="task.engine=graph: syre WFix"):
        build_engine("graph", m, opt, wfix)
    with pytest.raises(ValueError, match="task.engine: unknown engine 'turbo'"):
        build_engine("turbo", m, opt)


# ------------------------------------------------------------------------------------------------ GPU
gpu = pytest.mark.gpu
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@gpu
@needs_cuda
@pytest.mark.parametrize("kind,opt_cls,syre", [("rflr", torch.optim.Adam, False), ("rflr", torch.optim.AdamW, True),
                                               ("mlp", torch.optim.Adam, True), ("rflr", torch.optim.RAdam, False)])
def test_capture_matches_eager_and_autograd_on_cuda(kind, opt_cls, syre):
    """The replayed graphs give what the eager step and AutogradEngine give on the same GPU, with a
    StepLR schedule (lr tensor refreshed), uneven chunks (a second graph for the remainder) and an
    optimizer state_dict round trip in the middle (new state tensors: recapture)."""
    dev = "cuda"
    (m_ref, o_ref, h_ref), (m_new, o_new, h_new) = _pair(kind, opt_cls, K=4, syre=syre, device=dev, lr=3e-3,
                                                         weight_decay=1e-2)
    s_ref = torch.optim.lr_scheduler.StepLR(o_ref, 1, 0.5)
    s_new = torch.optim.lr_scheduler.StepLR(o_new, 1, 0.5)
    x, y = _data(4, 200, 2, device=dev)
    eng_ref = AutogradEngine(m_ref, o_ref, h_ref)
    eng = build_engine("auto", m_new, o_new, h_new)
    assert isinstance(eng, GraphEngine) and eng.capture
    eng.graph_steps = 16
    l_ref, l_new = [], []
    for i, s in enumerate(range(0, 200, 40)):
        l_ref.append(eng_ref.run(x[:, s : s + 40], y[:, s : s + 40]))
        l_new.append(eng.run(x[:, s : s + 40], y[:, s : s + 40]))  # 16 + 16 + 8
        s_ref.step()
        s_new.step()
        if i == 2:
            o_new.load_state_dict(copy.deepcopy(o_new.state_dict()))
    assert eng.captures >= 4  # 16- and 8-step graphs, recorded again after the state_dict load
    _assert_same((m_ref, o_ref, h_ref), (m_new, o_new, h_new), tol=1e-4)
    assert _rel(torch.cat(l_new, 1), torch.cat(l_ref, 1)) < 1e-4
    assert isinstance(o_new.param_groups[0]["lr"], float) and not o_new.param_groups[0]["capturable"]


def test_auto_falls_back_to_autograd_when_capture_fails(monkeypatch, caplog):
    """A step that cannot be captured: task.engine=auto logs it and finishes the chunk (and the run) with the
    autograd engine, losing no step; task.engine=graph raises. Simulated on CPU by a failing _capture."""
    from symexp.engines import graph as graph_mod

    def fail(self, g, x, y):
        raise graph_mod.CaptureError("GraphEngine: capturing the step of RFLR with Adam failed (simulated)")

    monkeypatch.setattr(GraphEngine, "_capture", fail)
    monkeypatch.setattr(GraphEngine, "_eager_on_side_stream", lambda self, x, y, out: self.steps(x, y, out))
    ref, new = _pair("rflr", torch.optim.Adam, lr=3e-3)
    x, y = _data(3, 100, 2, seed=7)
    l_ref = AutogradEngine(*ref).run(x, y)
    eng = GraphEngine(*new, graph_steps=16, fallback=True)
    eng.capture = True  # pretend: the segment loop runs, its first segment eagerly, the second fails to capture
    with caplog.at_level("WARNING", logger="symexp.engines.graph"):
        l_new = _chunks(eng, x, y, 50)
    assert "continues with the autograd engine" in caplog.text and isinstance(eng._autograd, AutogradEngine)
    _assert_same(ref, new)
    assert _rel(l_new, l_ref) < 1e-5
    strict = GraphEngine(*_pair("rflr", torch.optim.Adam, lr=3e-3)[1], graph_steps=16)
    strict.capture = True
    with pytest.raises(graph_mod.CaptureError, match="simulated"):
        strict.run(x[:, :50], y[:, :50])


@pytest.mark.slow
def test_compiled_step_matches_autograd():
    """task.engine=graph_compiled: forward + loss through torch.compile (inductor's CPU backend here, about
    a minute of compiling on a small machine), two chunks of different length, anchored syre."""
    ref, new = _pair("rflr", torch.optim.AdamW, K=2, syre=True, lr=3e-3, weight_decay=0.1)
    x, y = _data(2, 30, 2, seed=9)
    l_ref = AutogradEngine(*ref).run(x, y)
    engine = build_engine("graph_compiled", *new)
    assert isinstance(engine, GraphEngine) and engine.compiled
    l_new = _chunks(engine, x, y, 20)  # 20 + 10
    _assert_same(ref, new)
    assert _rel(l_new, l_ref) < 1e-5


@gpu
@needs_cuda
def test_compiled_capture_on_cuda():
    """graph_compiled: Triton kernels compiled in the eager warm-up segment, then recorded and replayed."""
    (m_ref, o_ref, h_ref), (m_new, o_new, h_new) = _pair("rflr", torch.optim.Adam, K=4, syre=True, device="cuda",
                                                         lr=3e-3, weight_decay=1e-2)
    x, y = _data(4, 120, 2, device="cuda")
    l_ref = AutogradEngine(m_ref, o_ref, h_ref).run(x, y)
    eng = build_engine("graph_compiled", m_new, o_new, h_new)
    eng.graph_steps = 16
    l_new = _chunks(eng, x, y, 40)
    assert eng.captures == 2 and eng._autograd is None
    _assert_same((m_ref, o_ref, h_ref), (m_new, o_new, h_new), tol=1e-4)
    assert _rel(l_new, l_ref) < 1e-4
