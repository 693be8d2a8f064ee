"""symexp audit on hand-built networks with known answers, the target forms, alignment and the CLI."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from torch import nn

from symexp.audit import AuditOptions, audit_model
from symexp.audit.align import permute, weight_matching
from symexp.audit.compare import compare_models
from symexp.audit.targets import AuditError, load_target
from symexp.discovery.mirror import constraint_norm, rescaling_mirror
from tests.conftest import ROOT, compose_cfg


def _mlp(widths=(5, 8, 3), seed=0, bias=True) -> nn.Sequential:
    torch.manual_seed(seed)
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
        layers.append(nn.Linear(a, b, bias=bias))
        if i < len(widths) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def _row(audit, name):
    return next(r for r in audit.report["layers"] if r["name"] == name)


@torch.no_grad()
def test_exact_duplicates_found_and_a_perturbation_above_tolerance_separates_them():
    net = _mlp()
    for j in (1, 2, 3):  # units 1-3 copy unit 0: incoming, bias and outgoing weights
        net[0].weight[j], net[0].bias[j] = net[0].weight[0], net[0].bias[0]
        net[2].weight[:, j] = net[2].weight[:, 0]
    perm = _row(audit_model(net), "0")["permutation"]
    assert (perm["groups"], perm["collapsed_units"], perm["group_members"]) == (1, 3, [[0, 1, 2, 3]])
    net[0].weight[3] *= 1.01  # 1% apart: 10x the default tolerance 1e-3
    perm = _row(audit_model(net), "0")["permutation"]
    assert (perm["groups"], perm["collapsed_units"], perm["group_members"]) == (1, 2, [[0, 1, 2]])
    net[2].weight[:, 2] += 0.5  # same incoming weights but different outgoing ones: not a symmetric state
    assert _row(audit_model(net), "0")["permutation"]["group_members"] == [[0, 1]]


@torch.no_grad()
def test_dead_units_from_negative_biases_and_zero_incoming_weights():
    net = _mlp()
    net[0].bias[:3] = -1e3  # never active on standard-normal inputs
    net[0].weight[5], net[0].bias[5] = 0.0, 0.0  # zero incoming weights: dead and visible without data
    x = torch.randn(400, 5)
    row = _row(audit_model(net, x), "0")
    assert row["data"]["dead_units"] == 4
    assert row["units_info"]["zero_incoming"] == 1
    assert _row(audit_model(net), "0")["units_info"]["zero_incoming"] == 1
    assert "50% dead units on the data" in audit_model(net, x).report["verdict"]


@torch.no_grad()
def test_rank_k_weight_is_reported_rank_k():
    net = _mlp((6, 8, 3))
    torch.manual_seed(1)
    net[0].weight.copy_(torch.randn(8, 2) @ torch.randn(2, 6))
    w = _row(audit_model(net), "0")["weight"]
    assert w["numerical_rank"] == 2 and w["max_rank"] == 6
    assert 1.0 < w["effective_rank"] <= 2.0 and w["approximate_rank"] <= 2


@torch.no_grad()
def test_balanced_pair_has_zero_distance_and_a_rescaled_pair_does_not():
    net = _mlp((4, 6, 2))
    x = torch.randn(64, 4)
    inc = torch.cat([net[0].weight, net[0].bias[:, None]], 1).norm(dim=1)
    out = net[2].weight.norm(dim=0)
    a = (out / inc).sqrt()  # unit j scaled by a_j in, 1 / a_j out: |in| = |out|
    net[0].weight.mul_(a[:, None]), net[0].bias.mul_(a), net[2].weight.div_(a[None, :])
    before = net(x)
    resc = _row(audit_model(net), "0")["rescaling"]
    assert resc["balance_distance"] < 1e-12 and resc["median_abs_imbalance"] < 1e-6
    for j in (0, 1):  # same function, unbalanced
        net[0].weight[j] *= 30
        net[0].bias[j] *= 30
        net[2].weight[:, j] /= 30
    torch.testing.assert_close(net(x), before)
    audit = audit_model(net)
    assert _row(audit, "0")["rescaling"]["balance_distance"] > 0.5
    assert "0: rescaling imbalance" in audit.report["verdict"]


@torch.no_grad()
def test_rescaling_mirror_count_agrees_with_the_mirror_constraint():
    net = _mlp((3, 5, 2), bias=False)
    net[0].weight[2], net[2].weight[:, 2] = 0.0, 0.0  # unit 2 on its rescaling mirror: O^T theta = 0
    theta = torch.cat([net[0].weight.flatten(), net[2].weight.flatten()])
    layout = [(5, 3), (2, 5)]
    norms = [float(constraint_norm(theta, rescaling_mirror(layout, 0, j))) for j in range(5)]
    assert norms[2] == 0 and min(norms[:2] + norms[3:]) > 0
    assert _row(audit_model(net), "0")["units_info"]["rescaling_mirror"] == 1


@torch.no_grad()
def test_alignment_recovers_a_known_permutation_and_removes_the_barrier():
    a = _mlp((6, 10, 12, 4), seed=3)
    b = _mlp((6, 10, 12, 4), seed=3)
    p1, p2 = torch.randperm(10, generator=torch.Generator().manual_seed(1)), torch.randperm(12, generator=torch.Generator().manual_seed(2))
    b[0].weight.copy_(a[0].weight[p1]), b[0].bias.copy_(a[0].bias[p1])
    b[2].weight.copy_(a[2].weight[p2][:, p1]), b[2].bias.copy_(a[2].bias[p2])
    b[4].weight.copy_(a[4].weight[:, p2])
    perms = weight_matching(a, b)
    inv1, inv2 = torch.argsort(p1), torch.argsort(p2)
    assert torch.equal(perms["0"], inv1) and torch.equal(perms["2"], inv2)
    aligned = permute(b, perms)
    for k, v in a.state_dict().items():
        assert torch.equal(aligned.state_dict()[k], v), k
    x, y = torch.randn(200, 6), torch.randint(0, 4, (200,))
    report = compare_models(audit_model(a), audit_model(b), a, b, x, y, points=5)
    assert report["lmc"]["after"]["loss_barrier"] == pytest.approx(0.0, abs=1e-6)
    assert report["lmc"]["before"]["loss_barrier"] > 1e-3
    assert all(v["cosine_after"] == pytest.approx(1.0) for v in report["alignment"].values())


def test_unknown_option_fails_naming_the_key():
    with pytest.raises(ValueError, match=r"audit\.dead_frac"):
        AuditOptions.from_mapping({"dead_frac": 0.2})


def test_missing_package_and_bad_callable_give_one_line(capsys):
    from symexp.audit.__main__ import main

    assert main(["nonexistent_pkg_for_symexp.models:resnet18"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == ("symexp audit: nonexistent_pkg_for_symexp.models:resnet18: needs the package "
                   "'nonexistent_pkg_for_symexp', which is not installed (pip install nonexistent_pkg_for_symexp)")
    with pytest.raises(AuditError, match="has no attribute"):
        load_target("symexp.models.resnet18:NoSuchNet")


@pytest.mark.parametrize("kind", ["missing", "garbage"])
def test_unloadable_target_gives_one_clear_line(tmp_path, kind):
    target = tmp_path / "nope.ckpt"
    if kind == "garbage":
        target.write_bytes(b"not a checkpoint at all")
    proc = subprocess.run([sys.executable, "-m", "symexp.audit", str(target)], capture_output=True, text=True,
                          cwd=ROOT, timeout=120)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("symexp audit: ") and str(target) in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr


def _strip(report: dict) -> dict:
    return {k: v for k, v in report.items() if k not in ("target", "timing", "verdict", "notes", "figures", "env")}


def test_job_folder_checkpoint_and_state_dict_give_the_same_report(tmp_path, tmp_outputs):
    from symexp.audit.__main__ import run_audit
    from symexp.run import run

    cfg = compose_cfg(["experiment=syre_fcn", "budget=smoke", "task.epochs=1", "model.width=16", "model.depth=2",
                       "data.n_train=256", "+audit=on", "audit.n_samples=100", *tmp_outputs])
    run(cfg)
    job = next((tmp_path / "runs" / "syre_fcn").iterdir())
    assert (job / "audit" / "report.md").is_file() and (job / "audit" / "figures" / "rank_profile.png").is_file()
    opts = AuditOptions(n_samples=100)
    from_job, _, _ = run_audit(load_target(str(job)), None, opts)
    from_ckpt, _, _ = run_audit(load_target(str(job / "checkpoints" / "last.ckpt")), None, opts)
    state = tmp_path / "weights.pt"
    torch.save(load_target(str(job)).model.state_dict(), state)
    from_state, _, _ = run_audit(load_target(str(state), config=str(job)), None, opts)
    assert from_job.report["inputs"]["samples"] == 100
    assert _strip(from_job.report) == _strip(from_ckpt.report) == _strip(from_state.report)
    import json

    in_run = json.loads((job / "audit" / "report.json").read_text())
    assert in_run["schema"] == 1
    assert in_run["layers"][0]["weight"] == pytest.approx(from_job.report["layers"][0]["weight"])
    assert in_run["layers"][0]["data"]["dead_units"] == from_job.report["layers"][0]["data"]["dead_units"]
    with pytest.raises(AuditError, match="holds weights but no architecture"):
        load_target(str(state))
