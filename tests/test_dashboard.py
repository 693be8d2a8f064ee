"""symexp.dashboard: a sweep folder's W&B workspace and report specs name the sweep's metrics and swept
keys, follow the study family's layout, carry the paper's reference values, reproduce the summary table,
and are created in W&B only when online."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from symexp.dashboard.__main__ import main


def _sweep(tmp_path: Path, experiments: list[str], metrics: dict, params: dict[str, list], members: int = 3,
           mode: str = "offline") -> Path:
    """A sweep folder as Hydra and symexp.run leave it: multirun.yaml, one job per setting, results.json."""
    root = tmp_path / "sweeps" / "study" / "2026-01-01_00-00-00"
    root.mkdir(parents=True)
    sweeper = "".join(f"      {k}: {','.join(map(str, v))}\n" for k, v in params.items())
    (root / "multirun.yaml").write_text(f"hydra:\n  sweeper:\n    params:\n{sweeper}")
    settings = [dict(zip(params, values)) for values in zip(*params.values())]
    for i, (exp, setting) in enumerate(zip(experiments, settings)):
        job = root / str(i)
        (job / ".hydra").mkdir(parents=True)
        (job / ".hydra" / "overrides.yaml").write_text("".join(f"- {k}={v}\n" for k, v in setting.items()))
        data, model, rank = (exp.split("_")[-1], exp.split("_")[0], setting.get("model.rank", 8))
        config = {"logger": {"mode": mode, "project": "proj", "entity": "team"}, "ensemble": {"size": members},
                  "model": {"_target_": "symexp.models.rflr.RFLR" if model == "rflr" else "symexp.models.mlp.MLP",
                            "rank": rank, "width": 512},  # the paper's Table 1 width: its values apply
                  "data": {"label": data, "sampling": "uniform"}}
        mem = [{"seed": s, "status": "ok", "metrics": {k: v * (1 + s) for k, v in metrics.items()}} for s in range(members)]
        (job / "results.json").write_text(json.dumps({"status": "ok", "name": exp, "config": config,
                                                      "metrics": mem[0]["metrics"], "members": mem}))
    return root


def _panels(spec: dict) -> list[dict]:
    return [p for s in spec["spec"]["section"]["panelBankConfig"]["sections"] for p in s["panels"]]


SEED000 = {"test/mse": 2e-5, "sym/output_defect": 8e-5, "sym/partial_defect": 1e-3, "sym/mirror_mismatch": 0.3}


def test_seed000_sweep_gets_panels_by_swept_key_member_spread_paper_values_and_table1(tmp_path):
    root = _sweep(tmp_path, ["rflr_table1_quad2d", "rflr_table1_quad2d"], SEED000, {"model.rank": [8, 128]})
    assert main([str(root)]) == 0
    ws = json.loads((root / "dashboard" / "workspace.json").read_text())
    panels = _panels(ws)
    named = {m for p in panels for m in p["config"].get("metrics", [])}
    assert {"test/mse", "sym/output_defect", "sym/partial_defect", "sym/mirror_mismatch"} <= named
    assert {"paper/test/mse", "paper/sym/partial_defect"} <= named, "Table 1's numbers beside ours"
    assert {f"member/{k}/test/mse" for k in range(3)} <= named, "each member's value, not only the median"
    bars = [p for p in panels if p["viewType"] == "Bar Chart" and p["config"].get("groupBy")]
    assert bars and {p["config"]["groupBy"] for p in bars} == {"model.value.rank"}, "grouped by the swept key"
    curves = [p for p in panels if p["viewType"] == "Run History Line Plot"]
    assert curves and {p["config"].get("xAxis") for p in curves} == {"epoch"}
    runset = ws["spec"]["section"]["runSets"][0]
    assert {f["value"] for f in runset["filters"]["filters"]} == {"study/2026-01-01_00-00-00", "train"}
    assert runset["grouping"] == [{"section": "config", "name": "model.value.rank"}]
    assert ws["entity"] == "team" and ws["project"] == "proj"
    report = (root / "dashboard" / "report.json").read_text()
    md = [b["content"] for b in json.loads(report)["spec"]["blocks"] if b["type"] == "markdown-block"][0]
    assert "Table 1" in md and "[2.17e-05]" in md, "the report reproduces the summary table with the paper's values"
    assert "summary/members" in report and "test/mse" in report and "model.value.rank" in report


def test_ppo_and_discovery_sweeps_get_their_family_layout(tmp_path):
    ppo = _sweep(tmp_path / "a", ["ppo_slippery_ant_vanilla", "ppo_slippery_ant_syre"],
                 {"train/return_final": 100.0, "rank/effective_rank_pct": 50.0}, {"experiment": ["ppo_slippery_ant_vanilla", "ppo_slippery_ant_syre"]}, members=1)
    assert main([str(ppo)]) == 0
    panels = _panels(json.loads((ppo / "dashboard" / "workspace.json").read_text()))
    assert {p["config"].get("xAxis") for p in panels if p["viewType"] == "Run History Line Plot"} == {"env_step"}
    assert {"train/return_final", "rank/effective_rank_pct"} <= {m for p in panels for m in p["config"].get("metrics", [])}
    assert {p["config"].get("groupBy") for p in panels if p["viewType"] == "Bar Chart"} == {"hydra.value.choices.experiment"}
    gen = _sweep(tmp_path / "b", ["gen_relu", "gen_relu"], {"gen/alignment": 0.9, "gen/lift_wider": 0.8},
                 {"seed": [0, 1]}, members=1)
    assert main([str(gen)]) == 0
    spec = json.loads((gen / "dashboard" / "workspace.json").read_text())
    assert spec["displayName"].startswith("study/2026-01-01_00-00-00: seed 003")
    assert {"gen/alignment", "gen/lift_wider"} <= {m for p in _panels(spec) for m in p["config"].get("metrics", [])}


def test_swept_keys_come_from_the_jobs_overrides_too(tmp_path):
    """A comma list on the command line (no sweeper params) is a swept key as well."""
    from symexp.report.sweep import read_sweep

    root = _sweep(tmp_path, ["rflr_table1_quad2d"] * 2, SEED000, {"seed": [0, 1]})
    (root / "multirun.yaml").write_text("hydra:\n  sweeper:\n    params: {}\n")
    assert read_sweep(root).swept == {"seed": ["0", "1"]}


def test_not_a_sweep_folder_is_one_clear_line(tmp_path, capsys):
    assert main([str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and str(tmp_path) in err and "no job folders" in err


def test_online_sweep_creates_workspace_and_report_in_wandb(tmp_path, monkeypatch):
    import wandb_workspaces.reports.v2 as wr
    import wandb_workspaces.workspaces as ws

    saved = []
    monkeypatch.setattr(ws.Workspace, "save", lambda self: saved.append(("workspace", self.entity)) or self)
    monkeypatch.setattr(wr.Report, "save", lambda self, **kw: saved.append(("report", self.entity)) or self)
    monkeypatch.setattr(ws.Workspace, "url", property(lambda self: "https://wandb.example/ws"))
    monkeypatch.setattr(wr.Report, "url", property(lambda self: "https://wandb.example/report"))
    offline = _sweep(tmp_path / "off", ["rflr_table1_quad2d"] * 2, SEED000, {"model.rank": [8, 128]})
    assert main([str(offline)]) == 0 and saved == []
    online = _sweep(tmp_path / "on", ["rflr_table1_quad2d"] * 2, SEED000, {"model.rank": [8, 128]}, mode="online")
    assert main([str(online)]) == 0
    assert saved == [("workspace", "team"), ("report", "team")]


@pytest.mark.parametrize("family", ["seed000", "syre", "ppo", "discovery", "mirror", "generic"])
def test_every_family_layout_names_only_metrics_the_sweep_has(family, tmp_path):
    from symexp.dashboard.layouts import LAYOUTS

    have = ["test/mse", "rank/effective_rank/hidden", "gen/alignment", "train/return_final", "mirror/sparsity_w_max"]
    picked = LAYOUTS[family].pick(have)
    assert picked and set(picked) <= set(have)


def test_paper_values_only_for_the_settings_the_papers_state():
    from symexp.dashboard.references import paper_values

    rflr = {"model": {"_target_": "symexp.models.rflr.RFLR", "rank": 8}, "data": {"label": "quad3d", "sampling": "uniform"}}
    assert paper_values(rflr)["paper/test/mse"] == pytest.approx(1.92e-4)
    assert paper_values({**rflr, "model": {**rflr["model"], "rank": 4}}) == {}, "Table 1 has no rank 4"
    assert paper_values({**rflr, "data": {"label": "quad3d", "sampling": "symmetric"}}) == {}
    simclr = {"task": {"_target_": "symexp.tasks.simclr.SimCLRTask"}, "data": {"source": "cifar100"},
              "syre": {"_target_": "symexp.syre.StaticBias", "sigma0": 0.01, "include": ["*"]}}
    assert paper_values(simclr) == {"paper/rank/last/low_rankness": 0.0, "paper/probe/penultimate_acc": 0.454,
                                    "paper/probe/last_acc": 0.324}
    assert paper_values({**simclr, "syre": {}})["paper/rank/last/low_rankness"] == 0.70
    assert paper_values({**simclr, "data": {"source": "synthetic"}}) == {}, "the smoke budget is not the paper's"
