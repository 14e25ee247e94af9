"""Multi-process training under ``torchrun`` or ``accelerate launch``: which process this is, how a
global batch is shared out, and the rule that only the main process writes.

The launchers set ``RANK`` and ``WORLD_SIZE`` before Python starts, so these answers are right
before any process group exists. The trainer (``distill.trainer``) creates the group through
Accelerate (gloo on CPU, NCCL on GPU); the functions here that talk to the other processes do
nothing in a single process.
"""

from __future__ import annotations

import os
from typing import Any, Sequence

import torch
import torch.distributed as dist

from .device import compute_device
from .errors import ConfigError


def rank() -> int:
    """This process's index among the launched ones (0 without a launcher)."""
    return int(os.environ.get("RANK", "0"))


def world_size() -> int:
    """How many processes the launcher started (1 without a launcher)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_main() -> bool:
    """True in the one process that writes checkpoints, logs, models and reports."""
    return rank() == 0


def init() -> None:
    """Join the launcher's process group now (through Accelerate: gloo on CPU, NCCL on GPU), so that
    ``barrier`` and ``broadcast`` work before the training loop starts; nothing in one process."""
    if world_size() > 1:
        from accelerate import PartialState

        PartialState(cpu=compute_device().type == "cpu")


def _connected() -> bool:
    return dist.is_available() and dist.is_initialized()


def barrier() -> None:
    """Wait until every process gets here (a no-op in one process)."""
    if _connected():
        dist.barrier()


def broadcast(value: Any) -> Any:
    """The main process's ``value`` (any picklable object), in every process."""
    if not _connected():
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def shard(indices: Sequence[int]) -> tuple[list[int], float]:
    """This process's contiguous share of a global batch, and the factor that its mean loss is
    scaled by so that the average of all processes' gradients equals the gradient of the global
    batch's mean loss (the share's size × processes / batch size). A process whose share would be
    empty (a last batch smaller than the number of processes) gets one example with factor 0, so
    it still joins the gradient all-reduce without changing it."""
    n, world, here = len(indices), world_size(), rank()
    start, end = n * here // world, n * (here + 1) // world
    if start == end:
        return list(indices[:1]), 0.0
    return list(indices[start:end]), (end - start) * world / n


def refuse(command: str, instead: str) -> None:
    """``ConfigError`` when ``command`` was started with several processes, which it does not use."""
    if world_size() > 1:
        raise ConfigError(
            f"{command} runs in one process, not under torchrun or accelerate launch "
            f"(WORLD_SIZE={world_size()}): {instead}"
        )


def reduce_mean(value: torch.Tensor) -> torch.Tensor:
    """The mean of ``value`` over the processes (itself in one process)."""
    if not _connected():
        return value
    value = value.detach().clone()
    dist.all_reduce(value)
    return value / world_size()
