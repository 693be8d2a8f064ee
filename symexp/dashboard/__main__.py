"""python -m symexp.dashboard SWEEP_DIR [--online] [--entity E] [--project P]

Writes the sweep's W&B workspace and report specs to SWEEP_DIR/dashboard/{workspace,report}.json (offline,
no account needed). Online (--online, or the sweep's logger.mode / WANDB_MODE resolving to online) it also
creates both in W&B and prints their URLs. Project and entity default to the sweep's own logger settings."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from symexp.dashboard import DashboardError, write


def main(argv: list[str] | None = None) -> int:
    from symexp.loggers import wandb_identity
    from symexp.report.sweep import read_sweep

    parser = argparse.ArgumentParser(prog="python -m symexp.dashboard", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sweep_dir", type=Path, help="a sweep folder (outputs/sweeps/<name>/<stamp>)")
    parser.add_argument("--online", action="store_true", help="also create the workspace and report in W&B")
    parser.add_argument("--entity", default=None, help="W&B entity (default: the sweep's logger.entity)")
    parser.add_argument("--project", default=None, help="W&B project (default: the sweep's logger.project)")
    args = parser.parse_args(argv)
    online = args.online or (args.sweep_dir.is_dir()
                             and wandb_identity(read_sweep(args.sweep_dir).logger_config())["mode"] == "online")
    try:
        written = write(args.sweep_dir, args.entity, args.project, online=online)
    except DashboardError as exc:
        print(f"symexp.dashboard: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:
        if not online:
            raise
        # W&B unreachable, no key, no permission: the specs are written before anything goes online
        reason = str(exc).splitlines()[0][:300] if str(exc) else ""
        print(f"symexp.dashboard: creating the dashboard in W&B failed ({type(exc).__name__}: {reason}); "
              f"the JSON specs are in {args.sweep_dir / 'dashboard'}", file=sys.stderr)
        return 1
    print(f"{written.family} dashboard: {written.workspace}, {written.report}")
    for url in written.urls:
        print(url)
    return 0


if __name__ == "__main__":
    sys.exit(main())
