"""Generator learning (seed 003): learn h_1..h_k and a group action a(g, theta, X) whose infinitesimal
action leaves the target network's loss invariant, on random (theta, X) samples.

Automatic optimisation: Adam with the paper's step decay (x0.6 every 1000 steps). After training the task
evaluates the learned symmetry (invariance against random directions, axiom residuals, finite flows,
alignment with known symmetries, lifting to a wider and a deeper network) and draws h and the learned
vector field.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from symexp.discovery import evaluate as ev
from symexp.discovery.action import GeneratorModel
from symexp.discovery.data import GeneratorData
from symexp.discovery.losses import (
    DATA_DEPENDENT_GAMMAS,
    DATA_INDEPENDENT_GAMMAS,
    EXCLUDABLE,
    ObjectiveConfig,
    objective,
)
from symexp.tasks.base import SymexpTask

log = logging.getLogger(__name__)
GAMMA_PRESETS = {"data_independent": DATA_INDEPENDENT_GAMMAS, "data_dependent": DATA_DEPENDENT_GAMMAS}


class GeneratorTask(SymexpTask):
    def __init__(
        self,
        model: GeneratorModel,
        datamodule: GeneratorData,
        optimizer: Callable[..., torch.optim.Optimizer],
        steps: int = 10_000,
        lr_decay: float = 0.6,
        lr_decay_every: int = 1000,
        gammas: str | Sequence[float] = "data_independent",
        beta: float = 1.0,
        objective: str = "infinitesimal",
        assoc_form: str = "bracket",
        t_max: float = 0.5,
        sparse_warmup: int = 1000,
        normalize_invariance: bool = True,
        orth_on: str = "h",
        exclude: Sequence[str] = (),
        exclude_weight: float = 10.0,
        flow_arclength: float = 0.5,
        flow_steps: int = 20,
        n_align: int = 128,
        lift: bool = True,
        num_threads: int | None = 1,
        seeds: Sequence[int] = (0,),
        syre=None,
    ) -> None:
        super().__init__(model, datamodule, seeds, syre)
        if not isinstance(datamodule, GeneratorData):
            raise ValueError("data: the generator task needs a gen_* data config (GeneratorData)")
        if steps < 1:
            raise ValueError(f"task.steps: must be positive, got {steps}")
        if objective not in ("infinitesimal", "exponentiated"):
            raise ValueError(f"task.objective: choose infinitesimal or exponentiated, got {objective!r}")
        if orth_on not in ("h", "field"):
            raise ValueError(f"task.orth_on: choose h or field, got {orth_on!r}")
        if assoc_form not in ("bracket", "paper"):
            raise ValueError(f"task.assoc_form: choose bracket or paper, got {assoc_form!r}")
        exclude = tuple(exclude or ())
        for name in exclude:
            if name not in EXCLUDABLE:
                raise ValueError(f"task.exclude: can exclude {list(EXCLUDABLE)} only, got {name!r}")
        if exclude and not exclude_weight > 0:
            raise ValueError(f"task.exclude_weight: must be positive when task.exclude is set, got {exclude_weight}")
        if isinstance(gammas, str):
            if gammas not in GAMMA_PRESETS:
                raise ValueError(f"task.gammas: unknown preset {gammas!r}; choose {sorted(GAMMA_PRESETS)} or 6 numbers")
            gammas = GAMMA_PRESETS[gammas]
        gammas = tuple(float(g) for g in gammas)
        if len(gammas) != 6:
            raise ValueError(f"task.gammas: need gamma1..gamma6 (6 numbers), got {len(gammas)}")
        self.target = datamodule.target
        model.build(self.target.n_params, self.target.x_size)
        self.cfg = ObjectiveConfig(gammas=gammas, beta=beta, objective=objective, assoc_form=assoc_form, t_max=t_max,
                                  sparse_warmup=sparse_warmup, normalize_invariance=normalize_invariance,
                                  orth_on=orth_on, exclude=exclude, exclude_weight=float(exclude_weight))
        self.optimizer_factory = optimizer
        self.steps, self.lr_decay, self.lr_decay_every = steps, lr_decay, lr_decay_every
        self.flow_arclength, self.flow_steps, self.n_align, self.lift = flow_arclength, flow_steps, n_align, lift
        self.num_threads = num_threads
        self._final: dict[str, torch.Tensor] | None = None

    def on_fit_start(self) -> None:
        # tiny matmuls: a second intra-op thread only spins; on a loaded 2-core box it made a step 50x slower
        if self.num_threads and self.device.type == "cpu":
            torch.set_num_threads(int(self.num_threads))

    def configure_optimizers(self):
        opt = self.attach_syre(self.optimizer_factory(params=self.model.parameters()))
        sched = torch.optim.lr_scheduler.StepLR(opt, self.lr_decay_every, self.lr_decay)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    def headline_metrics(self) -> tuple[str, ...]:
        return ("gen/alignment", "gen/alignment/h*", "gen/invariance_learned/h*", "gen/lift_wider", "gen/lift_deeper")

    def trainer_defaults(self) -> dict:
        return {"max_steps": self.steps, "max_epochs": -1, "num_sanity_val_steps": 0, "limit_val_batches": 0,
                "log_every_n_steps": 50}

    def training_step(self, batch, batch_idx):
        theta, x, y = batch
        loss, terms = objective(self.model, self.target, theta, x, y, self.cfg, self.global_step)
        self.log("train/loss", loss, prog_bar=True)
        for name, value in terms.items():
            self.log(f"train/{name}", value)
        return loss

    # ---------------------------------------------------------------- evaluation
    def _evaluate(self) -> dict[str, torch.Tensor]:
        theta, x, y = (t.to(self.device) for t in self.datamodule.eval_set)
        out = ev.report(self.target, self.model, theta, x, y, beta=self.cfg.beta, seed=self.seeds[0],
                        arclength=self.flow_arclength, flow_steps=self.flow_steps, n_align=self.n_align,
                        lift=self.lift, train_steps=self.global_step)
        for i in range(self.model.k):
            log.info("h%d: %s", i + 1, ev.verdict(out, i + 1))
        log.info("group: %s", ev.group_verdict(out, self.model.k))
        return {k: torch.tensor([v], dtype=torch.float32) for k, v in out.items()}

    def final_metrics(self) -> dict[str, torch.Tensor]:
        if self._final is None:
            with torch.enable_grad():
                self._final = self._evaluate()
        return self._final

    def figures(self, fig_dir: Path) -> dict[str, Path]:
        from symexp.discovery.plots import plot_generators

        theta, x, _ = self.datamodule.eval_set
        with torch.enable_grad():
            eff = ev.effective_generators(self.model, theta, x).detach()
        metrics = {k: float(v) for k, v in self.final_metrics().items()}
        verdicts = [ev.verdict(metrics, i + 1) for i in range(self.model.k)]
        path = plot_generators(self.target, self.model, eff, fig_dir / "generators.png", verdicts,
                               ev.group_verdict(metrics, self.model.k))
        return {"generators": path}

    def objective(self, metrics: dict) -> float | None:
        value = metrics.get("gen/invariance_learned")
        return float(value) if isinstance(value, float) and math.isfinite(value) else None
