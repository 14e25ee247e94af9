"""Training precision: fp32, or bf16 autocast (bf16 matrix products; fp32 weights, optimizer and losses).

``auto`` (the run's default) is bf16 on a CUDA GPU that supports it and fp32 on a CPU; fp32 matrix
products on a CUDA GPU use TF32 where it has them (``device.allow_tf32``). On the 2-core
AMX CPU of BENCHMARKS.md bf16 trains the default job's models as accurately as fp32 but only about 7 %
faster end to end (short sentences: small matrix products), while the peak resident memory grows by
half, so a CPU user opts in with ``precision: bf16`` (long sequences gain more: 1.7x per step at 128
tokens).
"""

from __future__ import annotations

import torch

from .device import compute_device
from .errors import ConfigError


def use_bf16(precision: str) -> bool:
    """Whether to train under bf16 autocast for the setting ``precision`` (auto, fp32 or bf16)."""
    if precision == "auto":
        return compute_device().type == "cuda" and torch.cuda.is_bf16_supported()
    if precision in ("fp32", "bf16"):
        return precision == "bf16"
    raise ConfigError(f"precision = {precision!r}: expected auto, fp32 or bf16")
