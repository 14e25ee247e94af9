"""An export directory, written in one piece: the Hugging Face directory (``export_pretrained``),
optionally ``model.onnx`` checked against PyTorch and its int8 twin ``model.int8.onnx``.

``bertsmith export`` and ``bertsmith run`` (``export_card.write_export``) both write through
``write_export_dir``. Everything is assembled in a temporary sibling and renamed into place
(``files.atomic_dir``), so a refused or interrupted export leaves an earlier export at the same path
intact and never a directory that looks complete.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

from ..errors import CheckpointError
from ..files import atomic_dir
from ..latency import random_batch
from .export import describe, export_onnx, export_pretrained, onnx_max_abs_diff

ONNX_TOLERANCE = 1e-3  # max abs difference of the outputs, onnxruntime vs PyTorch


@dataclass(frozen=True)
class ExportDir:
    """What ``write_export_dir`` wrote: the directory, the kind of Hugging Face directory ("bert",
    "convbert", ..., or "remote" for ``trust_remote_code``), the ONNX check and the int8 fusions
    (None where no such file was asked for) and each file's size in MB."""

    directory: Path
    kind: str
    onnx_max_abs_diff: float | None = None
    int8_fusions: dict[str, int] | None = None
    files_mb: dict[str, float] = field(default_factory=dict)

    @property
    def onnx(self) -> Path | None:
        return self.directory / "model.onnx" if self.onnx_max_abs_diff is not None else None

    @property
    def int8_onnx(self) -> Path | None:
        return self.directory / "model.int8.onnx" if self.int8_fusions is not None else None


def write_export_dir(
    model,
    out: str | os.PathLike,
    *,
    tokenizer_dir: str | os.PathLike | None = None,
    labels: Sequence[str] | None = None,
    dtype: torch.dtype | None = None,
    onnx: bool = False,
    quantize: bool = False,
    per_channel: bool = True,
    seq_len: int = 128,
    finish: Callable[[Path, ExportDir], None] | None = None,
) -> ExportDir:
    """Write ``model`` (a bertsmith model or ImportedModel) to ``out`` with ``export_pretrained``'s
    arguments (``tokenizer_dir``, ``labels``, ``dtype``); with ``onnx`` also ``model.onnx`` (traced at
    ``seq_len`` tokens; a CheckpointError if onnxruntime's outputs differ from PyTorch's by more than
    ``ONNX_TOLERANCE``), with ``quantize`` also ``model.int8.onnx`` (implies ``onnx``; one scale per
    output channel with ``per_channel``). ``finish(directory, written)`` may add files to the
    unfinished directory before it replaces ``out``. Returns what was written."""
    out = Path(os.path.abspath(out))
    onnx = onnx or quantize
    with atomic_dir(out, marker="config.json") as tmp:
        written = ExportDir(out, export_pretrained(model, tmp, tokenizer_dir=tokenizer_dir, labels=labels, dtype=dtype))
        if onnx:
            written = replace(written, onnx_max_abs_diff=_checked_onnx(model, tmp / "model.onnx", out, seq_len))
        if quantize:
            from .deploy import quantize_onnx  # ONNX's packages (slow to import): only to write the int8 file

            fusions = quantize_onnx(tmp / "model.onnx", tmp / "model.int8.onnx", per_channel=per_channel)
            written = replace(written, int8_fusions=fusions)
        if finish is not None:
            finish(tmp, written)
        sizes = {p.name: round(p.stat().st_size / 1e6, 2) for p in sorted(tmp.iterdir()) if p.is_file()}
    return replace(written, files_mb=sizes)


def _checked_onnx(model, path: Path, out: Path, seq_len: int) -> float:
    """Write ``model`` as ONNX to ``path`` and return its largest difference from PyTorch on random
    tokens; a difference over ``ONNX_TOLERANCE`` is a CheckpointError naming the file's final place
    in ``out``."""
    export_onnx(model, path, seq_len=seq_len)
    vocab_size = describe(model)[2].embeddings.vocab_size
    diff = onnx_max_abs_diff(model, path, random_batch(vocab_size, 2, seq_len))
    if not diff <= ONNX_TOLERANCE:
        raise CheckpointError(
            f"{out / path.name}: onnxruntime's outputs differ from PyTorch's by {diff:.2e} "
            f"(more than {ONNX_TOLERANCE:g}); nothing was written"
        )
    return diff
