"""Files that bertsmith hands to the user: their mode, output paths that cannot be written, atomic
writes, and the digests of files and values.

Atomic writes go through a temporary file (``tempfile.mkstemp``, safetensors' ``save_file``) that is
private, mode 0600; renamed into place, it would stay so. ``publish`` gives it the mode that the
user's umask gives a file they create themselves (0644 under the usual umask 022).

An output path under a regular file, in a directory without write permission, on a full disk or a
read-only file system is one ``OutputError`` line naming the path and the OS error: ``writable_dir``
checks a directory before the expensive work that fills it, ``writing`` turns an OSError of a write
that fails anyway (a disk that fills up midway) into that line. Atomic writes never leave a partial
file that looks complete.

This module is bertsmith's one home for atomic writes: ``atomic_file`` (any file, written through a
temporary path), ``atomic_write_text`` (a text file) and ``atomic_dir`` (a whole directory, such as an
export).

The digests that key studies, caches and run directories (``digest`` of a value, ``files_digest`` of
a directory, ``path_digest`` of a file or a directory) live here too, so that there is one of each kind.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import CheckpointError, OutputError

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


@contextmanager
def atomic_file(path: Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success it replaces ``path`` in one rename, with
    the mode of an ordinary file. An OSError is an ``OutputError`` naming ``path``."""
    with writing(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.close(fd)
        try:
            yield Path(tmp)
            publish(tmp)
            os.replace(tmp, path)
        finally:
            Path(tmp).unlink(missing_ok=True)


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` through ``atomic_file``: never a half-written file."""
    with atomic_file(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


@contextmanager
def atomic_dir(path: Path, *, marker: str | None = None) -> Iterator[Path]:
    """Yield a temporary directory next to ``path``; on success it replaces ``path`` by renames, with
    the mode of an ordinary directory: an earlier directory there stays whole until the new one is
    complete, and an interrupted write leaves no temporary behind. A ``path`` that is a file, or a
    non-empty directory without the file ``marker`` (so not an earlier write of the same kind), is
    refused rather than replaced. An OSError, also one of a write into the temporary directory, is an
    ``OutputError`` naming ``path``."""
    path = Path(os.path.abspath(path))
    if path.exists() and not path.is_dir():
        raise CheckpointError(f"{path}: exists and is not a directory")
    if marker is not None and path.is_dir() and any(path.iterdir()) and not (path / marker).exists():
        raise CheckpointError(f"{path}: exists, is not empty and holds no {marker}; not replacing it")
    with writing(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"))
        try:
            try:
                yield tmp
            except OutputError as exc:  # a write into ``tmp`` that failed: name ``path``, not the temporary
                if not isinstance(exc.__cause__, OSError):
                    raise
                raise exc.__cause__ from None
            os.chmod(tmp, dir_mode())  # mkdtemp makes it private
            if path.exists():
                old = tmp.with_suffix(".old")
                os.rename(path, old)
                try:
                    os.rename(tmp, path)
                except BaseException:
                    os.rename(old, path)
                    raise
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.rename(tmp, path)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)


def digest(value: object) -> str:
    """sha256 of a JSON-serialisable value (sorted keys)."""
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


def files_digest(directory: str | os.PathLike, names: tuple[str, ...] | None = None) -> str:
    """sha256 over the regular files of a directory (name and content), e.g. a checkpoint: the key
    of anything derived from it. ``names``: only those files."""
    h = hashlib.sha256()
    for path in sorted(Path(directory).iterdir()):
        if path.is_file() and (names is None or path.name in names):
            h.update(path.name.encode() + b"\0")
            with path.open("rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    h.update(chunk)
    return h.hexdigest()


def path_digest(path: str | os.PathLike) -> str:
    """``files_digest`` of a directory, the sha256 of a file's content."""
    path = Path(path)
    return files_digest(path) if path.is_dir() else hashlib.sha256(path.read_bytes()).hexdigest()
