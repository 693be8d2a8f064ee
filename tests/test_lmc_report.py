"""summary.md's LMC section: the barrier of the syre_lmc sweep is reported per method (vanilla, W-Asym,
syre), never pooled into one median over the methods."""

from __future__ import annotations

import json
from pathlib import Path

from symexp.report.aggregate import collect, write_report
from symexp.report.lmc import lmc_table

SYRES = {"off": {}, "wasym_lmc": {"_target_": "symexp.syre.WFix", "counts": [5, 64, 64, 256]},
         "static_bias": {"_target_": "symexp.syre.StaticBias", "sigma0": 0.01}}
# loss barrier per (method, seed): vanilla high, W-Asym low, syre in between; pooled median would be 0.9
BARRIERS = {"off": (2.0, 3.0, 2.5), "wasym_lmc": (0.1, 0.2, 0.3), "static_bias": (0.9, 0.8, 1.0)}


def _sweep(root: Path) -> None:
    n = 0
    for syre, barriers in BARRIERS.items():
        for seed, b in enumerate(barriers):
            job = root / str(n)
            (job / ".hydra").mkdir(parents=True)
            (job / ".hydra" / "overrides.yaml").write_text(f"- syre={syre}\n- seed={seed}\n- budget=cpu\n")
            res = {"schema": 1, "status": "ok", "name": "syre_lmc", "seed": seed,
                   "config": {"syre": SYRES[syre], "model": {"_target_": "symexp.models.fcn.FCN"}},
                   "metrics": {}, "members": [{"seed": seed, "status": "ok", "metrics": {
                       "lmc/loss_barrier": b, "lmc/acc_barrier": b / 10, "lmc/mid_acc": 0.9, "test/acc": 0.95}}]}
            (job / "results.json").write_text(json.dumps(res))
            n += 1


def _body(lines: list[str]) -> dict[str, list[str]]:
    table = [line for line in lines if line.startswith("| ")]
    assert table[0] == ("| method | setting | n | seeds | lmc/loss_barrier | lmc/acc_barrier | lmc/mid_acc "
                        "| test/acc |")
    return {cells[0]: cells for cells in ([c.strip() for c in line.strip("|").split("|")] for line in table[1:])}


def test_lmc_barrier_is_reported_per_method(tmp_path: Path) -> None:
    _sweep(tmp_path)
    body = _body(lmc_table(collect(tmp_path)))
    assert list(body) == ["vanilla", "W-Asym", "syre"]
    assert body["vanilla"][1:5] == ["–", "3", "0, 1, 2", "2.5 [2, 3]"]
    assert body["W-Asym"][4] == "0.2 [0.1, 0.3]"
    assert body["syre"][4] == "0.9 [0.8, 1]"


def test_summary_md_has_the_per_method_table_and_no_pooled_barrier(tmp_path: Path) -> None:
    _sweep(tmp_path)
    write_report(tmp_path)
    text = (tmp_path / "summary.md").read_text()
    assert "## syre_lmc: linear mode connectivity per method" in text and "(budget=cpu)" in text
    assert "| W-Asym | – | 3 | 0, 1, 2 | 0.2 [0.1, 0.3] |" in text
    assert "| lmc/loss_barrier | 0.9 |" not in text  # the pooled median over all 9 members


def test_method_falls_back_to_the_override_and_other_settings_split(tmp_path: Path) -> None:
    rows = [{"status": "ok", "name": "syre_lmc", "seed": 0, "overrides": "syre=static_bias task.epochs=5",
             "lmc/loss_barrier": 1.0},
            {"status": "ok", "name": "syre_lmc", "seed": 0, "overrides": "syre=static_bias task.epochs=10",
             "lmc/loss_barrier": 0.5}]
    table = [line for line in lmc_table(rows) if line.startswith("| syre")]
    assert len(table) == 2 and "task.epochs=5" in table[1] and "task.epochs=10" in table[0]
