"""One owner per data dir: an exclusive `flock` on `<data dir>/afep.lock`, holding the owner's PID.

chdb opens one data folder per process and the embedded runtime assumes it is the only
one appending reactions, so `afep serve`, `afep run`, `afep jobs resume` and
`afep projections rebuild` take the lock; commands that only touch the read-model
database (`afep keys ...`) do not. The lock goes with the process, however it ends.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

LOCK_NAME = "afep.lock"


class DataDirInUse(Exception):
    """Another live process owns the data dir; the message names it and what to do."""


class DataDirLock:
    """Held from `acquire` until `release` (or the process's end)."""

    def __init__(self, data_dir: Path, command: str) -> None:
        self.path = data_dir / LOCK_NAME
        self.command = command
        self._fd: int | None = None

    def acquire(self) -> DataDirLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 200).decode(errors="replace").strip()
            os.close(fd)
            pid, _, command = holder.partition(" ")
            raise DataDirInUse(
                f"data dir {self.path.parent} is in use by PID {pid or '?'} ({command or 'afep'}); "
                "stop it or use --data-dir"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()} {self.command}\n".encode())
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> DataDirLock:
        return self.acquire()

    def __exit__(self, *_: object) -> None:
        self.release()
