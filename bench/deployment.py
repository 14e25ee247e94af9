"""What deploying a run's chosen model costs: the four latencies and every file's size, with more
rounds than the run's own export stage, next to the int8 accuracy the run measured.

    .venv/bin/python bench/deployment.py runs/default      # ~1 min on 2 cores

For a finished ``bertsmith run`` directory (its export stage with ``export.quantize: int8``) it times,
in one process and interleaved (``bertsmith.deployment.measure_latencies``): the teacher in PyTorch
fp32, the student in PyTorch fp32, the student's ``model.onnx`` and ``model.int8.onnx`` under
onnxruntime, at batch 1 and 32 with the run's sequence length, ``--rounds`` rounds (medians). It prints
and records in ``bench/results/deployment-<task>.json``: those latencies with the speed-up over the
teacher, the int8 file's dev/test change against fp32 as the run measured it, the size of every file of
the export, CPU steal over the measurement, and the peak resident memory.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
try:
    import bertsmith  # noqa: F401
except ImportError:
    sys.path.insert(0, str(ROOT / "src"))

import torch  # noqa: E402

from bertsmith.arch import atomic_write_text  # noqa: E402
from bertsmith.deployment import ARMS, measure_latencies  # noqa: E402
from bertsmith.hf import import_checkpoint  # noqa: E402
from bertsmith.memory import PeakMemory  # noqa: E402

GOAL = 8.0  # int8 student vs the fp32 PyTorch teacher, batch 1


def steal() -> float:
    """Cumulative CPU steal ticks of this machine (from /proc/stat)."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()
    return float(fields[8]) if len(fields) > 8 else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", type=Path, help="a finished `bertsmith run` directory")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", type=Path, default=None, help="default bench/results/deployment-<task>.json")
    args = parser.parse_args()

    results = json.loads((args.run_dir / "results.json").read_text())
    export = results["export"]
    directory = Path(export["directory"])
    if "deployment" not in export:
        sys.exit(f"{args.run_dir}: its export has no int8 file (export.quantize is off); nothing to measure")
    seq_len = export["deployment"]["seq_len"]
    start, steal0 = time.time(), steal()
    with PeakMemory() as peak:
        latency = measure_latencies(import_checkpoint(results["teacher"]["directory"]).model,
                                    import_checkpoint(directory).model, directory, seq_len=seq_len,
                                    rounds=args.rounds)
    seconds, stolen = time.time() - start, (steal() - steal0) / 100
    record = {
        "run_dir": str(args.run_dir.resolve()), "task": results["task"], "chosen": results["chosen"]["summary"],
        "teacher": results["teacher"]["summary"], "seq_len": seq_len, "threads": torch.get_num_threads(),
        "rounds": args.rounds, "latency_ms": latency,
        "speedup": {batch: {arm: ms["teacher_torch"] / ms[arm] for arm in ARMS} for batch, ms in latency.items()},
        "int8_change_points": export["deployment"]["change_points"], "recommended": export["deployment"]["recommended"],
        "metrics": export["deployment"]["metrics"],
        "files_mb": {p.name: round(p.stat().st_size / 1e6, 2) for p in sorted(directory.iterdir()) if p.is_file()},
        "seconds": round(seconds, 1), "steal_seconds": round(stolen, 1), "peak_rss_gb": round(peak.gb, 2),
        "machine": platform.machine(), "torch": torch.__version__,
    }
    for batch, ms in latency.items():
        print(f"{batch}: " + "; ".join(f"{ARMS[a]} {ms[a]:.2f} ms ({ms['teacher_torch'] / ms[a]:.2f}x)" for a in ARMS))
    b1 = latency["batch 1"]
    print(f"int8 student vs the PyTorch teacher at batch 1: {b1['teacher_torch'] / b1['student_int8']:.2f}x "
          f"(goal {GOAL:g}x); int8 change (points): {export['deployment']['change_points']}")
    print("files: " + ", ".join(f"{name} {mb} MB" for name, mb in record["files_mb"].items() if mb >= 0.1))
    print(f"{seconds:.0f} s, steal {stolen:.1f} s, peak RSS {peak.gb:.2f} GB")
    out = args.out or ROOT / "bench" / "results" / f"deployment-{results['task']}.json"
    atomic_write_text(out, json.dumps(record, indent=1) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
