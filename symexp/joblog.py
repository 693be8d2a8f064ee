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


class JobFileHandler(logging.FileHandler):
    """The job's log file, opened at its first line; when the disk refuses it (full, read-only, quota) it
    says so once, in one line, and the job goes on logging to the console only: without this every
    record would print a 'Logging error' traceback."""

    def __init__(self, filename: str, mode: str = "a", encoding: str | None = None, delay: bool = True,
                 errors: str | None = None) -> None:
        super().__init__(filename, mode, encoding=encoding, delay=delay, errors=errors)
        self._broken = False

    def emit(self, record: logging.LogRecord) -> None:
        if self._broken:
            return
        try:
            super().emit(record)
        except OSError:  # opening the (delayed) file raises out of FileHandler.emit, past its own handler
            self.handleError(record)

    def handleError(self, record: logging.LogRecord) -> None:
        import sys

        from symexp.folder import disk_error

        exc = sys.exc_info()[1]
        reason = disk_error(exc) if isinstance(exc, OSError) else None
        if reason is None:
            super().handleError(record)
            return
        self._broken = True
        print(f"symexp: cannot write the job log {self.baseFilename} ({reason}); logging to the console only",
              file=sys.stderr)
        try:
            self.close()
        except OSError:
            self.stream = None


def _file_handlers(logger: logging.Logger) -> list[logging.FileHandler]:
    return [h for h in logger.handlers if isinstance(h, logging.FileHandler)]


@contextmanager
def job_log(job_dir: Path) -> Iterator[logging.Logger]:
    """A logger whose records reach only the job's log file(s); Lightning's lines go there too."""
    root = logging.getLogger()
    own: logging.FileHandler | None = None
    handlers = [h for h in _file_handlers(root) if Path(h.baseFilename).parent == Path(job_dir).resolve()]
    if not handlers:
        own = JobFileHandler(str(Path(job_dir) / "run.log"))  # no file until the run writes a line
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
