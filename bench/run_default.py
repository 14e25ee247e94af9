"""The embedded default job (`bertsmith run` with no config) against its goals: finished within 12
minutes on 2 CPU cores (the uniform baseline included), a chosen student at least 4× smaller than the
teacher in non-embedding parameters, at least 3× faster (batch 1, 128 tokens, measured in one process
next to the teacher), within 3 accuracy points of the teacher on test. A run whose model fails the
quality gate (exit code 3) is recorded as such.

    .venv/bin/python bench/run_default.py --work /tmp/run-default      # a fresh cache: the teacher is trained too
    .venv/bin/python bench/run_default.py --config bench/configs/default-no-baseline.yaml --goal-minutes 7 \
        --work /tmp/nb-work --out bench/results/run_default-no-baseline.json   # without the uniform baseline

It runs `bertsmith run --out WORK/run` with `BERTSMITH_CACHE=WORK/cache` as a subprocess, and
records the wall time, each stage's time and peak resident memory (from its done.json), the whole run's
peak memory, the CPU time the hypervisor took from this machine over the run (steal, from /proc/stat: on a
shared host it slows every stage), and the figures of `results.json`, in `bench/results/run_default.json`.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GOALS = {"minutes": 12.0, "params_ratio": 4.0, "speedup": 3.0, "test_drop_points": 3.0}


def cpu_times() -> tuple[int, int]:
    """(steal, total) jiffies of all CPUs since boot."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    return fields[7], sum(fields[:8])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, required=True, help="scratch directory (the run and a fresh cache)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "run_default.json")
    parser.add_argument("--config", type=Path, help="a run config instead of the embedded default")
    parser.add_argument("--goal-minutes", type=float, default=GOALS["minutes"], help="the wall-time goal")
    args = parser.parse_args()
    goals = GOALS | {"minutes": args.goal_minutes}
    config = [str(args.config)] if args.config else []
    run_dir, cache = args.work / "run", args.work / "cache"
    env = os.environ | {"BERTSMITH_CACHE": str(cache), "HF_HUB_OFFLINE": "1"}
    bertsmith = Path(sys.executable).with_name("bertsmith")
    steal0, total0 = cpu_times()
    start = time.perf_counter()
    code = subprocess.run([str(bertsmith), "run", *config, "--out", str(run_dir), "--quiet"], env=env).returncode
    if code not in (0, 3):
        raise SystemExit(f"bertsmith run exited with {code}")
    wall = time.perf_counter() - start
    max_rss_gb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20
    steal1, total1 = cpu_times()
    results = json.loads((run_dir / "results.json").read_text())
    done = {
        s: json.loads((run_dir / s / "done.json").read_text()) for s in ("teacher", "search", "finalists", "export")
    }
    stages = {s: d["seconds"] for s, d in done.items()}
    stage_rss = {s: d.get("peak_rss_gb") for s, d in done.items()}
    v = results["chosen"]["versus_teacher"]
    figures = {
        "minutes": wall / 60,
        "params_ratio": v["params_ratio"],
        "speedup": v["speedup"],
        "test_drop_points": v.get("test_drop_points"),
    }
    met = {
        k: (figures[k] <= goal if k in ("minutes", "test_drop_points") else figures[k] >= goal)
        for k, goal in goals.items()
        if figures[k] is not None
    }
    record = {
        "command": " ".join([bertsmith.name, "run", *config, "--out", str(run_dir), "--quiet"])
        + f" (BERTSMITH_CACHE={cache})",
        "wall_seconds": wall,
        "stage_seconds": stages,
        "stage_peak_rss_gb": stage_rss,
        "cpu_steal_share": (steal1 - steal0) / max(1, total1 - total0),
        "max_rss_gb": max_rss_gb,
        "figures": figures,
        "goals": goals,
        "met": met,
        "teacher": {
            "summary": results["teacher"]["summary"],
            "params": results["teacher"]["params"],
            "latency_ms": results["teacher"]["latency_ms"],
            "metrics": results["teacher"]["metrics"],
        },
        "chosen": {k: results["chosen"][k] for k in ("name", "summary", "params", "latency_ms", "metrics")},
        "finalists": [
            {k: f[k] for k in ("name", "kind", "summary", "params", "latency_ms", "metrics")}
            for f in results["finalists"]
        ],
        "exit_code": code,
        "quality": results["quality"],
        "search": {k: results["search"][k] for k in ("evaluated", "infeasible", "duplicates", "failed")},
        "versions": results["versions"],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=1) + "\n")
    print(
        json.dumps(
            {
                k: record[k]
                for k in (
                    "wall_seconds",
                    "stage_seconds",
                    "stage_peak_rss_gb",
                    "cpu_steal_share",
                    "max_rss_gb",
                    "figures",
                    "met",
                    "exit_code",
                    "quality",
                )
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
