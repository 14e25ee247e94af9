"""Latency predicted from the architecture: ``LatencyPredictor``, fit on measured architectures.

Measuring an architecture takes seconds; a search proposes thousands. The predictor is a linear model
with non-negative coefficients (``scipy.optimize.nnls``) over features from the exact cost model at
the measured batch and sequence length: attention FLOPs, FFN FLOPs, embedding-projection FLOPs,
hidden-size × tokens (the element-wise work around each block: LayerNorm, residuals, activations),
the number of layers and of attention heads (per-call overheads), and a constant. On a CPU, time
is close to linear in these terms; non-negative weights keep predictions monotone in every cost.
The feature set is bertsmith's own choice. ``fit`` reports the mean absolute percentage error
on held-out measurements.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
from scipy.optimize import nnls

from .arch import ArchSpec
from .cost import breakdown
from .errors import ConfigError

FEATURES = ("attention_flops", "ffn_flops", "embedding_flops", "hidden_tokens", "layers", "heads", "constant")


def features(spec: ArchSpec, batch: int, seq_len: int) -> np.ndarray:
    """The predictor's inputs for one architecture at this batch and sequence length."""
    rows = breakdown(spec, seq_len)
    att = sum(r.flops for r in rows if r.component.endswith("attention"))
    ffn = sum(r.flops for r in rows if r.component.endswith("ffn"))
    emb = sum(r.flops for r in rows if r.component == "embeddings")
    heads = sum(layer.attention.all_heads for layer in spec.layers)
    tokens = batch * seq_len
    return np.array(
        [batch * att, batch * ffn, batch * emb, spec.hidden * tokens * spec.num_layers, spec.num_layers, heads, 1.0],
        dtype=np.float64,
    )


def mape(predicted: np.ndarray, measured: np.ndarray) -> float:
    """Mean absolute percentage error, in percent."""
    return float(np.mean(np.abs(predicted - measured) / measured) * 100)


@dataclass
class LatencyPredictor:
    """Milliseconds = features · ``weights`` (non-negative), for one device, batch and sequence length."""

    weights: np.ndarray
    batch: int
    seq_len: int
    device: str = "cpu"

    @classmethod
    def fit(
        cls, specs: list[ArchSpec], ms: list[float], *, batch: int, seq_len: int, device: str = "cpu"
    ) -> "LatencyPredictor":
        if len(specs) != len(ms) or len(specs) < len(FEATURES):
            raise ConfigError(
                f"latency predictor: need at least {len(FEATURES)} measured architectures "
                f"(one latency each), got {len(specs)} and {len(ms)}"
            )
        x = np.stack([features(s, batch, seq_len) for s in specs])
        scale = np.maximum(x.max(axis=0), 1e-12)  # columns of similar size for a well-conditioned solve
        y = np.asarray(ms, dtype=np.float64)
        # relative error is what matters: weight each row by 1/latency
        solution, _ = nnls(x / scale / y[:, None], np.ones_like(y))
        return cls(solution / scale, batch, seq_len, device)

    def predict(self, spec: ArchSpec) -> float:
        """Predicted milliseconds for ``spec`` at the fitted batch and sequence length."""
        return float(features(spec, self.batch, self.seq_len) @ self.weights)

    def error(self, specs: list[ArchSpec], ms: list[float]) -> float:
        """MAPE (percent) of the predictions against measured milliseconds."""
        return mape(np.array([self.predict(s) for s in specs]), np.asarray(ms, dtype=np.float64))

    def to_json(self) -> str:
        return json.dumps(
            {
                "features": FEATURES,
                "weights": self.weights.tolist(),
                "batch": self.batch,
                "seq_len": self.seq_len,
                "device": self.device,
            }
        )

    @classmethod
    def from_json(cls, text: str) -> "LatencyPredictor":
        data = json.loads(text)
        if tuple(data.get("features", ())) != FEATURES:
            raise ConfigError("latency predictor: saved with other features; fit it again")
        return cls(np.asarray(data["weights"], dtype=np.float64), data["batch"], data["seq_len"], data["device"])
