"""Search costs: exact params and FLOPs, constraint values, latency measured or predicted."""

from __future__ import annotations

import numpy as np
import pytest

from bertsmith.cost import encoder_params, flops
from bertsmith.errors import ConfigError
from bertsmith.predictor import LatencyPredictor
from bertsmith.search.budget import Budget
from bertsmith.search.costs import CostModel, calibrate
from bertsmith.search.space import SearchSpace

from .test_space import BASE


def test_costs_and_constraints():
    space = SearchSpace.from_dict(BASE)
    spec = space.extreme(True)
    p = encoder_params(spec)
    model = CostModel(Budget(params=p // 2, flops=10 * flops(spec, 64), seq_len=64))
    costs = model.costs(spec)
    assert costs == {"params": p, "flops": flops(spec, 64)}  # no latency unless asked for
    assert model.constraints(spec, costs) == pytest.approx([p / (p // 2) - 1, 0.1 - 1])
    assert model.violations(spec, costs) == [f"params {p:,} > {p // 2:,}"]


def test_measured_latency_grows_with_the_model():
    """Interleaved measurements, the fastest of each kept: a burst of load on a shared machine slows
    one measurement, not all three."""
    space = SearchSpace.from_dict(BASE)
    model = CostModel(Budget(latency="1s", batch=8, seq_len=32), repeats=5)
    rounds = [
        (model.costs(space.extreme(False))["latency"], model.costs(space.extreme(True), ("latency",))["latency"])
        for _ in range(3)
    ]
    small, large = min(r[0] for r in rounds), min(r[1] for r in rounds)
    assert 0 < small < large


def test_predicted_latency():
    space = SearchSpace.from_dict(BASE | {"per_layer": True})
    calibration = calibrate(space, count=12, batch=1, seq_len=16, repeats=3)
    assert calibration.measured == 12 and calibration.held_out_mape >= 0
    model = CostModel(Budget(seq_len=16), latency="predicted", predictor=calibration.predictor)
    spec = space.sample(np.random.default_rng(1))
    assert model.costs(spec, ("latency",))["latency"] == pytest.approx(calibration.predictor.predict(spec))


def test_bad_latency_settings():
    predictor = LatencyPredictor(np.ones(7), batch=1, seq_len=128)
    with pytest.raises(ConfigError, match="needs a latency predictor"):
        CostModel(Budget(), latency="predicted")
    with pytest.raises(ConfigError, match="fit for batch 1 × 128 tokens, the budget measures batch 8 × 128"):
        CostModel(Budget(batch=8), latency="predicted", predictor=predictor)
    with pytest.raises(ConfigError, match="latency = 'guessed'"):
        CostModel(Budget(), latency="guessed")
    with pytest.raises(ConfigError, match="too few"):
        calibrate(SearchSpace.from_dict(BASE), count=5, batch=1, seq_len=8)
