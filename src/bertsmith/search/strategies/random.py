"""``random``: every gene drawn uniformly and independently (Optuna's RandomSampler). The baseline
that any other strategy has to beat."""

from __future__ import annotations

import optuna

from .base import SamplerStrategy


class Random(SamplerStrategy):
    name = "random"

    def sampler(self, seed: int) -> optuna.samplers.BaseSampler:
        return optuna.samplers.RandomSampler(seed=seed)
