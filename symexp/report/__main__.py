"""python -m symexp.report DIR [DIR ...] [--out OUT] [--wandb]: summary.csv, summary.md and figures.

One DIR: the report is written into it. Several: their jobs are merged into one report (in OUT, default
outputs/reports/<time>), whose `source` column and "Sources" section say which folder each job came from.
"""

from __future__ import annotations

import argparse
import datetime
from pathlib import Path

from symexp.report.aggregate import write_report
from symexp.schema import _root


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m symexp.report", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dirs", nargs="+", type=Path, help="folders holding results.json files (any depth)")
    parser.add_argument("--out", type=Path, default=None, help="where a merged report goes (several DIRs)")
    parser.add_argument("--wandb", action="store_true", help="also log the summary as one W&B run")
    args = parser.parse_args(argv)
    for d in args.dirs:
        if not d.is_dir():
            parser.error(f"{d} is not a folder")
    if len(args.dirs) == 1 and args.out is None:
        paths = write_report(args.dirs[0], log_wandb=args.wandb)
    else:
        stamp = datetime.datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
        out = args.out or Path(_root()) / "outputs" / "reports" / stamp
        paths = write_report(out, log_wandb=args.wandb, sources=args.dirs)
    for p in paths:
        print(p)


if __name__ == "__main__":
    main()
