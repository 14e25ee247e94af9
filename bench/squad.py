"""Extractive QA end to end: `bertsmith run` on SQuAD v1.1 from the MiniLM teacher, against the goals
of a student within 3 F1 points of the teacher and at least 3x faster (CPU, batch 1 x 384 tokens).

    .venv/bin/python bench/squad.py --work /tmp/squad --squad ../shared/data/squad

The offline SQuAD data is 38 articles for training (``train.json``) and 5 others (``dev.json``). So that
dev chooses and test reports, the benchmark writes a task of three splits into WORK: the dev split is 4
articles of ``train.json`` (its article indices shuffled by ``random.Random(0)``, the first 4 taken), the
train split the other 34, and the test split is ``dev.json`` whole. It then runs ``bertsmith run`` with
that task at a quarter of the teacher's non-embedding parameters (the uniform baseline distilled the
same way), with ``BERTSMITH_CACHE=WORK/cache``, and records the wall time, each stage's time and peak
resident memory, the CPU steal over the run, and the teacher's, the chosen model's and the baseline's
EM/F1 and latency in ``bench/results/squad.json``. ``--teacher-epochs``, ``--finalist-epochs`` and
``--finalist-steps`` set the schedules (recorded). A rerun with the same WORK reuses the stages whose
inputs did not change (the teacher, the search); the recorded wall time is the rerun's, the stage times
are each stage's own. A run whose model fails the quality gate (exit code 3) is recorded as such.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
GOALS = {"f1_drop_points": 3.0, "speedup": 3.0}
DEV_ARTICLES = 4


def cpu_times() -> tuple[int, int]:
    """(steal, total) jiffies of all CPUs since boot."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    return fields[7], sum(fields[:8])


def write_task(squad: Path, work: Path) -> Path:
    """The three-split task (see the module's docstring) as WORK/task/squad.yaml."""
    source = json.loads((squad / "train.json").read_text(encoding="utf-8"))
    articles = list(range(len(source["data"])))
    random.Random(0).shuffle(articles)
    held = set(articles[:DEV_ARTICLES])
    folder = work / "task"
    folder.mkdir(parents=True, exist_ok=True)
    for name, keep in (("train", lambda i: i not in held), ("dev", lambda i: i in held)):
        part = {"version": source.get("version", "1.1"), "data": [a for i, a in enumerate(source["data"]) if keep(i)]}
        (folder / f"{name}.json").write_text(json.dumps(part), encoding="utf-8")
    task = {
        "name": "squad-offline",
        "type": "extractive_qa",
        "files": {"train": "train.json", "dev": "dev.json", "test": str((squad / "dev.json").resolve())},
    }
    path = folder / "squad.yaml"
    path.write_text(yaml.safe_dump(task), encoding="utf-8")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, required=True, help="scratch directory (task, run, cache)")
    parser.add_argument("--squad", type=Path, default=ROOT.parent / "shared" / "data" / "squad")
    parser.add_argument("--teacher-epochs", type=float, default=2.0)
    parser.add_argument("--finalist-epochs", type=float, default=1.0)
    parser.add_argument(
        "--finalist-steps", type=int, default=None, help="steps of each finalist and baseline (overrides epochs)"
    )
    parser.add_argument("--trials", type=int, default=24)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "squad.json")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    task = write_task(args.squad, args.work)
    config = {
        "task": str(task),
        "teacher": {"epochs": args.teacher_epochs},
        "budget": {"params": "25%"},
        "search": {"trials": args.trials},
        "finalists": {"epochs": args.finalist_epochs, "baselines": ["uniform"]}
        | ({"steps": args.finalist_steps, "min_steps": 0} if args.finalist_steps else {}),
    }
    config_path = args.work / "config.yaml"
    config_path.write_text(yaml.safe_dump(config), encoding="utf-8")
    run_dir, cache = args.work / "run", args.work / "cache"
    env = os.environ | {"BERTSMITH_CACHE": str(cache), "HF_HUB_OFFLINE": "1"}
    bertsmith = Path(sys.executable).with_name("bertsmith")
    command = [str(bertsmith), "run", str(config_path), "--out", str(run_dir), "--quiet"]
    steal0, total0 = cpu_times()
    start = time.perf_counter()
    code = subprocess.run(command, env=env).returncode
    if code not in (0, 3):
        raise SystemExit(f"bertsmith run exited with {code}")
    wall = time.perf_counter() - start
    steal1, total1 = cpu_times()
    results = json.loads((run_dir / "results.json").read_text())
    done = {
        s: json.loads((run_dir / s / "done.json").read_text()) for s in ("teacher", "search", "finalists", "export")
    }
    v = results["chosen"]["versus_teacher"]
    teacher_test = results["teacher"]["metrics"]["test"]
    chosen_test = results["chosen"]["metrics"]["test"]
    figures = {"f1_drop_points": 100 * (teacher_test["f1"] - chosen_test["f1"]), "speedup": v["speedup"]}
    met = {k: figures[k] <= goal if k == "f1_drop_points" else figures[k] >= goal for k, goal in GOALS.items()}
    record = {
        "command": " ".join(command) + f" (BERTSMITH_CACHE={cache})",
        "config": config,
        "wall_seconds": wall,
        "stage_seconds": {s: d["seconds"] for s, d in done.items()},
        "stage_peak_rss_gb": {s: d.get("peak_rss_gb") for s, d in done.items()},
        "max_rss_gb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20,
        "cpu_steal_share": (steal1 - steal0) / max(1, total1 - total0),
        "figures": figures,
        "goals": GOALS,
        "met": met,
        "teacher": {k: results["teacher"][k] for k in ("summary", "params", "latency_ms", "metrics")},
        "finalists": [
            {k: f[k] for k in ("name", "kind", "summary", "params", "latency_ms", "metrics")}
            for f in results["finalists"]
        ],
        "chosen": {k: results["chosen"][k] for k in ("name", "summary", "params", "latency_ms", "metrics")},
        "versus_teacher": v,
        "exit_code": code,
        "quality": results["quality"],
        "versions": results["versions"],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=1) + "\n")
    print(json.dumps({k: record[k] for k in ("wall_seconds", "stage_seconds", "max_rss_gb", "figures", "met")}))


if __name__ == "__main__":
    main()
