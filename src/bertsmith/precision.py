"""Training precision: fp32, or bf16 autocast where the hardware computes bf16 natively.

bf16 autocast runs matrix products in bf16 with fp32 weights, optimizer and losses
(``TrainConfig.bf16``). Where the hardware has bf16 units (a CPU with AMX or AVX512-BF16, a CUDA GPU
that supports bf16) a training step takes roughly 0.55-0.6x the time of fp32; elsewhere bf16 is
emulated and slower than fp32, so ``auto`` (the run's default) uses it only where it is native.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import torch

from .errors import ConfigError

Precision = Literal["auto", "fp32", "bf16"]
CPU_BF16_FLAGS = ("amx_bf16", "avx512_bf16")
CPUINFO = Path("/proc/cpuinfo")


def native_bf16() -> bool:
    """Whether this machine's training device computes bf16 natively."""
    if torch.cuda.is_available():
        return torch.cuda.is_bf16_supported()
    try:
        text = CPUINFO.read_text()
    except OSError:
        return False
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), [])
    return any(flag in flags for flag in CPU_BF16_FLAGS)


def use_bf16(precision: str, where: str = "precision") -> bool:
    """Whether to train under bf16 autocast for the setting ``precision`` (auto, fp32 or bf16)."""
    if precision == "auto":
        return native_bf16()
    if precision in ("fp32", "bf16"):
        return precision == "bf16"
    raise ConfigError(f"{where} = {precision!r}: expected auto, fp32 or bf16")
