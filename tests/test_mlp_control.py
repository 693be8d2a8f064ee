"""Seed 000's matched MLP control: which features are its partials, per-block activity and pooled
defects, and the report's separation verdict computed against the paper-matching reading."""

from __future__ import annotations

import pytest
import torch

from symexp.models.mlp import MLP
from symexp.report.tables import separation, table1
from symexp.symmetry.metrics import PartialDefect
from tests.conftest import compose_cfg


def _mlp(**kw) -> MLP:
    return MLP(in_dim=2, width=16, seeds=[0, 1], **kw)


def test_mlp_partials_pre_and_post_activation():
    x = torch.randn(2, 7, 2)
    pre = _mlp(depth=2, partials="pre")
    post = _mlp(depth=2, partials="post")
    f_pre, p_pre = pre(x, return_partials=True)
    f_post, p_post = post(x, return_partials=True)
    assert torch.equal(f_pre, f_post), "the reading never changes the function"
    assert len(p_pre) == len(p_post) == 2
    h1 = torch.einsum("kod,knd->kno", pre.weights[0], x) + pre.biases[0][:, None]
    assert torch.allclose(p_pre[0], h1, atol=1e-6)
    assert torch.allclose(p_post[0], torch.relu(h1), atol=1e-6)
    assert (p_pre[1] < 0).any() and (p_post[1] >= 0).all()


def test_mlp_partial_layers_select_blocks_and_name_them():
    m = _mlp(depth=3, partials="pre", partial_layers=[2, 3])
    _, parts = m(torch.randn(2, 5, 2), return_partials=True)
    assert len(parts) == 2 and m.partial_blocks == [2, 3]
    with pytest.raises(ValueError, match="model.partial_layers"):
        _mlp(depth=2, partial_layers=[3])
    with pytest.raises(ValueError, match="model.partials"):
        _mlp(depth=2, partials="middle")


def test_mlp_config_is_the_paper_matching_control():
    cfg = compose_cfg(["experiment=mlp_table1_quad2d"])
    assert cfg.model.depth == 2 and cfg.model.partials == "pre"
    cfg = compose_cfg(["experiment=mlp_table1_quad2d", "model.partials=post", "model.depth=3"])
    assert cfg.model.partials == "post" and cfg.model.depth == 3


class _Task:
    """The attributes PartialDefect reads from a task."""

    def __init__(self, model, grid):
        self.model, self.members, self.device = model, model.members, torch.device("cpu")
        self.datamodule = type("DM", (), {"grid": grid, "transform_names": ["neg"], "dim": grid.shape[1]})()


def test_partial_defect_reports_active_counts_and_pooled_defect_per_block():
    from symexp.data.sampling import symmetric_grid

    m = _mlp(depth=2, partials="pre", partial_layers=[1, 2])
    out = PartialDefect()(_Task(m, symmetric_grid(2, 11)), {})
    for l in (1, 2):
        assert out[f"sym/active_partials/block{l}"].shape == (2,)
        assert (out[f"sym/active_partials/block{l}"] > 0).all()
        assert (out[f"sym/partial_defect_pooled/block{l}"] > 0).all()
    assert torch.equal(out["sym/partial_defect_pooled"], out["sym/partial_defect_pooled/block2"])
    # pre-activation first-layer features are affine: p(x) - p(-x) = 2 W x, p(x)^2 includes b^2
    w, b = m.weights[0], m.biases[0]
    grid = symmetric_grid(2, 11)
    h = torch.einsum("kod,nd->kno", w, grid) + b[:, None]
    pooled = (2 * (h - b[:, None])).square().sum((1, 2)) / h.square().sum((1, 2))
    assert torch.allclose(out["sym/partial_defect_pooled/block1"], pooled, rtol=1e-4)


def test_partial_blocks_are_named_by_the_layer_they_read():
    from symexp.data.sampling import symmetric_grid

    m = _mlp(depth=3, partials="pre", partial_layers=[3])
    out = PartialDefect()(_Task(m, symmetric_grid(2, 11)), {})
    assert "sym/partial_defect/block3" in out and "sym/partial_defect/block1" not in out


def _row(model, data, pd, rank=None, depth=3, partials=None, seed=0, sampling="uniform", mse=1e-5):
    return {"status": "ok", "model": model, "data": data, "rank": rank, "depth": depth, "partials": partials,
            "sampling": sampling, "seed": seed, "test/mse": mse, "sym/partial_defect": pd,
            "sym/partial_defect_pooled": pd * 2, "sym/active_partials": 8.0,
            "sym/partial_defect/block1": pd, "sym/active_partials/block1": 6.0,
            "sym/partial_defect_pooled/block1": pd * 2}


def test_separation_is_against_the_paper_matching_control_with_its_factor():
    rows = [_row("rflr", "quad2d", 0.006, rank=8, seed=s) for s in range(3)]
    rows += [_row("mlp", "quad2d", 0.30, depth=2, partials="pre", seed=s) for s in range(3)]
    rows += [_row("mlp", "quad2d", 0.001, depth=3, partials="post", seed=s) for s in range(3)]
    text = "\n".join(separation(rows))
    line = next(ln for ln in text.splitlines() if ln.startswith("- quad2d (uniform"))
    assert "separation holds" in line and "50x" in line
    assert "2 hidden layers, pre-activation" in line
    assert "MLP-reading sensitivity" in text and "| 3 hidden layers, post-activation | 3 |" in text
    assert "active partials" in text and "pooled" in text


def test_table1_sorts_ranks_numerically_and_brackets_only_rows_with_paper_values():
    rows = [{**_row("rflr", "quad2d", 0.01, rank=r), "width": 512} for r in (16, 64, 8, 128)]
    rows += [{**_row("rflr", "gauss3d", 0.01, rank=8), "width": 512}]
    lines = table1(rows)
    body = [ln for ln in lines if ln.startswith("| quad2d | rflr")]
    assert [ln.split(" | ")[2] for ln in body] == ["8", "16", "64", "128"]
    assert "[0.000998]" in body[0] and "Paper values" in lines[2]
    assert "[" not in next(ln for ln in lines if ln.startswith("| gauss3d"))
    only_unpapered = table1([_row("rflr", "gauss3d", 0.01, rank=8)])
    assert "Paper values" not in only_unpapered[2]


@pytest.mark.parametrize("variant, depth, partials", [("mlp", 2, "pre"), ("mlp_post", 2, "post"), ("mlp_h3_post", 3, "post")])
def test_positive_bias_sweep_variants_are_the_stated_mlp_readings(variant, depth, partials):
    from tests.conftest import ROOT

    cfg = compose_cfg([f"+variant={variant}", "data=gauss2d"], config_dir=ROOT / "sweeps", config_name="rflr_positive_bias")
    assert (cfg.model.depth, cfg.model.partials, cfg.model.width) == (depth, partials, 256)
    rf = compose_cfg(["+variant=rflr_r128", "data=gauss2d"], config_dir=ROOT / "sweeps", config_name="rflr_positive_bias")
    assert (rf.model.depth, rf.model.rank) == (3, 128)


def test_rflr_hidden_scale_scales_only_the_later_frozen_features():
    from symexp.models.rflr import RFLR

    base, scaled = RFLR(2, width=16, rank=4, depth=2), RFLR(2, width=16, rank=4, depth=2, hidden_scale=2.0)
    assert torch.equal(base.A0, scaled.A0)
    assert torch.allclose(scaled.A1, 2 * base.A1) and torch.allclose(scaled.A2, 2 * base.A2)
    assert torch.equal(base.b1, scaled.b1) and torch.equal(base.mixers[1], scaled.mixers[1])
