"""Every bad input fails at validation with one ConfigError naming its key, what it got and what is allowed;
every shipped preset passes the same checks."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import urllib.error

import pytest
import torch

from symexp.data import vision
from symexp.schema import ConfigError, DataError, validate
from tests.conftest import ROOT, compose_cfg

PPO = "experiment=ppo_shifting_pendulum_syre"
VISION = "experiment=syre_fcn"
SYRE_WFIX = ["experiment=syre_fcn", "syre=wfix"]
GEN = "experiment=gen_relu"
MIRROR = "experiment=mirror_plasticity"

# (overrides, the key the error must name). The list first, then one knob per group.
BAD_INPUTS = [
    (["task.optimizer.lr=0"], "task.optimizer.lr"),
    (["task.optimizer.lr=abc"], "task.optimizer.lr"),
    (["task.optimizer.lr=-0.001"], "task.optimizer.lr"),
    (["metric.prop1_bound.tolerance=-1"], "metric.prop1_bound.tolerance"),
    (["data.grid_points=1"], "data.grid_points"),
    (["data.flip_prob=1.5"], "data.flip_prob"),
    (["data.noise_std=-1"], "data.noise_std"),
    (["task.scheduler.gamma=-1"], "task.scheduler.gamma"),
    (["task.divergence_loss=-1"], "task.divergence_loss"),
    (["data.transforms=neg"], "data.transforms"),
    # regression
    (["task.epochs=0"], "task.epochs"),
    (["task.epochs=2.5"], "task.epochs"),
    (["task.val_every=0"], "task.val_every"),
    (["task.engine=turbo"], "task.engine"),
    (["task.steps_per_call=0"], "task.steps_per_call"),
    (["+task.optimizer.weight_decay=-0.1"], "task.optimizer.weight_decay"),
    (["task.scheduler.step_size=0"], "task.scheduler.step_size"),
    (["data.sampling=gaussian"], "data.sampling"),
    (["data.n_train=0"], "data.n_train"),
    (["data.transforms=[]"], "data.transforms"),
    (["data.sample_seed=-3"], "data.sample_seed"),
    (["model.width=0"], "model.width"),
    (["model.depth=-1"], "model.depth"),
    (["model.first_scale=0"], "model.first_scale"),
    (["model.mixer_bias=maybe"], "model.mixer_bias"),
    (["metric.partial_defect.tau=-0.1"], "metric.partial_defect.tau"),
    (["metric.regime.r2_min=2"], "metric.regime.r2_min"),
    (["metric.output_defect.every_n_epochs=-1"], "metric.output_defect.every_n_epochs"),
    (["metric.regime.partial_low=0.5", "metric.regime.partial_high=0.1"], "metric.regime.partial_low"),
    # top level, device, logger
    (["seed=-1"], "seed"),
    (["ensemble.size=0"], "ensemble.size"),
    (["progress=fancy"], "progress"),
    (["device.accelerator=quantum"], "device.accelerator"),
    (["device.devices=0"], "device.devices"),
    (["device.precision=8"], "device.precision"),
    (["logger.mode=sometimes"], "logger.mode"),
    (["logger.backend=neptune"], "logger.backend"),
    (["logger.init_timeout=0"], "logger.init_timeout"),
    # PPO
    ([PPO, "task.gamma=1.5"], "task.gamma"),
    ([PPO, "task.gae_lambda=-0.1"], "task.gae_lambda"),
    ([PPO, "task.clip=0"], "task.clip"),
    ([PPO, "task.total_steps=0"], "task.total_steps"),
    ([PPO, "task.minibatches=0"], "task.minibatches"),
    ([PPO, "task.entropy_coef=-0.01"], "task.entropy_coef"),
    ([PPO, "task.max_grad_norm=0"], "task.max_grad_norm"),
    ([PPO, "task.final_window=0"], "task.final_window"),
    ([PPO, "task.optimizer.betas=[0.9,1.0]"], "task.optimizer.betas"),
    ([PPO, "data.num_envs=0"], "data.num_envs"),
    ([PPO, "data.low=-1"], "data.low"),
    ([PPO, "data.low=3.0"], "data.low"),
    ([PPO, "syre.sigma0=-0.01"], "syre.sigma0"),
    ([PPO, "syre.mode=relative"], "syre.mode"),
    ([PPO, "syre.sigma_D=1.0"], "syre.sigma_D"),
    ([PPO, "model.hidden=[256,0]"], "model.hidden"),
    # vision and syre
    ([VISION, "data.batch_size=0"], "data.batch_size"),
    ([VISION, "data.source=imagenet"], "data.source"),
    ([VISION, "data.alpha=0"], "data.alpha"),
    ([VISION, "data.permutations=-1"], "data.permutations"),
    ([VISION, "data.download=yes"], "data.download"),
    ([VISION, "task.track_every=0"], "task.track_every"),
    ([VISION, "task.max_steps=0"], "task.max_steps"),
    ([VISION, "task.optimizer._target_=torch.optim.SGD", "+task.optimizer.momentum=1.0"], "task.optimizer.momentum"),
    ([VISION, "model.norm=batchnorm"], "model.norm"),
    ([*SYRE_WFIX, "syre.fraction=1.5"], "syre.fraction"),
    ([*SYRE_WFIX, "syre.kappa=-1"], "syre.kappa"),
    (["experiment=syre_vit", "model.dropout=1.0"], "model.dropout"),
    (["experiment=syre_teacher_student", "data.label_noise=1.2"], "data.label_noise"),
    (["experiment=syre_vae", "task.prior_var=0"], "task.prior_var"),
    (["experiment=syre_simclr", "task.temperature=0"], "task.temperature"),
    # discovery and mirror
    ([GEN, "task.objective=finite"], "task.objective"),
    ([GEN, "task.lr_decay=0"], "task.lr_decay"),
    ([GEN, "model.kind=quadratic"], "model.kind"),
    ([MIRROR, "task.support=0"], "task.support"),
    ([MIRROR, "task.noise_std=-0.1"], "task.noise_std"),
    # groups that do not fit together
    (["data=gauss2d", "model.in_dim=3"], "model.in_dim"),
    (["model.rank=600", "model.width=512"], "model.rank"),
    (["model=fcn"], "model.in_channels"),
]


@pytest.mark.parametrize("overrides,key", BAD_INPUTS, ids=[" ".join(o) for o, _ in BAD_INPUTS])
def test_bad_input_names_its_key(overrides, key):
    cfg = compose_cfg(overrides)
    with pytest.raises(ConfigError) as err:
        validate(cfg)
    assert err.value.key == key
    assert str(err.value).startswith(f"{key}: ")


def test_message_says_what_it_got_and_what_is_allowed():
    with pytest.raises(ConfigError, match=r"^data\.flip_prob: got 1\.5; allowed a number in \[0, 1\]$"):
        validate(compose_cfg(["data.flip_prob=1.5"]))
    with pytest.raises(ConfigError, match=r"^data\.transforms: got 'neg'; allowed a list of strings \(at least 1\)$"):
        validate(compose_cfg(["data.transforms=neg"]))


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")
@pytest.mark.parametrize("device", ["gpu", "ddp"])
def test_gpu_without_cuda_fails_at_validation(device):
    with pytest.raises(ConfigError, match="no CUDA device is visible") as err:
        validate(compose_cfg([f"device={device}"]))
    assert err.value.key == "device.accelerator"


def test_download_offline_names_the_files_and_the_folder(tmp_path, monkeypatch):
    def offline(url, target):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(vision.urllib.request, "urlretrieve", offline)
    with pytest.raises(DataError) as err:
        vision.load_source("mnist", tmp_path, "train", download_missing=True)
    text = str(err.value)
    assert err.value.key == "data.download"
    assert "train-images-idx3-ubyte.gz" in text and str(tmp_path / "mnist") in text
    assert "data.download=false" in text
    assert not list(tmp_path.rglob("*.part")), "a failed download must not leave partial files"


def _launch(*overrides: str, tmp_path) -> subprocess.CompletedProcess:
    env = {**os.environ, "WANDB_MODE": "offline", "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, str(ROOT / "launch.py"), *overrides, "logger=none", "progress=none",
         f"paths.output_root={tmp_path}"],
        capture_output=True, text=True, env=env, timeout=120, cwd=tmp_path,
    )


@pytest.mark.parametrize(
    "override,key",
    [("task.optimizer.lr=abc", "task.optimizer.lr"),
     pytest.param("data.transforms=neg", "data.transforms", marks=pytest.mark.slow)],
)
def test_terminal_shows_one_line_and_no_traceback(override, key, tmp_path):
    proc = _launch(override, tmp_path=tmp_path)
    assert proc.returncode != 0
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("symexp: configuration error:")]
    assert lines == [next(ln for ln in lines if ln.startswith(f"symexp: configuration error: {key}: got "))]
    assert "Traceback" not in proc.stderr + proc.stdout
    assert not list(tmp_path.rglob("last.ckpt")), "no training may happen on a bad config"


# ---------------------------------------------------------------------------------------------- fresh mistakes
# Plausible user mistakes that used to end in a traceback or run with the value silently ignored; each
# must end with one line naming its key. (overrides, the start of that line after "configuration error: ")
RFLR_TINY = ["budget=smoke", "model.width=16", "model.depth=1", "data.n_train=8", "data.n_val=8", "task.epochs=2",
             "task.val_every=1"]
MISTAKES_IN_JOB = [
    (["+trainer.max_epochs=-5"], "trainer.max_epochs: got -5"),
    (["+trainer.gradient_clip_val=abc"], "trainer.gradient_clip_val: got 'abc'"),
    (["+trainer.accumulate_grad_batches=0"], "trainer.accumulate_grad_batches: got 0"),
    (["+trainer.gradient_clip_vall=1.0"], "trainer.gradient_clip_vall: lightning.Trainer takes no argument "
                                          "'gradient_clip_vall' (did you mean gradient_clip_val?)"),
    (["+trainer.max_time=forever"], "trainer.max_time: got 'forever'"),
    (["device.strategy=ddp_foo"], "device.strategy: lightning.Trainer refused it"),
    (["+task.optimizer.betas=[0.9,0.99,0.5]"], "task.optimizer.betas: got [0.9, 0.99, 0.5]"),
    ([PPO, "task.optimizer.betas=[0.9]"], "task.optimizer.betas: got [0.9]"),
    (["task.optimizer._target_=torch.optim.Adamw"],
     "task.optimizer._target_: cannot import 'torch.optim.Adamw': torch.optim has no 'Adamw' (did you mean AdamW?)"),
    (["+task.optimizer.momentum=0.9"], "task.optimizer.momentum: torch.optim.Adam takes no argument 'momentum'"),
    (["task.scheduler._target_=torch.optim.lr_scheduler.ExponentialLR"],
     "task.scheduler.step_size: torch.optim.lr_scheduler.ExponentialLR takes no argument 'step_size'"),
    (["+task.scheduler.last_epoch=5"], "task.scheduler.last_epoch: KeyError"),
    (["seed=4294967296"], "seed: got 4294967296; allowed an integer in [0, 2**32 - 1]"),
    (["seed=4294967295", "ensemble.size=2"], "seed: got 4294967295; allowed at most 2**32 - ensemble.size"),
    (["+foo=1"], "foo: no such top-level key"),
    (["+task.foo=1"], "task.foo: symexp.tasks.regression.RegressionTask takes no argument 'foo'"),
    (["+model.widht=8"], "model.widht: symexp.models.rflr.RFLR takes no argument 'widht' (did you mean width?)"),
    (["+logger.projet=x"], "logger.projet: nothing reads this key (did you mean project?)"),
    (["+checkpoint.every_minute=1"], "checkpoint.every_minute: no such key (did you mean every_minutes?)"),
    (["experiment=syre_fcn", "syre=wfix", "+syre.kapa=1"], "syre.kapa: symexp.syre.WFix takes no argument 'kapa'"),
    (["+metric.regime.mse_maxx=1"], "metric.regime.mse_maxx: symexp.symmetry.metrics.Regime takes no argument"),
    (["name="], "name: got ''"),
    (["paths.output_root=''"], "paths.output_root: got ''"),
]


@pytest.mark.parametrize("overrides,line", MISTAKES_IN_JOB, ids=[" ".join(o) for o, _ in MISTAKES_IN_JOB])
def test_a_mistake_in_a_job_ends_in_one_line_naming_its_key(overrides, line, tmp_path, monkeypatch):
    from symexp.run import run

    monkeypatch.chdir(tmp_path)
    no_root = any("paths.output_root" in o for o in overrides)
    out = [] if no_root else [f"paths.output_root={tmp_path}"]
    base = ["budget=smoke"] if any(o.startswith("experiment=") for o in overrides) else RFLR_TINY
    with pytest.raises(SystemExit) as exc:
        run(compose_cfg(base + overrides + out + ["logger=none", "progress=none"]))
    assert str(exc.value).startswith(f"symexp: configuration error: {line}"), str(exc.value)
    assert "\n" not in str(exc.value)
    assert not list(tmp_path.rglob("last.ckpt")), "no training may happen on a bad config"
    if no_root:  # an empty output root is the working directory: nothing may be written there
        assert not list(tmp_path.iterdir()), list(tmp_path.iterdir())


MISTAKES_AT_LAUNCH = [
    (["hydra.run.dir="], "hydra.run.dir: got ''"),
    (["paths.output_root="], "paths.output_root: got ''"),
    (["-m", "hydra.sweep.dir=", "seed=1,2"], "hydra.sweep.dir: got ''"),
    (["-m", "launcher=joblib", "hydra.launcher.n_jobs=0", "seed=1,2"], "hydra.launcher.n_jobs: got 0"),
    (["-m", "hparams_search=rflr_cosine1d", "hydra.sweeper.n_trials=0"], "hydra.sweeper.n_trials: got 0"),
    (["-m", "hparams_search=rflr_cosine1d", "hydra.sweeper.direction=up"], "hydra.sweeper.direction: got 'up'"),
    (["-m", "hparams_search=rflr_cosine1d", "hydra.sweeper.sampler.seed=-1"], "hydra.sweeper.sampler.seed: got -1"),
    pytest.param(["-m", "launcher=slurm", "seed=1,2"], "launcher: launcher=slurm needs SLURM's",
                 marks=pytest.mark.skipif(bool(shutil.which("srun")), reason="a SLURM machine can start it")),
]


@pytest.mark.parametrize("args,line", MISTAKES_AT_LAUNCH,
                         ids=[" ".join(p.values[0] if hasattr(p, "values") else p[0]) for p in MISTAKES_AT_LAUNCH])
def test_a_mistake_at_launch_ends_in_one_line_before_any_folder(args, line, tmp_path):
    env = {**os.environ, "WANDB_MODE": "offline", "PYTHONPATH": str(ROOT)}
    flags = [a for a in args if a == "-m"]
    rest = [a for a in args if a != "-m"]
    out = [] if any(a.startswith("paths.output_root") for a in rest) else [f"paths.output_root={tmp_path}/out"]
    proc = subprocess.run([sys.executable, str(ROOT / "launch.py"), *flags, *RFLR_TINY, "logger=none", "progress=none",
                           *out, *rest], capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path)
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr + proc.stdout, proc.stderr[-3000:]
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("symexp: configuration error:")]
    assert len(lines) == 1 and lines[0].startswith(f"symexp: configuration error: {line}"), proc.stderr[-3000:]
    assert sorted(p.name for p in tmp_path.iterdir()) == [], "nothing may be written before the launch is valid"
