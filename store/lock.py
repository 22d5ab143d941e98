"""One collect at a time per database: an advisory lock on a file beside it.

`<database>.collect-lock` is locked with flock(2) for as long as a collect run writes, and
holds "pid<TAB>started-at<TAB>purpose" so that a second run can say who it is waiting for.
The purpose is "collect", or "finish" for the process that completes a run's search index and
stories after the command (pipeline/collect.py): a collect waits for that one instead of
failing (its work is bounded, and it completes the run before this one). The kernel
drops the lock when its process ends however it ends (kill -9 included), so a lock file left
behind by a dead process never blocks anyone: a stale pid is detected by the lock being free,
not by guessing from the pid. The file itself stays (removing it would race a new holder).

SQLite's own write lock is not enough: a second collect would close the first one's run row
as abandoned, wait for each of its transactions and die with "database is locked" as soon
as one (clustering a large batch) outlasts the busy timeout.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ..errors import CollectRunning, StoreError
from ..timestamps import utcnow

#: What a lock holder does: a collect run, or the completion of one after its command.
COLLECT, FINISH = "collect", "finish"
#: How long a collect waits for a finishing process before saying it is busy (seconds).
FINISH_WAIT_SECONDS = 600.0


@dataclass(frozen=True, slots=True)
class LockHolder:
    """Who holds the collect lock, as its file says."""

    pid: int | None
    since: str | None
    purpose: str = COLLECT


def lock_path(db_path: str | Path) -> Path:
    """The collect lock's file for the database at `db_path`."""
    db_path = Path(db_path)
    return db_path.with_name(db_path.name + ".collect-lock")


def _read_holder(fd: int) -> LockHolder:
    text = ""
    for _ in range(5):  # the holder writes its line just after taking the lock
        text = os.pread(fd, 200, 0).decode("utf-8", "replace").strip()
        if text:
            break
        time.sleep(0.02)
    pid_text, since, purpose = [*text.split("\t"), "", ""][:3]
    return LockHolder(pid=int(pid_text) if pid_text.isdigit() else None, since=since or None,
                      purpose=purpose or COLLECT)


def _open(path: Path) -> int:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o644)
    except OSError as e:
        raise StoreError(f"{path}: cannot open the collect lock: {e.strerror}") from None


def lock_holder(db_path: str | Path) -> LockHolder | None:
    """Who runs a collect on this database now, or None (without taking the lock for long)."""
    path = lock_path(db_path)
    if not path.exists():
        return None
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    except OSError:
        return None
    try:
        try:
            # A shared lock is granted unless a collect holds the exclusive one.
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _read_holder(fd)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def _take(fd: int, wait_for_finish: float) -> None:
    """Take the lock, waiting up to `wait_for_finish` seconds while a finishing process has it."""
    deadline = time.monotonic() + wait_for_finish
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            holder = _read_holder(fd)
            if holder.purpose != FINISH or time.monotonic() > deadline:
                raise CollectRunning(holder.pid, holder.since) from None
        time.sleep(0.1)


def wait_for_finish(db_path: str | Path, timeout: float = FINISH_WAIT_SECONDS) -> bool:
    """Wait while a process completes a run's search index and stories; False on timeout.

    For readers that need the stories complete (drafting an issue): a collect run in
    progress is not waited for, only the bounded work a finished run left.
    """
    deadline = time.monotonic() + timeout
    while (holder := lock_holder(db_path)) is not None and holder.purpose == FINISH:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


@contextlib.contextmanager
def collect_lock(db_path: str | Path, *, purpose: str = COLLECT,
                 wait_for_finish: float = FINISH_WAIT_SECONDS) -> Iterator[LockHolder]:
    """Hold the database's collect lock for the block; CollectRunning at once if a collect has
    it, after `wait_for_finish` seconds if a finishing process has it."""
    path = lock_path(db_path)
    fd = _open(path)
    try:
        _take(fd, wait_for_finish)
        me = LockHolder(pid=os.getpid(), since=utcnow(), purpose=purpose)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{me.pid}\t{me.since}\t{purpose}\n".encode(), 0)
        try:
            yield me
        finally:
            os.ftruncate(fd, 0)  # the next reader sees no holder rather than this old one
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
