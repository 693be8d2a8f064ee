"""The report's seed 002 section: sweep jobs of a syre experiment are told apart by their overrides and
the figure-deciding metrics appear side by side (median over members)."""

from __future__ import annotations

import json
from pathlib import Path

from symexp.report.aggregate import collect, write_report
from symexp.report.tables import syre_tables


def _job(root: Path, n: int, overrides: list[str], syre: dict, members: list[dict]) -> None:
    job = root / str(n)
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))
    res = {"schema": 1, "status": "ok", "name": "syre_symbench", "seed": 0,
           "config": {"syre": syre, "model": {"_target_": "symexp.models.objectives.SymmetryBenchmark"}},
           "metrics": {}, "members": [{"seed": k, "status": "ok", "metrics": m} for k, m in enumerate(members)]}
    (job / "results.json").write_text(json.dumps(res))


def test_syre_section_splits_variants_and_settings(tmp_path: Path) -> None:
    _job(tmp_path, 0, ["model.structure=unstructured", "syre=static_bias", "budget=cpu"],
         {"_target_": "symexp.syre.StaticBias", "sigma0": 1.0},
         [{"sym/symmetry_degree": 2.0, "train/objective": -5.0}, {"sym/symmetry_degree": 4.0, "train/objective": -7.0}])
    _job(tmp_path, 1, ["model.structure=unstructured", 'syre="off"', "budget=cpu"], {},  # YAML-quoted as sweeps write it
         [{"sym/symmetry_degree": 900.0, "train/objective": -6.0}])
    _job(tmp_path, 2, ["model.structure=structured", "syre.fraction=0.1", "budget=cpu"], {"_target_": "symexp.syre.WFix"},
         [{"sym/symmetry_degree": 50.0, "train/objective": -1.0}])
    rows = collect(tmp_path)
    assert {r["syre_variant"] for r in rows} == {"static_bias", "off", "wfix"}
    lines = syre_tables(rows)
    table = [line for line in lines if line.startswith("| ")]
    assert table[0] == "| syre | setting | n | sym/symmetry_degree | train/objective |"
    body = {tuple(c.strip() for c in line.strip("|").split("|")[:3]): line for line in table[1:]}
    assert "| 3 | -6 |" in body[("static_bias", "model.structure=unstructured", "2")]  # medians
    assert "| 900 | -6 |" in body[("off", "model.structure=unstructured", "1")]
    # no syre= override: the variant comes from the config
    assert ("wfix", "model.structure=structured syre.fraction=0.1", "1") in body
    write_report(tmp_path)
    md = (tmp_path / "summary.md").read_text()
    assert "## syre_symbench (seed 002): median over members (budget=cpu)" in md and "Other experiments" not in md


def test_syre_figures_drawn(tmp_path: Path) -> None:
    """Fig. 4 scatter from symbench jobs; the reparam dead-coordinate curves from each job's curves.json."""
    _job(tmp_path, 0, ["model.structure=structured", "syre=static_bias"], {"_target_": "symexp.syre.StaticBias"},
         [{"sym/symmetry_degree": 2.0, "train/objective": -5.0}])
    _job(tmp_path, 1, ["model.structure=structured", "syre=off"], {}, [{"sym/symmetry_degree": 9.0,
                                                                      "train/objective": -6.0}])
    for n, variant in ((2, "static_bias"), (3, "off")):
        job = tmp_path / str(n)
        (job / ".hydra").mkdir(parents=True)
        (job / ".hydra" / "overrides.yaml").write_text(f"- syre={variant}\n")
        (job / "figures").mkdir()
        (job / "figures" / "curves.json").write_text(json.dumps(
            {"step": [0, 10], "sym/dead_coordinates": [[0, 0], [3 if variant == "off" else 0, 0]]}))
        (job / "results.json").write_text(json.dumps(
            {"status": "ok", "name": "syre_reparam", "config": {"syre": {}},
             "members": [{"seed": 0, "status": "ok", "metrics": {"sym/dead_coordinates": 1.0}}]}))
    paths = {p.name for p in write_report(tmp_path)}
    assert {"syre_fig4_symbench.png", "syre_reparam_dead.png"} <= paths
    assert (tmp_path / "figures" / "syre_fig4_symbench.png").stat().st_size > 1000


def _symbench_job(root: Path, n: int, overrides: list[str], config: dict) -> None:
    job = root / str(n)
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))
    res = {"schema": 1, "status": "ok", "name": "syre_symbench", "seed": 0, "config": config, "metrics": {},
           "members": [{"seed": 0, "status": "ok", "metrics": {"sym/symmetry_degree": 9.0, "train/objective": -1.0}}]}
    (job / "results.json").write_text(json.dumps(res))


def test_fig4_methods_come_from_the_resolved_config(tmp_path: Path) -> None:
    """Weight decay set by the preset (not on the command line) is weight decay, not vanilla; syre's own
    weight_decay counts; the ablations are told apart by their config."""
    from symexp.report.syre_figures import _method, _variant

    model = {"_target_": "symexp.models.objectives.SymmetryBenchmark", "dropout": 0.0}
    opt = {"task": {"optimizer": {"weight_decay": 1.0}}}
    _symbench_job(tmp_path, 0, ["syre=off"], {"syre": {}, "model": model, **opt})
    _symbench_job(tmp_path, 1, ["syre=off"], {"syre": {}, "model": model, "task": {"optimizer": {"weight_decay": 0.0}}})
    _symbench_job(tmp_path, 2, [], {"syre": {}, "model": {**model, "dropout": 0.1},
                                    "task": {"optimizer": {"weight_decay": 0.0}}})
    _symbench_job(tmp_path, 3, [], {"syre": {"_target_": "symexp.syre.StaticBias", "anchor": False}, "model": model, **opt})
    _symbench_job(tmp_path, 4, [], {"syre": {"_target_": "symexp.syre.StaticBias", "shift_init": False}, "model": model,
                                    **opt})
    _symbench_job(tmp_path, 5, ["syre=off"], {"syre": {"_target_": "symexp.syre.Off", "weight_decay": 0.3},
                                              "model": model, "task": {"optimizer": {"weight_decay": 0.0}}})
    rows = {r["job"]: r for r in collect(tmp_path)}
    assert [_method(rows[str(i)]) for i in range(3)] == ["weight decay", "vanilla", "dropout"]
    assert rows["0"]["weight_decay"] == 1.0 and rows["1"]["weight_decay"] == 0.0
    assert [_variant(rows[str(i)]) for i in (3, 4)] == ["perturb_only", "anchor_only"]
    assert rows["5"]["weight_decay"] == 0.0  # no syre object is built for Off: its weight_decay is not applied
