"""symexp entry point: `python launch.py [overrides]`; all logic lives in symexp.run."""

import hydra
from omegaconf import DictConfig

import symexp.schema  # noqa: F401  (registers the typed schema and resolvers before Hydra composes)
from symexp.run import run


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> float | None:
    return run(cfg)


if __name__ == "__main__":
    main()
