"""A read-only folder for tests that may run as root (where chmod does not stop writes): every way of
writing below the folder fails with EROFS, as on a read-only mount."""

from __future__ import annotations

import builtins
import errno
import logging
import os
import shutil
from pathlib import Path


def install(folder: str) -> None:
    root = Path(folder).resolve()

    def inside(path) -> bool:
        try:
            p = Path(os.fsdecode(path)).resolve()
        except (TypeError, ValueError):
            return False
        return p == root or root in p.parents

    def refuse(path):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), os.fsdecode(path))

    real_open, real_os_open = builtins.open, os.open

    def open_(file, mode="r", *args, **kwargs):
        if isinstance(file, (str, bytes, os.PathLike)) and any(c in mode for c in "wax+") and inside(file):
            refuse(file)
        return real_open(file, mode, *args, **kwargs)

    def os_open(path, flags, *args, **kwargs):
        if flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND) and inside(path):
            refuse(path)
        return real_os_open(path, flags, *args, **kwargs)

    def guard(fn):
        def wrapped(path, *args, **kwargs):
            if inside(path):
                refuse(path)
            return fn(path, *args, **kwargs)
        return wrapped

    def guard2(fn):
        def wrapped(src, dst, *args, **kwargs):
            if inside(src) or inside(dst):
                refuse(dst)
            return fn(src, dst, *args, **kwargs)
        return wrapped

    def mkdir(path, *args, **kwargs):
        if inside(path):
            if Path(os.fsdecode(path)).is_dir():
                raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), os.fsdecode(path))
            refuse(path)
        return real_mkdir(path, *args, **kwargs)

    real_mkdir = os.mkdir
    builtins.open = open_
    os.open = os_open
    os.mkdir = mkdir
    logging.FileHandler._builtin_open = staticmethod(open_)  # logging captured the real open at import
    for name in ("unlink", "remove", "rmdir", "chmod"):
        setattr(os, name, guard(getattr(os, name)))
    for name in ("rename", "replace"):
        setattr(os, name, guard2(getattr(os, name)))
    shutil.rmtree = guard(shutil.rmtree)
