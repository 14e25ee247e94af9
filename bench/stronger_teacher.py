"""Does a stronger teacher give a better student of the same size? `bertsmith run` from the real base-size
all-mpnet-base-v2 (MPNet, 12 layers, hidden 768, 85.6M non-embedding parameters) at 1/8 and 1/16 of its
non-embedding parameters, against `bertsmith run` from the default MiniLM teacher (all-MiniLM-L6-v2, 10.8M)
at the same absolute budgets, on bench/quality.py's fixed 10,000-example SST-2 subset; and each teacher
fine-tuned alone on the tasks of `--finetune` (dev and test figures, wall time, peak resident memory).

    .venv/bin/python bench/mpnet_teacher.py --out /tmp/models/all-mpnet-base-v2
    .venv/bin/python bench/stronger_teacher.py --work /tmp/quality --data-dir ../shared/data/glue \\
        --teacher /tmp/models/all-mpnet-base-v2 [--shares 12.5%,6.25%] [--seeds 0] [--finetune sst2,mrpc]
        # -> bench/results/stronger_teacher.json and a markdown table

Both teachers are fine-tuned once per task with the run's own teacher settings and seed 0
(`quality.teacher_for`; WORK is shared with bench/quality.py, so its MiniLM teachers are reused). Every run
has the default settings but the task, the fine-tuned teacher, the seed and the budget (`budget.params`,
the same count for both teachers), with the baselines of the run that fit the budget
(`finalists.baselines`) and `quality.accept_weak`. The record of a run gives its arms (bench/quality.py's),
each stage's seconds and peak resident memory (its done.json) and the whole process's (`wait4`). Finished
runs are reused; rerun the same command to continue.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
from quality import arms, run_one, task_reference, teacher_for  # noqa: E402

RESULT = ROOT / "bench" / "results" / "stronger_teacher.json"
STAGES = ("teacher", "search", "finalists", "export")


def run(task: str, teacher: str, budget: int, seed: int, out: Path, env: dict) -> dict:
    """One `bertsmith run` (reused when finished): its arms, per-stage seconds and peak RSS, whole-process figures."""
    record_file = out.parent / f"{out.name}.json"
    if record_file.is_file() and (out / "results.json").is_file():
        return json.loads(record_file.read_text())
    path, process = run_one(task, teacher, budget, seed, out, env)
    results = json.loads(path.read_text())
    stages = {}
    for stage in STAGES:
        done = json.loads((out / stage / "done.json").read_text())
        stages[stage] = {"seconds": done["seconds"], "peak_rss_gb": done.get("peak_rss_gb")}
    record = {
        "budget": budget,
        "seed": seed,
        "run_dir": str(out),
        "metric": results["metric"],
        **(process or {"wall_seconds": None, "peak_rss_gb": None}),
        "stages": stages,
        "arms": arms(results),
        "quality": results.get("quality"),
    }
    record_file.write_text(json.dumps(record, indent=1) + "\n")
    return record


def table(runs: dict[str, list[dict]]) -> list[str]:
    """Markdown rows: per budget and teacher, each arm's dev / test (× 100) and speed-up against its own teacher."""
    lines = [
        "| budget | teacher | arm | architecture | non-emb. params | speed-up vs its teacher | dev | test |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for label, records in runs.items():
        for r in records:
            metric = r["metric"]
            for arm in ("teacher", "chosen", "uniform", "layers"):
                a = r["arms"].get(arm)
                if a is None:
                    continue
                m = a["metrics"]
                lines.append(
                    f"| {r['budget']:,} (seed {r['seed']}) | {label} | {arm} | {a['summary'].replace(' | ', ' · ')} "
                    f"| {a['params']:,} | {a['speedup']:.2f}× | {100 * m['dev'][metric]:.2f} | "
                    f"{100 * m['test'][metric]:.2f} |"
                )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, required=True, help="scratch directory (shared with bench/quality.py)")
    parser.add_argument("--data-dir", type=Path, required=True, help="GLUE directory (SST-2, MRPC)")
    parser.add_argument("--teacher", type=Path, required=True, help="the base-size model directory")
    parser.add_argument("--shares", default="12.5%,6.25%", help="shares of the base teacher's non-embedding params")
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--finetune", default="sst2,mrpc", help="tasks on which to fine-tune both teachers alone")
    args = parser.parse_args()
    from bertsmith.cost import encoder_params
    from bertsmith.files import atomic_write_text
    from bertsmith.hf import import_checkpoint

    if not (args.teacher / "config.json").is_file():
        raise SystemExit(f"error: {args.teacher}: no config.json (assemble it with bench/mpnet_teacher.py)")
    env = os.environ | {"HF_HUB_OFFLINE": "1", "CUDA_VISIBLE_DEVICES": ""}
    strong = str(args.teacher.resolve())
    teachers: dict[str, dict] = {}
    runs: dict[str, list[dict]] = {"strong": [], "minilm": []}

    def fine_tuned(name: str, label: str) -> str:
        """The fine-tuned teacher's directory; its record (metrics, seconds, peak RSS) kept in ``teachers``."""
        print(f"[stronger] {label} teacher on {name}", flush=True)
        model, sub = (strong, "strong") if label == "strong" else (None, "")
        record = teacher_for(task_reference(name, args.work, args.data_dir), args.work, env, model=model, label=sub)
        teachers[f"{label}/{name}"] = record
        return record["directory"]

    def save() -> None:
        record = {"strong_teacher": strong, "teachers": teachers, "runs": runs}
        atomic_write_text(RESULT, json.dumps(record, indent=1) + "\n")

    sst2 = task_reference("sst2", args.work, args.data_dir)
    directories = {label: fine_tuned("sst2", label) for label in ("strong", "minilm")}
    save()
    base = encoder_params(import_checkpoint(directories["strong"]).spec)
    for share in args.shares.split(","):
        budget = int(float(share.rstrip("%")) / 100 * base)
        for seed in map(int, args.seeds.split(",")):
            for label, directory in directories.items():
                out = args.work / "runs" / "stronger" / f"{label}-{budget}-s{seed}"
                print(f"[stronger] {label} teacher, budget {budget:,} ({share} of {base:,}), seed {seed}", flush=True)
                runs[label].append(run(sst2, directory, budget, seed, out, env) | {"share_of_strong": share})
                save()
    for name in [t for t in args.finetune.split(",") if t and t != "sst2"]:
        for label in ("minilm", "strong"):
            fine_tuned(name, label)
            save()
    print("\n".join(table(runs)))
    print(f"wrote {RESULT}")


if __name__ == "__main__":
    main()
