"""symexp entry point: `python launch.py [overrides]`; all logic lives in symexp.run.

Only what composing a config needs is imported here: `--help`, `--cfg`, `--info` and shell completion
answer without loading torch or Lightning, which the job imports when it starts.
"""

import sys

import hydra
from omegaconf import DictConfig

from symexp.cli import help_requested, print_help, run_job  # also registers the schema and resolvers


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> float | None:
    return run_job(cfg)


if __name__ == "__main__":
    if help_requested(sys.argv[1:]):
        print_help()
    else:
        main()
