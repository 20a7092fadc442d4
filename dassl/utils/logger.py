"""Tee of stdout into a log file."""
from __future__ import annotations

import os
import os.path as osp
import sys
import time
from typing import IO

from .tools import mkdir_if_missing

__all__ = ["Logger", "setup_logger"]


class Logger:
    """Write everything to the previous stdout and to `fpath` (created with its parent dir)."""

    def __init__(self, fpath: str | None = None) -> None:
        self.console: IO[str] = sys.stdout
        self.file: IO[str] | None = None
        if fpath is not None:
            mkdir_if_missing(osp.dirname(fpath))
            # Line-buffered so that a killed run keeps its log up to the last line.
            self.file = open(fpath, "w", buffering=1)

    def write(self, msg: str) -> None:
        self.console.write(msg)
        if self.file is not None:
            self.file.write(msg)

    def flush(self) -> None:
        self.console.flush()
        if self.file is not None:
            self.file.flush()
            os.fsync(self.file.fileno())

    def close(self) -> None:
        # The console stream belongs to whoever owned sys.stdout before: leave it open.
        if self.file is not None:
            self.file.close()
            self.file = None

    def __getattr__(self, name: str):
        # isatty, encoding, fileno, ... as the console has them
        return getattr(self.console, name)


def setup_logger(output: str | None = None) -> None:
    """Tee stdout to `output` (a .txt/.log file, or a directory holding log.txt).

    An existing file is never overwritten: a "-%Y-%m-%d-%H-%M-%S" suffix is appended instead.
    """
    if output is None:
        return
    if output.endswith(".txt") or output.endswith(".log"):
        fpath = output
    else:
        fpath = osp.join(output, "log.txt")
    if osp.exists(fpath):
        fpath += time.strftime("-%Y-%m-%d-%H-%M-%S")
    # A second run in the same process must not keep writing into the first run's file.
    if isinstance(sys.stdout, Logger):
        previous = sys.stdout
        sys.stdout = previous.console
        previous.close()
    sys.stdout = Logger(fpath)
