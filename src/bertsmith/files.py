"""Files that bertsmith hands to the user: their mode, and output paths that cannot be written.

Atomic writes go through a temporary file (``tempfile.mkstemp``, safetensors' ``save_file``) that is
private, mode 0600; renamed into place, it would stay so. ``publish`` gives it the mode that the
user's umask gives a file they create themselves (0644 under the usual umask 022).

An output path under a regular file, in a directory without write permission, on a full disk or a
read-only file system is one ``OutputError`` line naming the path and the OS error: ``writable_dir``
checks a directory before the expensive work that fills it, ``writing`` turns an OSError of a write
that fails anyway (a disk that fills up midway) into that line. Atomic writes never leave a partial
file that looks complete.
"""

from __future__ import annotations

import errno
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import OutputError

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


def _refusal(path: Path, code: int, detail: str = "") -> OutputError:
    advice = "free space or write elsewhere" if code in (errno.ENOSPC, errno.EDQUOT) else "choose a writable location"
    return OutputError(f"{path}: cannot write ({os.strerror(code)}{detail}); {advice}", code, str(path))


@contextmanager
def writing(path: str | os.PathLike) -> Iterator[None]:
    """Turn an OSError raised while writing ``path`` into an ``OutputError`` naming it."""
    try:
        yield
    except OutputError:
        raise
    except OSError as exc:
        where = f": {exc.filename}" if exc.filename and str(exc.filename) != str(path) else ""
        raise _refusal(Path(path), exc.errno or errno.EIO, where) from exc


def writable_dir(directory: str | os.PathLike) -> None:
    """Refuse, before any work and without creating anything, a directory that cannot be created or
    written in: one at or under a regular file, or whose nearest existing directory is not writable."""
    directory = Path(os.path.abspath(directory))
    existing = next(p for p in (directory, *directory.parents) if p.exists())
    if not existing.is_dir():
        raise _refusal(directory, errno.ENOTDIR, f": {existing} is a file")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise _refusal(directory, errno.EACCES, f": {existing}" if existing != directory else "")


def writable_file(path: str | os.PathLike) -> None:
    """``writable_dir`` for the directory of the file ``path``, which must not be a directory itself."""
    path = Path(path)
    if path.is_dir():
        raise _refusal(path, errno.EISDIR)
    writable_dir(path.parent)
