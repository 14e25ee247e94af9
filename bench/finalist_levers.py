"""What does teacher-labelled augmentation buy a finalist? One architecture of a searched run distilled
as the run distils its finalists, with and without perturbed copies of the train split, several seeds.

    .venv/bin/python bench/finalist_levers.py --run /tmp/fid/run [--trial T | --entry NAME] [--copies 1] \
        [--seeds 0,1,2] [--arms plain,longer,augment,bf16,bf16-longer] [--out FILE]

Arms, each with the run's finalist settings (losses, teacher init, lr, batch):
- `plain`: the run's own finalist schedule (the distillation the run or `bench/fidelity.py` made of the
  same architecture with the same seed is reused);
- `longer`: the same schedule with (1 + copies) times the epochs, so as many steps as `augment`;
- `bf16`, `bf16-longer`: `plain` and `longer` under bf16 autocast (`TrainConfig.bf16`), where the CPU
  or GPU computes in bf16 natively (AMX or AVX512-BF16 on a CPU);
- `augment`: the train split plus `--copies` perturbed copies (each non-special token replaced with
  probability 0.15 by one drawn from the split's unigram distribution; the teacher's logits and
  hidden states on the perturbed input are the targets), the run's epochs.
The architecture is the run's chosen model, an evaluated trial (`--trial`), or an entry of the run's
finalists stage (`--entry baseline-1-uniform`). Distillations are kept in `RUN/finalist_levers/`
(rerun to continue), each in its own child process. Dev and test of each arm and seed are recorded
(`bench/results/finalist_levers/TASK-MODEL.json`), with mean and standard deviation; dev chooses, test
only reports.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", type=Path, required=True, help="a bertsmith run directory (search complete)")
    parser.add_argument("--trial", type=int, help="an evaluated trial (default: the run's chosen model)")
    parser.add_argument("--entry", help="an entry of the run's finalists stage, e.g. baseline-1-uniform")
    parser.add_argument("--copies", type=int, default=1, help="perturbed copies of the train split")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--arms", default="plain,longer,augment")
    parser.add_argument("--out", type=Path, help="default: bench/results/finalist_levers/TASK-MODEL.json")
    args = parser.parse_args()

    from fidelity import distil_apart, fidelity_dir, load_searched_run  # bench/fidelity.py, beside this script

    run = load_searched_run(args.run)
    reuse: dict[int, Path] = {}  # seed: an existing plain distillation of the architecture
    if args.entry is not None:
        entry_dir = args.run / "finalists" / args.entry
        if not (entry_dir / "result.json").is_file():
            parser.error(f"--entry: {entry_dir} holds no finished distillation (result.json)")
        spec, trial, name = json.loads((entry_dir / "result.json").read_text())["spec"], None, args.entry
        reuse[run.config.seed] = entry_dir
    elif args.trial is None:
        chosen = json.loads((args.run / "results.json").read_text())["chosen"]
        spec, trial = chosen["spec"], chosen.get("trial")
        name = f"t{trial}" if trial is not None else chosen["name"]
    else:
        found = [s for s in run.scored if s["trial"] == args.trial]
        if not found:
            parser.error(f"--trial: {args.trial} is not a feasible, distinct evaluated trial of {args.run}")
        spec, trial, name = found[0]["spec"], args.trial, f"t{args.trial}"
    from bertsmith.arch import ArchSpec

    summary = ArchSpec.from_dict(spec).summary()
    known = {
        "plain": {},
        "longer": {"epochs_scale": 1.0 + args.copies},
        "augment": {"augment": args.copies},
        "bf16": {"bf16": True},
        "bf16-longer": {"bf16": True, "epochs_scale": 1.0 + args.copies},
    }
    unknown = [a for a in args.arms.split(",") if a not in known]
    if unknown:
        parser.error(f"--arms: {unknown[0]!r} is not one of {', '.join(known)}")
    arms = {a: known[a] for a in args.arms.split(",")}
    records: dict[str, list[dict]] = {arm: [] for arm in arms}
    for seed in [int(s) for s in args.seeds.split(",")]:
        for arm, options in arms.items():
            if arm == "plain" and seed in reuse:
                run_dir = reuse[seed]
            elif arm == "plain" and trial is not None:
                run_dir = fidelity_dir(args.run, trial, seed, run.config.seed)
            else:
                copies = args.copies if {"epochs_scale", "augment"} & set(options) else ""
                run_dir = args.run / "finalist_levers" / f"{name}-{arm}{copies}-s{seed}"
            fresh, start = not (run_dir / "result.json").is_file(), time.perf_counter()
            result = distil_apart(args.run, spec, run_dir, seed, **options)
            metrics = {split: result["metrics"][split][run.metric] for split in ("dev", "test")}
            records[arm].append(
                {
                    "seed": seed,
                    **metrics,
                    "steps": result["steps"],
                    "best_step": result["best_step"],
                    "seconds": round(time.perf_counter() - start, 1) if fresh else None,
                    "directory": str(run_dir),
                }
            )
            print(
                f"{arm:8} seed {seed}  dev {metrics['dev']:.4f}  test {metrics['test']:.4f}  steps {result['steps']}"
                f"  ({time.perf_counter() - start:.0f} s)",
                flush=True,
            )

    def spread(values: list[float]) -> dict[str, float]:
        return {"mean": statistics.fmean(values), "sd": statistics.stdev(values) if len(values) > 1 else 0.0}

    summary_rows = {
        arm: {split: spread([r[split] for r in rows]) for split in ("dev", "test")} for arm, rows in records.items()
    }
    for arm, row in summary_rows.items():
        print(
            f"{arm:8} dev {100 * row['dev']['mean']:.2f} ± {100 * row['dev']['sd']:.2f}  "
            f"test {100 * row['test']['mean']:.2f} ± {100 * row['test']['sd']:.2f}"
        )
    out = args.out or ROOT / "bench" / "results" / "finalist_levers" / f"{run.config.task}-{name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "run": str(args.run),
                "task": run.config.task,
                "metric": run.metric,
                "model": name,
                "trial": trial,
                "architecture": summary,
                "copies": args.copies,
                "summary": summary_rows,
                "records": records,
            },
            indent=1,
        )
        + "\n"
    )


if __name__ == "__main__":
    main()
