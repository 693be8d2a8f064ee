"""Every job folder keeps a log file of what happened: the job's own lines, Lightning's, and the full
traceback of a failure, which the terminal shows only as one line for errors the user can fix.

Under Hydra the file is Hydra's job log (``<job>/<task name>.log``, e.g. launch.log); in-process runs
without Hydra's logging (tests, symexp.evaluate) get ``<job>/run.log``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

FORMAT = "[%(asctime)s][%(name)s][%(levelname)s] - %(message)s"


def _file_handlers(logger: logging.Logger) -> list[logging.FileHandler]:
    return [h for h in logger.handlers if isinstance(h, logging.FileHandler)]


@contextmanager
def job_log(job_dir: Path) -> Iterator[logging.Logger]:
    """A logger whose records reach only the job's log file(s); Lightning's lines go there too."""
    root = logging.getLogger()
    own: logging.FileHandler | None = None
    handlers = [h for h in _file_handlers(root) if Path(h.baseFilename).parent == Path(job_dir).resolve()]
    if not handlers:
        own = logging.FileHandler(Path(job_dir) / "run.log", delay=True)  # no file until the run writes a line
        own.setFormatter(logging.Formatter(FORMAT))
        handlers = [own]
    file_only = logging.getLogger("symexp.job")
    file_only.propagate = False
    file_only.setLevel(logging.INFO)
    lightning = logging.getLogger("lightning.pytorch")
    # Lightning's logger stops propagating when it was imported before logging was configured
    attached = [] if lightning.propagate else [h for h in handlers if h not in lightning.handlers]
    for h in handlers:
        file_only.addHandler(h)
    for h in attached:
        lightning.addHandler(h)
    try:
        yield file_only
    finally:
        for h in handlers:
            file_only.removeHandler(h)
        for h in attached:
            lightning.removeHandler(h)
        if own is not None:
            own.close()


def log_traceback(job_logger: logging.Logger, text: str) -> None:
    job_logger.error("traceback:\n%s", text.rstrip())
