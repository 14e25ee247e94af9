"""``random``: every gene drawn uniformly and independently (Optuna's RandomSampler). The baseline
that any other strategy has to beat."""

from __future__ import annotations

import optuna

from . import SamplerStrategy


class Random(SamplerStrategy):
    def sampler(self, seed: int) -> optuna.samplers.BaseSampler:
        return optuna.samplers.RandomSampler(seed=seed)
