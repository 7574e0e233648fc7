"""One writer per run directory: an fcntl lock on `RUN/run.lock`, held while training.

Numbered run directories are created with an atomic mkdir, so two fresh runs never share one;
the lock covers what mkdir cannot: a fixed `--output`, and `--resume` of one run by two
processes (two cron jobs, a retry that starts before the first attempt died). The kernel lets
go of the lock when its process dies, however it dies, so a crash never leaves a stale lock.
The file stays behind and names its last holder; `run.json` says how training ended.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any

from dlcli.errors import ConfigError, RunLockedError

try:  # POSIX; elsewhere runs are not locked
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None  # type: ignore[assignment]

LOCK_FILE = "run.lock"
# `dlcli runs list` takes a shared lock for an instant to see whether a run is live: a
# process that meets it retries once after this long before calling the run busy.
PROBE_GRACE_SECONDS = 0.2

log = logging.getLogger("dlcli")


class RunLock:
    """An exclusive lock on one run directory; `finish` records the outcome and lets go."""

    def __init__(self, run_dir: Path, handle: IO[str]) -> None:
        self.run_dir = run_dir
        self._handle: IO[str] | None = handle

    @classmethod
    def acquire(cls, run_dir: Path, *, wait: bool = False, create: bool = False) -> RunLock:
        """Lock `run_dir` or raise RunLockedError naming the holder (with `wait`: block until
        it is free). `create`: make the directory if it is missing, or removed meanwhile."""
        path = run_dir / LOCK_FILE
        while True:
            if create:
                run_dir.mkdir(parents=True, exist_ok=True)
            elif not run_dir.is_dir():
                raise ConfigError(f"Run directory not found: {run_dir}")
            handle = path.open("a+", encoding="utf-8")
            try:
                _lock_or_wait(handle, path, wait)
                # A run that failed before training is removed with its lock file: a process
                # that waited for it holds a lock on a file that is gone, so it starts over.
                if path.exists() and os.path.samestat(os.fstat(handle.fileno()), path.stat()):
                    break
            except BaseException:
                handle.close()
                raise
            handle.close()
        handle.seek(0)
        handle.truncate()
        holder = {
            "pid": os.getpid(),
            "host": platform.node(),
            "since": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "command": sys.argv,
        }
        handle.write(json.dumps(holder) + "\n")
        handle.flush()
        return cls(run_dir, handle)

    def finish(self, error: BaseException | None = None) -> None:
        """Write how training ended into run.json (unless the run was removed), then unlock."""
        from dlcli import runs

        try:
            if (self.run_dir / runs.META_FILE).is_file():
                runs.record_outcome(self.run_dir, error)
        finally:
            self.release()

    def release(self) -> None:
        if self._handle is not None:
            self._handle.close()  # closing the file releases the lock
            self._handle = None


def refuse_if_held(run_dir: Path | None) -> None:
    """Raise RunLockedError now if another process holds `run_dir`'s lock: checked before
    TensorFlow's import, so a cron job that meets a busy run leaves in a blink. The lock is
    still taken, and checked again, when training starts."""
    path = None if run_dir is None else run_dir / LOCK_FILE
    if path is None or fcntl is None or not path.is_file():
        return
    try:
        handle = path.open("a+", encoding="utf-8")
    except OSError:
        return  # the real acquire reports it
    with handle:
        _lock_or_wait(handle, path, wait=False)  # closing the handle lets go at once


def _lock_or_wait(handle: IO[str], path: Path, wait: bool) -> None:
    if fcntl is None:
        return
    for attempt in range(2):
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if attempt == 0:
                time.sleep(PROBE_GRACE_SECONDS)
    holder = describe_holder(path)
    if not wait:
        raise RunLockedError(
            f"{path.parent} is in use: {holder} is training into it.",
            hint="let it finish, or pass --wait-lock to wait for it",
        )
    log.info("waiting for the lock on %s, held by %s", path.parent, holder)
    fcntl.flock(handle.fileno(), fcntl.LOCK_EX)


def holder_of(run_dir: Path) -> dict[str, Any]:
    """What the lock file says about the process that took the lock last."""
    try:
        data = json.loads((run_dir / LOCK_FILE).read_text(encoding="utf-8") or "{}")
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def describe_holder(path: Path) -> str:
    holder = holder_of(path.parent)
    if "pid" not in holder:
        return "another dlcli process"
    where = f" on {holder['host']}" if holder.get("host") else ""
    since = f" (since {holder['since']})" if holder.get("since") else ""
    return f"dlcli process PID {holder['pid']}{where}{since}"


def is_locked(run_dir: Path) -> bool:
    """Whether a live process holds the lock of `run_dir` (a shared lock, taken for an
    instant: it never blocks anyone for longer than PROBE_GRACE_SECONDS)."""
    path = run_dir / LOCK_FILE
    if fcntl is None or not path.is_file():
        return False
    try:
        with path.open(encoding="utf-8") as handle:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
    except OSError:
        return False
    return False
