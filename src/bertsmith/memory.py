"""Process memory: hand freed heap pages back to the system, and the peak resident set of a stretch
of work (Linux; elsewhere these do nothing and report None)."""

from __future__ import annotations

import ctypes
import gc
from pathlib import Path

_STATUS, _CLEAR_REFS = Path("/proc/self/status"), Path("/proc/self/clear_refs")


def release_memory() -> None:
    """Collect garbage and hand freed heap pages back to the system (glibc's ``malloc_trim``; nothing
    elsewhere). Trainings with many tensor shapes leave glibc's heap fragmented, and a long run
    that goes from stage to stage in one process would otherwise keep growing."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def reset_peak() -> None:
    """Start a new peak: the kernel's high-water mark of resident memory is set to the current size."""
    try:
        _CLEAR_REFS.write_text("5")
    except OSError:
        pass


def peak_rss_gb() -> float | None:
    """The peak resident memory (GiB) since the process started or the last ``reset_peak``."""
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 2**20, 3)
    except OSError:
        pass
    return None
