"""What a search minimises and bounds: non-embedding parameters, FLOPs, and latency.

Parameters and FLOPs come from the exact cost model (``cost.py``). Latency is either measured on
this machine's CPU or GPU, the budget's ``device`` (``latency.measure_inference``: the median of
repeats after warm-up, for the budget's batch and sequence length) or predicted by a ``LatencyPredictor``; ``calibrate`` fits one on measured
architectures sampled from the space and reports its error on held-out ones.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from ..arch import ArchSpec
from ..cost import encoder_params, flops
from ..device import latency_device
from ..errors import ConfigError
from ..latency import measure_inference
from ..modeling import BertsmithModel
from ..predictor import LatencyPredictor
from .budget import Budget

COSTS = ("params", "flops", "latency")
LatencyMode = Literal["measured", "predicted"]


def measure_latency(
    spec: ArchSpec, *, batch: int, seq_len: int, warmup: int = 3, repeats: int = 10, device: str = "cpu"
) -> float:
    """Milliseconds of one forward pass of a randomly initialised encoder of ``spec`` on this machine's
    ``device`` (``cpu`` or ``cuda``)."""
    emb = spec.embeddings
    room = emb.max_positions - (emb.pad_token_id + 1 if emb.positions == "roberta" else 0)
    if seq_len > room:
        raise ConfigError(
            f"budget seq_len = {seq_len}: longer than the {room} positions of {spec.summary()}; "
            f"measure latency at --budget seq_len={room} or less"
        )
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = BertsmithModel(spec)
    timing = measure_inference(
        model, spec.embeddings.vocab_size, batch=batch, seq_len=seq_len, warmup=warmup, repeats=repeats, device=device
    )
    return timing.median * 1e3


@dataclass
class Calibration:
    predictor: LatencyPredictor
    held_out_mape: float
    measured: int


def calibrate(space, *, count: int, batch: int, seq_len: int, seed: int = 0, repeats: int = 10) -> Calibration:
    """Measure ``count`` architectures sampled from ``space``; fit a predictor on two thirds and
    report its mean absolute percentage error on the last third."""
    if count < 12:
        raise ConfigError(f"latency calibration: {count} architectures are too few (at least 12)")
    rng = np.random.default_rng(seed)
    specs = [space.sample(rng) for _ in range(count)]
    ms = [measure_latency(s, batch=batch, seq_len=seq_len, repeats=repeats) for s in specs]
    cut = (2 * count) // 3
    predictor = LatencyPredictor.fit(specs[:cut], ms[:cut], batch=batch, seq_len=seq_len)
    return Calibration(predictor, predictor.error(specs[cut:], ms[cut:]), count)


class CostModel:
    """Costs of an architecture and its standing against a budget.

    ``latency``: ``measured`` times every architecture that needs a latency (the objective or the
    budget asks for one); ``predicted`` uses ``predictor`` (fit for the budget's batch and length).
    """

    def __init__(
        self,
        budget: Budget,
        *,
        latency: LatencyMode = "measured",
        predictor: LatencyPredictor | None = None,
        repeats: int = 10,
    ):
        if latency not in ("measured", "predicted"):
            raise ConfigError(f"latency = {latency!r}: expected 'measured' or 'predicted'")
        if latency == "predicted":
            if predictor is None:
                raise ConfigError("latency = 'predicted' needs a latency predictor (fit one with calibrate)")
            if (predictor.batch, predictor.seq_len) != (budget.batch, budget.seq_len):
                raise ConfigError(
                    f"the latency predictor was fit for batch {predictor.batch} × {predictor.seq_len} "
                    f"tokens, the budget measures batch {budget.batch} × {budget.seq_len}"
                )
        if latency == "measured":
            latency_device(budget.device)
        self.budget, self.latency, self.predictor, self.repeats = budget, latency, predictor, repeats

    def fingerprint(self) -> dict:
        """The budget and how latency is obtained: a study keeps one of each."""
        latency = {"mode": self.latency}
        if self.predictor is not None:
            latency["predictor"] = json.loads(self.predictor.to_json())
        return self.budget.model_dump(mode="json") | {"latency_from": latency}

    def latency_ms(self, spec: ArchSpec) -> float:
        if self.latency == "predicted":
            return self.predictor.predict(spec)
        return measure_latency(
            spec, batch=self.budget.batch, seq_len=self.budget.seq_len, repeats=self.repeats, device=self.budget.device
        )

    def costs(self, spec: ArchSpec, names: tuple[str, ...] = ()) -> dict[str, float]:
        """``params`` (non-embedding) and ``flops`` always; ``latency`` (ms) when ``names`` or the
        budget need it."""
        out: dict[str, float] = {"params": encoder_params(spec), "flops": flops(spec, self.budget.seq_len)}
        if "latency" in names or self.budget.latency is not None:
            out["latency"] = self.latency_ms(spec)
        return out

    def violations(self, spec: ArchSpec, costs: dict[str, float]) -> list[str]:
        """What ``spec`` exceeds (empty when it fits the budget)."""
        return self.budget.violations(spec, latency_ms=costs.get("latency"))

    def constraints(self, spec: ArchSpec, costs: dict[str, float]) -> list[float]:
        """Optuna-style constraint values, one per bound: value/limit − 1 (≤ 0 means satisfied)."""
        return [value / limit - 1.0 for _name, limit, value in self.budget.bounded(spec, costs.get("latency"))]
