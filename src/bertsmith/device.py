"""Where bertsmith computes. Training, distillation and evaluation run on a CUDA GPU when one is
present and on the CPU otherwise, with no setting to change (``BERTSMITH_DEVICE=cpu`` keeps them on the
CPU of a GPU machine); latency is measured on the device a
budget names (``budget.device``: ``cpu`` or ``cuda``), because a latency budget is about where the
model will be deployed. Exports are always written from the CPU."""

from __future__ import annotations

import os

import torch

from .errors import ConfigError

DEVICES = ("cpu", "cuda")
ENV = "BERTSMITH_DEVICE"


def compute_device() -> torch.device:
    """The device that trains and evaluates: ``BERTSMITH_DEVICE`` (``cpu`` or ``cuda``) when set, else
    the current CUDA GPU when there is one, else the CPU."""
    name = os.environ.get(ENV, "").strip()
    if name:
        return checked(name, ENV)
    return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")


def checked(name: str, where: str, advice: str = "") -> torch.device:
    """The device ``name``, which must be one of ``DEVICES`` and present; ``where`` names the setting,
    ``advice`` ends the message of a missing GPU."""
    if name not in DEVICES:
        raise ConfigError(f"{where} = {name!r}: expected one of {', '.join(DEVICES)}")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError(
            f"{where} = 'cuda': this machine has no usable CUDA device (torch {torch.__version__}, "
            f"torch.cuda.is_available() is False){advice}"
        )
    return torch.device(name)


def latency_device(name: str, where: str = "budget.device") -> torch.device:
    """The device a budget measures latency on; ``where`` names the setting in errors."""
    return checked(name, where, "; measure latency on 'cpu'")


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work (CUDA runs asynchronously; a timer must not stop before it)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def allow_tf32(device: torch.device) -> None:
    """Let fp32 matrix products and convolutions on a CUDA GPU use TF32 (Ampere and later: about 8x the
    fp32 rate, 10-bit mantissa inputs, fp32 accumulation), as fp32 training on GPUs commonly does."""
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
