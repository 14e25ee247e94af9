"""The latency predictor: exact on a linear ground truth, saved and loaded, clear errors. Its error on real
measurements is a benchmark (bench/latency_predictor.py), not a timed test."""

from __future__ import annotations

import numpy as np
import pytest

from bertsmith.errors import ConfigError
from bertsmith.predictor import FEATURES, LatencyPredictor, features
from bertsmith.search.space import SearchSpace

SPACE = SearchSpace.from_dict(
    {
        "depth": [1, 2, 3, 4],
        "hidden": [64, 128, 192],
        "layer": {"heads": [2, 4, 8], "qk_dim": [16], "v_dim": [16], "ffn": {"min": 64, "max": 768, "step": 64}},
        "per_layer": True,
        "embeddings": {"vocab_size": 500, "max_positions": 64},
    }
)


def specs(n, seed=0):
    rng = np.random.default_rng(seed)
    return [SPACE.sample(rng) for _ in range(n)]


def test_recovers_a_linear_ground_truth():
    truth = np.array([2e-8, 1e-8, 0, 3e-6, 0.2, 0.01, 0.5])
    train, held_out = specs(40), specs(20, seed=1)
    ms = [float(features(s, 2, 32) @ truth) for s in train]
    predictor = LatencyPredictor.fit(train, ms, batch=2, seq_len=32)
    assert predictor.error(held_out, [float(features(s, 2, 32) @ truth) for s in held_out]) < 1e-6
    again = LatencyPredictor.from_json(predictor.to_json())
    assert again.predict(held_out[0]) == pytest.approx(predictor.predict(held_out[0]))
    assert (predictor.weights >= 0).all()


def test_too_few_measurements_and_other_features_are_refused():
    with pytest.raises(ConfigError, match=f"need at least {len(FEATURES)} measured architectures"):
        LatencyPredictor.fit(specs(3), [1.0, 2.0, 3.0], batch=1, seq_len=8)
    with pytest.raises(ConfigError, match="saved with other features"):
        LatencyPredictor.from_json('{"features": ["flops"], "weights": [1], "batch": 1, "seq_len": 8, "device": "cpu"}')
