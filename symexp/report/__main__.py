"""python -m symexp.report DIR [DIR ...] [--wandb]: summary.csv, summary.md and figures in each DIR."""

from __future__ import annotations

import argparse
from pathlib import Path

from symexp.report.aggregate import write_report


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m symexp.report", description=__doc__)
    parser.add_argument("dirs", nargs="+", type=Path, help="folders holding results.json files (any depth)")
    parser.add_argument("--wandb", action="store_true", help="also log the summary as one W&B run")
    args = parser.parse_args(argv)
    for d in args.dirs:
        if not d.is_dir():
            parser.error(f"{d} is not a folder")
        paths = write_report(d, log_wandb=args.wandb)
        for p in paths:
            print(p)


if __name__ == "__main__":
    main()
