"""The attention term on every mapped layer pair or on the last pair only: what each costs and what
it delivers, on real data, several seeds.

    .venv/bin/python bench/attention_layers.py --work /tmp/quality --data-dir ../shared/data/glue \
        [--tasks sst2,mrpc] [--seeds 0,1,2] [--out bench/results/attention_layers.json]

The tasks, teachers and student are `bench/teacher_cache.py`'s (the default job's chosen shape, sliced
from `bench/quality.py`'s MiniLM teachers, distilled with the run's finalist settings and the teacher
cache, each distillation in its own process). The arms differ only in `finalists.attention_layers`:
`all` (the attention relations of every mapped layer pair) and `last` (the last pair's only, as
MiniLMv2 transfers one layer's relations). Dev and test of each arm (mean and standard deviation over
seeds) and its training seconds are recorded; dev chooses, test only reports. Distillations are kept
in WORK/attention_layers/ (rerun to continue).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ARMS = ("all", "last")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--data-dir", type=Path, help="the GLUE directory (for sst2 and mrpc)")
    parser.add_argument("--tasks", default="sst2,mrpc")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "attention_layers.json")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT / "bench"))
    from quality import task_reference, teacher_for  # bench/quality.py, beside this script
    from teacher_cache import distil_apart, student_spec, summarise

    from bertsmith.files import atomic_write_text

    seeds = [int(s) for s in args.seeds.split(",")]
    record: dict = {"seeds": seeds, "tasks": {}}
    for name in args.tasks.split(","):
        task_ref = task_reference(name, args.work, args.data_dir)
        teacher = teacher_for(task_ref, args.work, dict(os.environ))
        spec = student_spec(teacher["directory"])
        rows: dict[str, list[dict]] = {arm: [] for arm in ARMS}
        for seed in seeds:
            base = args.work / "attention_layers" / name / f"seed{seed}"
            for arm in ARMS:  # each arm fills its own cache: both pay for the teacher's first epoch
                rows[arm].append(
                    distil_apart(
                        task_ref,
                        teacher["directory"],
                        spec,
                        base / arm,
                        seed,
                        base / f"cache-{arm}",
                        {"attention_layers": arm},
                    )
                )
                print(f"{name} seed {seed} {arm}: {json.dumps(rows[arm][-1])}", flush=True)
        metric, summary = summarise(name, rows)
        record["tasks"][name] = {"metric": metric, "teacher": teacher["metrics"], "summary": summary, "runs": rows}
        atomic_write_text(args.out, json.dumps(record, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
