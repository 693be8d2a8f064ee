# symexp: `make run` and `make test` set everything up on a fresh machine.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
SWEEP ?= rflr_table1
DIR ?=
RESUME ?=
TARGET ?=
ARGS ?=
# W&B runs offline unless logger.mode=online (or WANDB_MODE=online with the default logger.mode=auto).

.PHONY: run test sweep report dashboard eval audit bench lint clean

# torch==2.13.0 is the CPU wheel on this machine's disk; a plain `torch` pulls a multi-GB CUDA build.
$(BIN)/.ready: pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[dev,rl,slurm,optuna]'
	touch $@

run: $(BIN)/.ready
	$(BIN)/python launch.py $(ARGS)

test: $(BIN)/.ready
	$(BIN)/python -m pytest -q -n 2 $(ARGS)

# RESUME=<sweep folder>: rerun into it; finished jobs are skipped, failed and missing ones rerun.
sweep: $(BIN)/.ready
	$(BIN)/python launch.py -cd sweeps -cn $(SWEEP) $(if $(RESUME),hydra.sweep.dir=$(RESUME)) $(ARGS)

report: $(BIN)/.ready
	@test -n "$(DIR)" || (echo "usage: make report DIR=outputs/sweeps/<name>/<timestamp> (several: DIR=\"A B\" ARGS=\"--out C\")" && exit 2)
	$(BIN)/python -m symexp.report $(DIR) $(ARGS)

# the sweep's W&B workspace and report as JSON in DIR/dashboard/; created in W&B too with ARGS=--online
dashboard: $(BIN)/.ready
	@test -n "$(DIR)" || (echo "usage: make dashboard DIR=outputs/sweeps/<name>/<timestamp> [ARGS='--online --entity E']" && exit 2)
	$(BIN)/python -m symexp.dashboard $(DIR) $(ARGS)

eval: $(BIN)/.ready
	@test -n "$(DIR)" || (echo "usage: make eval DIR=<job folder> [ARGS='metric=[rank,dead_coordinates]']" && exit 2)
	$(BIN)/python -m symexp.evaluate $(DIR) $(ARGS)

audit: $(BIN)/.ready
	@test -n "$(TARGET)" || (echo "usage: make audit TARGET=<job folder | .ckpt | state_dict | module:callable> [ARGS='--data digits']" && exit 2)
	$(BIN)/python -m symexp.audit $(TARGET) $(ARGS)

bench: $(BIN)/.ready
	$(BIN)/python bench/rflr_throughput.py

lint: $(BIN)/.ready
	$(BIN)/ruff check .

clean:
	rm -rf outputs multirun wandb lightning_logs .pytest_cache .ruff_cache
