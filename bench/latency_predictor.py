"""Error of the latency predictor on real CPU measurements.

    .venv/bin/python bench/latency_predictor.py             # 60 architectures, ~3 min on 2 cores
    .venv/bin/python bench/latency_predictor.py --archs 30  # quicker

Samples architectures from a MiniLM-scaled space (depth 2-6, hidden 128-384, 4-12 heads of 32, FFN
256-1536, per layer), measures each (``latency.measure_inference``: median of repeats after warm-up,
batch 1 × 128 tokens by default), fits ``LatencyPredictor`` on the first two thirds and reports the mean
absolute percentage error on the last third, and on the training set. Writes
``bench/results/latency_predictor.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
try:
    import bertsmith  # noqa: F401
except ImportError:
    sys.path.insert(0, str(ROOT / "src"))

from bertsmith.files import atomic_write_text  # noqa: E402
from bertsmith.latency import measure_inference  # noqa: E402
from bertsmith.modeling import BertsmithModel  # noqa: E402
from bertsmith.predictor import LatencyPredictor, mape  # noqa: E402
from bertsmith.search.space import SearchSpace  # noqa: E402

SPACE = {
    "depth": {"min": 2, "max": 6},
    "hidden": {"min": 128, "max": 384, "step": 64},
    "layer": {"heads": [4, 6, 8, 10, 12], "qk_dim": [32], "v_dim": [32], "ffn": {"min": 256, "max": 1536, "step": 128}},
    "per_layer": True,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archs", type=int, default=60)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--seq", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    space = SearchSpace.from_dict(SPACE)
    rng = np.random.default_rng(args.seed)
    specs, ms = [], []
    for i in range(args.archs):
        spec = space.sample(rng)
        timing = measure_inference(
            BertsmithModel(spec), spec.embeddings.vocab_size, batch=args.batch, seq_len=args.seq, repeats=args.repeats
        )
        specs.append(spec)
        ms.append(timing.median * 1e3)
        print(f"{i + 1:>3}/{args.archs}  {ms[-1]:7.2f} ms  {spec.summary()[:90]}", flush=True)
    cut = (2 * len(specs)) // 3
    predictor = LatencyPredictor.fit(specs[:cut], ms[:cut], batch=args.batch, seq_len=args.seq)
    train_error = predictor.error(specs[:cut], ms[:cut])
    held_out = predictor.error(specs[cut:], ms[cut:])
    flops_only = _flops_baseline(specs, ms, cut, args.seq)
    print(
        f"held-out MAPE {held_out:.1f} % on {len(specs) - cut} architectures (train {train_error:.1f} %, "
        f"{cut} architectures); FLOPs-proportional baseline {flops_only:.1f} %"
    )
    result = {
        "archs": len(specs),
        "train": cut,
        "batch": args.batch,
        "seq_len": args.seq,
        "repeats": args.repeats,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "machine": platform.processor() or platform.machine(),
        "held_out_mape": held_out,
        "train_mape": train_error,
        "flops_proportional_mape": flops_only,
        "latency_ms": {"min": min(ms), "max": max(ms)},
        "predictor": json.loads(predictor.to_json()),
    }
    out = ROOT / "bench" / "results" / "latency_predictor.json"
    atomic_write_text(out, json.dumps(result, indent=1))
    print(f"wrote {out}")


def _flops_baseline(specs, ms, cut, seq) -> float:
    """Held-out MAPE of latency = c · FLOPs with c fit on the training third (the naive proxy)."""
    from bertsmith.cost import flops

    f = np.array([flops(s, seq) for s in specs], dtype=np.float64)
    y = np.asarray(ms)
    c = np.median(y[:cut] / f[:cut])
    return mape(c * f[cut:], y[cut:])


if __name__ == "__main__":
    main()
