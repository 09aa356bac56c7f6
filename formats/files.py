"""Atomic file writes: every file other code reads back (configs, checkpoints, demo files, plots)
is written whole or not at all, so a crash never leaves half a file behind."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO


def atomic_write(path: str | os.PathLike[str], write: Callable[[BinaryIO], object]) -> None:
    """Write a file atomically: `write(f)` fills a temp file, which is fsynced and renamed over
    `path`, then the directory is fsynced. A crash leaves the old file or the new one, never half."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


class DirectoryLocked(ValueError):
    """Another live process holds the directory's lock."""


class DirectoryLock:
    """An exclusive lock on a directory (`<directory>/.lock`, flock): one process at a time may own
    a spool or a run directory. The kernel drops the lock when the holder dies, however it dies, so
    a SIGKILLed process never leaves a stale lock; the file keeps the holder's PID for the error."""

    def __init__(self, directory: str | os.PathLike[str], what: str) -> None:
        import fcntl

        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / ".lock"
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(self._fd, 64, 0).decode(errors="replace").strip() or "unknown"
            os.close(self._fd)
            raise DirectoryLocked(
                f"{what} {self.directory} is in use by another process (PID {holder}); stop it first "
                "or choose another directory"
            ) from None
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, f"{os.getpid()}\n".encode(), 0)

    def release(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = -1

    def __enter__(self) -> DirectoryLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
