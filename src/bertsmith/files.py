"""Files that bertsmith hands to the user get the mode of an ordinary file.

Atomic writes go through a temporary file (``tempfile.mkstemp``, safetensors' ``save_file``) that is
private, mode 0600; renamed into place, it would stay so. ``publish`` gives it the mode that the
user's umask gives a file they create themselves (0644 under the usual umask 022).
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

_UMASK_LOCK = threading.Lock()


def umask() -> int:
    """The process's umask. Linux shows it in /proc/self/status; elsewhere it is read by setting and
    restoring it, under a lock and through the restrictive 0o077 (os.umask is process-global: a file
    another thread creates in between is private rather than open to all)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    with _UMASK_LOCK:
        mask = os.umask(0o077)
        os.umask(mask)
    return mask


def file_mode() -> int:
    """The mode the umask gives a new ordinary file."""
    return 0o666 & ~umask()


def dir_mode() -> int:
    """The mode the umask gives a new directory."""
    return 0o777 & ~umask()


def publish(path: str | os.PathLike) -> None:
    """Give a temporary file, before it is renamed into place, the mode of an ordinary file."""
    os.chmod(path, file_mode())
