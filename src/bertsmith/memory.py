"""Process memory: hand freed heap pages back to the system, and the resident memory of this process
now and at its peak over a stretch of work (Linux; elsewhere these do nothing and report None), with
the peak GPU memory that torch allocated where a CUDA GPU is used."""

from __future__ import annotations

import ctypes
import gc
import threading
from pathlib import Path

import torch

_STATUS = Path("/proc/self/status")


def release_memory() -> None:
    """Collect garbage and hand freed heap pages back to the system (glibc's ``malloc_trim``; nothing
    elsewhere). Trainings with many tensor shapes leave glibc's heap fragmented, and a long run
    that goes from stage to stage in one process would otherwise keep growing."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def rss_gb() -> float | None:
    """The resident memory of this process now (GiB), or None where /proc is not there."""
    try:
        with _STATUS.open() as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 2**20
    except OSError:
        pass
    return None


class PeakMemory:
    """The peak resident memory of a stretch of work (``with PeakMemory() as peak: ...; peak.gb``),
    sampled every ``interval`` seconds by a background thread. Sampling leaves the kernel's own
    high-water mark alone, so ``/usr/bin/time`` and ``getrusage`` still see the whole process's peak."""

    def __init__(self, interval: float = 0.05):
        self.interval, self.gb = interval, rss_gb()
        self.gpu_gb: float | None = None  # torch's peak CUDA allocation, where a GPU is used
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True, name="bertsmith-peak-memory")

    def _sample(self) -> None:
        while True:
            now = rss_gb()
            if now is None:
                return
            self.gb = max(self.gb or 0.0, now)
            if self._stop.wait(self.interval):
                return

    def __enter__(self) -> "PeakMemory":
        if self.gb is not None:
            self._thread.start()
        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()
        return self

    def __exit__(self, *exc) -> None:
        if self._thread.is_alive():
            self._stop.set()
            self._thread.join()
            self._sample()  # the size at the end counts too
        if torch.cuda.is_available():
            self.gpu_gb = torch.cuda.max_memory_allocated() / 2**30
