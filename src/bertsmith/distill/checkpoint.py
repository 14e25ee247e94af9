"""Atomic, resumable training checkpoints in a run directory.

Layout::

    RUN_DIR/checkpoints/step-000120/   model.safetensors, optimizer.pt, state.json
    RUN_DIR/checkpoints/latest         name of the newest complete checkpoint directory
    RUN_DIR/best.safetensors           the best student so far (its step and metrics as metadata)

A checkpoint directory is written under a temporary name and renamed when complete; ``latest`` is
replaced atomically afterwards, so a kill at any moment leaves the previous checkpoint intact.
Weights are safetensors; the optimizer state is read back with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import load_model, save_model

from ..errors import CheckpointError
from ..files import atomic_file, atomic_write_text, writing

CHECKPOINTS, LATEST, BEST = "checkpoints", "latest", "best.safetensors"


def save_checkpoint(
    run_dir: Path, step: int, model: torch.nn.Module, optimizer: torch.optim.Optimizer, state: dict[str, Any]
) -> Path:
    """Write checkpoint ``step`` (model, optimizer, trainer state with the RNG state) and point
    ``latest`` at it; older checkpoints are removed once the new one is in place. An OSError (a full
    disk) is an ``OutputError`` naming the checkpoint."""
    root = run_dir / CHECKPOINTS
    final = root / f"step-{step:07d}"
    with writing(final):
        root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=root, prefix=".tmp-"))
        try:
            save_model(model, str(tmp / "model.safetensors"))
            torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
            torch.save({"torch": torch.get_rng_state()}, tmp / "rng.pt")
            (tmp / "state.json").write_text(json.dumps(state, indent=1), encoding="utf-8")
            if final.exists():
                shutil.rmtree(final)
            os.rename(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    atomic_write_text(root / LATEST, final.name + "\n")
    for old in root.iterdir():
        if old.is_dir() and old != final:
            shutil.rmtree(old, ignore_errors=True)
    return final


def latest_checkpoint(run_dir: Path) -> Path | None:
    """The newest complete checkpoint directory, or None."""
    pointer = run_dir / CHECKPOINTS / LATEST
    if not pointer.exists():
        return None
    path = run_dir / CHECKPOINTS / pointer.read_text(encoding="utf-8").strip()
    if not (path / "state.json").exists():
        raise CheckpointError(f"{pointer}: points to {path.name}, which is missing or incomplete")
    return path


def load_checkpoint(path: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """Restore model, optimizer and the torch RNG from ``path``; returns the trainer state."""
    try:
        load_model(model, path / "model.safetensors")
        optimizer.load_state_dict(torch.load(path / "optimizer.pt", weights_only=True))
        torch.set_rng_state(torch.load(path / "rng.pt", weights_only=True)["torch"])
        return json.loads((path / "state.json").read_text(encoding="utf-8"))
    except (OSError, RuntimeError, ValueError, KeyError) as e:
        raise CheckpointError(f"{path}: cannot resume from this checkpoint: {str(e).splitlines()[0]}") from e


def save_best(run_dir: Path, model: torch.nn.Module, step: int, metrics: dict[str, float]) -> None:
    """Replace ``best.safetensors`` atomically with ``model``'s weights, step and metrics."""
    with atomic_file(run_dir / BEST) as tmp:
        save_model(model, str(tmp), metadata={"step": str(step), "metrics": json.dumps(metrics)})


def read_best(run_dir: Path) -> tuple[int, dict[str, float]] | None:
    """(step, metrics) of the saved best model, or None."""
    path = run_dir / BEST
    if not path.exists():
        return None
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
    return int(meta["step"]), json.loads(meta["metrics"])


def load_best(run_dir: Path, model: torch.nn.Module) -> None:
    load_model(model, run_dir / BEST)
