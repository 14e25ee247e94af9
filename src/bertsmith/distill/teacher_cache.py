"""The teacher's outputs on the training data, computed once and read back from disk.

A distillation step runs the teacher on the batch, and for a small student that forward pass is a
large part of the step. It gives the same result every time it sees an example (the teacher is
frozen and in eval mode: no dropout), so the first time training meets an example its outputs are
stored, and every later time they are read back: in later epochs, in the other finalists and
baselines distilled from the same teacher, in a search's short distillations, and in reruns.

Stored per train example, under ``CACHE/teacher-outputs/<key>/``:

- the teacher's predictions (fp32), always;
- its hidden states (the embedding output and every layer's output, fp16) when the whole split's
  fit the disk budget ``BERTSMITH_TEACHER_CACHE_GB`` (default 4 GB for all caches together, the least
  recently used deleted to make room for a new one; ``0`` turns the cache off) and
  every layer of the teacher is plain self-attention (``mhsa``). The attention terms' inputs (a
  layer's Q, K and V for the relation loss, its scores for the score loss) are not stored: they are
  recomputed from the cached input of that layer by the teacher's own projection, a small part of
  its forward pass. Without stored hidden states, an objective with hidden or attention terms runs
  the teacher as before.

Every step reads its teacher outputs from the cache, the first sight of an example included (its
rows are written, then read), so a run gives the same result with a cold or a warm cache. The fp16
rounding of the hidden states (a relative error of about 5e-4) is the only difference from running
the teacher in each step.

The key hashes the teacher's weights as they are (after any reordering of its units), the
examples' tokens, the teacher's precision (bf16 autocast or fp32) and the format: another teacher,
other data or another precision never read it. Files are preallocated (a full disk fails at once,
with a message, rather than in the middle of training) and read and written with positioned I/O,
not memory maps, so that cached pages never count as the process's memory. One flag byte per
example is written after its rows, so a killed run leaves only complete flagged rows.
"""

from __future__ import annotations

import errno
import hashlib
import json
import math
import os
import shutil
import time
import weakref
from pathlib import Path

import numpy as np
import torch

from ..errors import CacheError, ConfigError
from ..files import atomic_write_text, digest
from ..modeling import BertsmithForSequenceClassification

ENV = "BERTSMITH_TEACHER_CACHE_GB"
DEFAULT_GB = 4.0
FORMAT = 1
META = "meta.json"
FILES = ("flags.u8", "logits.f32", "hidden.f16")


def budget_bytes() -> int:
    """The disk budget of all teacher caches from ``BERTSMITH_TEACHER_CACHE_GB`` (0: no cache)."""
    text = os.environ.get(ENV, "").strip()
    if not text:
        return int(DEFAULT_GB * 2**30)
    try:
        gb = float(text)
    except ValueError:
        gb = math.nan
    if not math.isfinite(gb) or gb < 0:
        raise ConfigError(f"{ENV} = {text!r}: expected a size in GB, 0 or more (0 turns the teacher cache off)")
    return int(gb * 2**30)


def weights_digest(model: torch.nn.Module) -> str:
    """sha256 over a model's class, parameter and buffer names, dtypes, shapes and values."""
    h = hashlib.sha256(type(model).__name__.encode())
    for name, tensor in model.state_dict().items():
        t = tensor.detach().cpu().contiguous()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)}".encode())
        h.update(t.view(torch.uint8).numpy() if t.numel() else b"")
    return h.hexdigest()


def tokens_digest(encoded) -> str:
    """sha256 of a tokenized split's token ids, token types and example boundaries."""
    h = hashlib.sha256()
    for array in (encoded.input_ids, encoded.token_type_ids, encoded.offsets):
        h.update(np.ascontiguousarray(array, dtype=np.int64).tobytes())
    return h.hexdigest()


class TeacherCache:
    """One cache directory: ``filled(ids)``, ``write(ids, logits, hidden)``, ``predictions(ids)`` and
    ``hidden_states(ids, length)``."""

    def __init__(self, directory: Path, offsets: np.ndarray, classes: int, hidden: tuple[int, int] | None):
        self.directory, self.offsets, self.classes, self.hidden_shape = directory, offsets, classes, hidden
        n = len(offsets) - 1
        self._fds = {name: os.open(directory / name, os.O_RDWR) for name in FILES if (directory / name).exists()}
        weakref.finalize(self, _close_all, list(self._fds.values()))  # closed with the object
        self._flags = np.zeros(n, dtype=np.uint8)
        self._logits = np.zeros((n, classes), dtype=np.float32)
        self._reload()

    @property
    def hidden(self) -> bool:
        """Whether hidden states are stored (not just predictions)."""
        return self.hidden_shape is not None

    @classmethod
    def open(
        cls, teacher: torch.nn.Module, encoded, *, root: Path, bf16: bool, budget: int | None = None
    ) -> TeacherCache | None:
        """The cache of ``teacher`` (a sequence-classification model) on the split ``encoded``, created
        when missing; None when the budget is 0 or too small for the predictions alone."""
        budget = budget_bytes() if budget is None else budget
        if budget == 0 or not isinstance(teacher, BertsmithForSequenceClassification):
            return None
        spec = teacher.encoder.spec
        n, tokens, classes = len(encoded), int(encoded.offsets[-1]), teacher.num_labels
        hidden = (spec.num_layers + 1, spec.hidden)
        sizes = {"flags.u8": n, "logits.f32": 4 * n * classes, "hidden.f16": 2 * tokens * hidden[0] * hidden[1]}
        if sizes["flags.u8"] + sizes["logits.f32"] > budget:
            return None
        if sum(sizes.values()) > budget or any(layer.attention.kind != "mhsa" for layer in spec.layers):
            hidden, sizes["hidden.f16"] = None, 0
        meta = {
            "format": FORMAT,
            "teacher": weights_digest(teacher),
            "tokens": tokens_digest(encoded),
            "precision": "bf16" if bf16 else "fp32",
            "examples": n,
            "token_count": tokens,
            "classes": classes,
            "hidden": list(hidden) if hidden else None,
        }
        key = digest(meta)[:24]
        directory = Path(root) / "teacher-outputs" / key
        if not (directory / META).is_file():
            _make_room(directory.parent, sum(sizes.values()), budget)
            _create(directory, meta, sizes)
        _mark_used(directory)
        try:
            stored = json.loads((directory / META).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            stored = None
        if stored != meta:
            raise CacheError(
                f"{directory}: this teacher cache's {META} does not describe this teacher and data; "
                f"delete the directory"
            )
        for name, size in sizes.items():
            found = (directory / name).stat().st_size if (directory / name).exists() else 0
            if found != size:
                raise CacheError(
                    f"{directory / name}: {found:,} bytes where the teacher cache needs {size:,}; "
                    f"the cache is damaged: delete {directory}"
                )
        return cls(directory, np.asarray(encoded.offsets, dtype=np.int64), classes, hidden)

    # ---- flags and predictions (held in memory, written through) ----------------------------------
    def _reload(self) -> None:
        """Take in the rows that the files hold and memory does not (another process may add rows)."""
        flags = np.frombuffer(os.pread(self._fds["flags.u8"], len(self._flags), 0), dtype=np.uint8)
        row = 4 * self.classes
        for i in np.flatnonzero(flags & ~self._flags):
            self._logits[i] = np.frombuffer(os.pread(self._fds["logits.f32"], row, row * int(i)), dtype=np.float32)
            self._flags[i] = 1

    def filled(self, ids: np.ndarray) -> np.ndarray:
        """Per example id, whether its outputs are stored."""
        have = self._flags[ids].astype(bool)
        if not have.all():
            self._reload()
            have = self._flags[ids].astype(bool)
        return have

    # ---- rows ------------------------------------------------------------------------------------
    def write(self, ids: np.ndarray, logits: torch.Tensor, hidden: tuple[torch.Tensor, ...] | None) -> None:
        """Store the outputs of a batch of examples (``hidden``: the teacher's hidden states [B, T, H],
        T at least each example's length), then flag them. A batch whose hidden states overflow fp16 is
        not stored (its examples are computed again when met)."""
        rows = None
        if self.hidden:
            h = torch.stack(hidden).detach().to(torch.float16)
            if not bool(torch.isfinite(h).all()):
                return
            rows = h.cpu().numpy().transpose(1, 2, 0, 3)  # [B, T, layers, H]
        values = logits.detach().float().cpu().numpy()
        try:
            for r, i in enumerate(ids):
                self._logits[i] = values[r]
                os.pwrite(self._fds["logits.f32"], values[r].tobytes(), 4 * self.classes * int(i))
                if rows is not None:
                    start, end = self.offsets[i], self.offsets[i + 1]
                    block = np.ascontiguousarray(rows[r, : end - start])
                    os.pwrite(self._fds["hidden.f16"], block.tobytes(), int(start) * block[0].nbytes)
            for i in ids:  # after the rows they flag
                os.pwrite(self._fds["flags.u8"], b"\x01", int(i))
                self._flags[i] = 1
        except OSError as e:
            raise CacheError(
                f"{self.directory}: cannot write the teacher cache ({e.strerror}); set {ENV}=0 to train without it"
            ) from None

    def predictions(self, ids: np.ndarray) -> torch.Tensor:
        """The teacher's predictions [B, C] on flagged examples."""
        return torch.from_numpy(self._logits[ids].copy())

    def hidden_states(self, ids: np.ndarray, length: int) -> tuple[torch.Tensor, ...]:
        """The teacher's hidden states on flagged examples: per layer a [B, length, H] fp32 tensor,
        zero past each example's end."""
        layers, width = self.hidden_shape
        out = np.zeros((layers, len(ids), length, width), dtype=np.float16)
        row_bytes = 2 * layers * width
        for r, i in enumerate(ids):
            start, end = int(self.offsets[i]), int(self.offsets[i + 1])
            block = np.frombuffer(
                os.pread(self._fds["hidden.f16"], (end - start) * row_bytes, start * row_bytes), dtype=np.float16
            ).reshape(end - start, layers, width)
            out[:, r, : end - start] = block.transpose(1, 0, 2)
        return tuple(torch.from_numpy(out).float().unbind(0))


def _make_room(parent: Path, need: int, budget: int) -> None:
    """Delete the least recently used caches under ``parent`` until ``need`` more bytes fit ``budget``.
    A process still using a deleted cache goes on reading and writing its open files (Linux keeps them
    until they are closed); its later rows are simply not kept."""
    if not parent.is_dir():
        return
    caches = sorted((d for d in parent.iterdir() if (d / META).is_file()), key=lambda d: (d / META).stat().st_mtime_ns)
    sizes = {d: sum(f.stat().st_size for f in d.iterdir() if f.is_file()) for d in caches}
    used = sum(sizes.values())
    for d in caches:
        if used + need <= budget:
            break
        shutil.rmtree(d, ignore_errors=True)
        used -= sizes[d]


def _mark_used(directory: Path) -> None:
    """Record ``directory`` as the most recently used cache for ``_make_room``: its meta.json's mtime is set
    strictly after every other cache's, since the file system's clock may not tick between two uses."""
    others = [
        (d / META).stat().st_mtime_ns for d in directory.parent.iterdir() if d != directory and (d / META).is_file()
    ]
    now = max([time.time_ns(), *(t + 1 for t in others)])
    os.utime(directory / META, ns=(now, now))


def _close_all(fds: list[int]) -> None:
    for fd in fds:
        os.close(fd)


def _create(directory: Path, meta: dict, sizes: dict[str, int]) -> None:
    """Preallocate the cache's files in a scratch directory and move it into place (a process that
    loses the race to another uses the other's)."""
    scratch = directory.parent / f".tmp-{directory.name}-{os.getpid()}"
    try:
        scratch.mkdir(parents=True, exist_ok=True)
        for name, size in sizes.items():
            if size == 0:
                continue
            with open(scratch / name, "wb") as f:
                if hasattr(os, "posix_fallocate"):
                    os.posix_fallocate(f.fileno(), 0, size)
                else:
                    f.truncate(size)
        atomic_write_text(scratch / META, json.dumps(meta, indent=1))
        try:
            os.rename(scratch, directory)
        except OSError as e:
            if e.errno not in (errno.EEXIST, errno.ENOTEMPTY) or not (directory / META).is_file():
                raise
    except OSError as e:
        need = sum(sizes.values()) / 2**30
        raise CacheError(
            f"{directory.parent}: cannot create a teacher cache of {need:.2f} GB ({e.strerror}); "
            f"free space, point BERTSMITH_CACHE elsewhere, or set {ENV} lower (0: no cache)"
        ) from None
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
