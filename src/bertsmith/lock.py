"""Locks between processes. ``exclusive``: a lock on shared storage, so that an artifact that many
search workers need (a supernet) is built by one of them and read by the others. ``held``: a short
lock of the processes that share a directory (writing result files).

The lock is a file created with ``O_CREAT | O_EXCL`` (atomic on local and network file systems),
holding its owner's host and process. While it is held, a thread refreshes its modification time. A
waiter breaks a lock whose owner is a dead process on its own host at once, and any lock not
refreshed for ``stale`` seconds (its owner was killed on another machine), so a killed builder does
not block the others; the next holder resumes the build from its checkpoints.
"""

from __future__ import annotations

import fcntl
import os
import socket
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

STALE_SECONDS = 60.0


@contextmanager
def exclusive(
    path: Path, *, stale: float = STALE_SECONDS, poll: float = 1.0, waiting: Callable[[str], None] | None = None
) -> Iterator[None]:
    """Hold the lock file ``path`` for the body; ``waiting(owner)`` is called once when another
    process holds it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    told = False
    while not _acquire(path):
        owner = _owner(path)
        if owner is not None and _abandoned(path, owner, stale):
            _break(path, owner)
            continue
        if waiting is not None and not told and owner is not None:
            waiting(owner)
            told = True
        time.sleep(poll)
    stop = threading.Event()
    refresher = threading.Thread(target=_refresh, args=(path, stop, stale / 4), daemon=True)
    refresher.start()
    try:
        yield
    finally:
        stop.set()
        refresher.join()
        path.unlink(missing_ok=True)


@contextmanager
def held(path: Path) -> Iterator[None]:
    """Hold the advisory lock (``flock``) of the file ``path`` for the body."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        yield


def _acquire(path: Path) -> bool:
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(f"{socket.gethostname()} {os.getpid()}\n")
    return True


def _owner(path: Path) -> str | None:
    """'HOST PID' of the holder; None when the lock vanished (or is being written) meanwhile."""
    try:
        return path.read_text(encoding="utf-8").strip() or None
    except FileNotFoundError:
        return None


def _abandoned(path: Path, owner: str, stale: float) -> bool:
    host, _, pid = owner.partition(" ")
    if host == socket.gethostname() and pid.isdigit() and not alive(int(pid)):
        return True
    try:
        return time.time() - path.stat().st_mtime > stale
    except FileNotFoundError:
        return False


def _break(path: Path, owner: str) -> None:
    """Remove the abandoned lock of ``owner``. Of several waiters breaking it at once one rename wins;
    a waiter that took away a lock just made by another (not ``owner``'s) puts it back."""
    aside = path.with_name(f"{path.name}.broken-{socket.gethostname()}-{os.getpid()}")
    try:
        os.rename(path, aside)
    except FileNotFoundError:
        return
    if _owner(aside) != owner:
        try:
            os.link(aside, path)
        except FileExistsError:
            pass
    aside.unlink(missing_ok=True)


def _refresh(path: Path, stop: threading.Event, every: float) -> None:
    while not stop.wait(every):
        try:
            os.utime(path)
        except FileNotFoundError:
            return


def alive(pid: int) -> bool:
    """Whether process ``pid`` of this host exists."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
