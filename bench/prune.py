"""schuBERT pruning against its baselines on a real task: schuBERT-all, schuBERT-h, BERT-all uniform and
BERT-ℓ (layer dropping) at one parameter budget, the same distillation steps, several seeds.

    .venv/bin/python bench/prune.py run --teacher TEACHER_DIR --task sst2 --data-dir ../shared/data/glue \\
        --budget half --seed 0 --work /tmp/prune-bench
    .venv/bin/python bench/prune.py latency       # after every run: CPU latency of each model, one at a time
    .venv/bin/python bench/prune.py summary       # mean ± spread per task, budget and method

Budgets (non-embedding parameters of the teacher, here MiniLM-L6: 10.79M): ``half`` is exactly the
3-layer model's count (5,471,232), so BERT-ℓ meets it with no slack; ``quarter`` is 1/4 of the
teacher. At ``quarter`` BERT-ℓ can only keep one layer (1.92M, well under the budget), so the run
also distils the two-layer model (3.70M, over the budget) to bracket it.

Every model is distilled for ``--rounds`` × ``--steps`` steps: schuBERT re-trains ``--steps`` after
each of ``--rounds`` pruning rounds (plus ``--gate-steps`` of gate training per round with its
weights frozen); the baselines start from the sliced, importance-ordered teacher. ``run`` writes
``bench/results/prune/<task>-<budget>-s<seed>.json``; ``latency`` adds the batch-1 × 128 latency
of every architecture not measured before (run it on an otherwise idle machine); ``summary`` writes ``bench/results/prune_summary.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
try:
    import bertsmith  # noqa: F401
except ImportError:
    sys.path.insert(0, str(ROOT / "src"))

import optuna  # noqa: E402

from bertsmith.arch import ArchSpec  # noqa: E402
from bertsmith.files import atomic_write_text  # noqa: E402
from bertsmith.cost import encoder_params  # noqa: E402
from bertsmith.search.job import SearchSettings, run_search_job  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "prune"
HALF = 5_471_232  # the MiniLM teacher's first three layers and pooler


def _rows(result, metric: str) -> list[dict]:
    rows = []
    for t in result.study.get_trials(deepcopy=False):
        attrs = t.user_attrs
        if "prune_round" in attrs:
            method = f"round-{attrs['prune_round']}"
        elif "baseline" in attrs:
            method = attrs["baseline"]
        else:
            continue
        rows.append(
            {
                "method": method,
                "metric": attrs["metrics"][metric],
                "metrics": attrs["metrics"],
                "params": attrs["costs"]["params"],
                "feasible": attrs["feasible"],
                "spec": attrs["spec"],
                "summary": attrs["summary"],
                "seconds": attrs["seconds"],
            }
        )
    return rows


def run(args: argparse.Namespace) -> None:
    from bertsmith.data import resolve_task

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    metric = resolve_task(args.task).main_metric
    budget = HALF if args.budget == "half" else 10_794_624 // 4
    work = Path(args.work) / f"{args.task}-{args.budget}-s{args.seed}"
    common = dict(
        teacher=Path(args.teacher),
        task=args.task,
        strategy="prune",
        budget=f"params={budget}",
        evaluator="short",
        init="teacher",
        eval_steps=args.steps,
        eval_lr=args.lr,
        data_dir=Path(args.data_dir) if args.data_dir else None,
        seed=args.seed,
        progress=False,
        space=None,
    )
    options = {"prune_rounds": args.rounds, "gate_steps": args.gate_steps}
    out = {
        "task": args.task,
        "budget": args.budget,
        "budget_params": budget,
        "seed": args.seed,
        "metric": metric,
        "settings": {"steps": args.steps, "rounds": args.rounds, "gate_steps": args.gate_steps, "lr": args.lr},
    }
    rows = []
    for dims, baselines in (("all", True), ("h", False)):
        result = run_search_job(
            SearchSettings(
                **common,
                run_dir=work / f"schubert-{dims}",
                options=options | {"prune_dims": dims, "baselines": baselines},
            )
        )
        for row in _rows(result, metric):
            if row["method"].startswith("round-"):
                final = row["method"] == f"round-{args.rounds}"
                row["method"] = f"schubert-{dims}" if final else f"schubert-{dims}-{row['method']}"
            rows.append(row)
    if args.budget == "quarter":  # bracket BERT-ℓ: two layers, over the budget
        from bertsmith.distill.task import load_task_data, load_tokenizer
        from bertsmith.distill.teacher import load_teacher
        from bertsmith.distill.trainer import TrainConfig
        from bertsmith.search.evaluators import DistillEvaluator

        task = resolve_task(args.task)
        teacher = load_teacher(args.teacher, task)
        data = load_task_data(
            task, load_tokenizer(args.teacher), data_dir=common["data_dir"], max_length=128, splits=("train", "dev")
        )
        evaluator = DistillEvaluator(
            teacher,
            data,
            teacher_key="bench",
            steps=args.steps,
            init="teacher",
            config=TrainConfig(lr=args.lr, seed=args.seed),
        )
        spec = teacher.encoder.spec
        two = spec.replace(layers=list(spec.layers[:2]))
        evaluation = evaluator.distill(evaluator.student(two), work / "layers-2", steps=args.rounds * args.steps)
        rows.append(
            {
                "method": "layers-2 (over budget)",
                "metric": evaluation.metrics[metric],
                "metrics": evaluation.metrics,
                "params": encoder_params(two),
                "feasible": False,
                "spec": two.to_dict(),
                "summary": two.summary(),
                "seconds": evaluation.seconds,
            }
        )
    out["rows"] = rows
    RESULTS.mkdir(parents=True, exist_ok=True)
    atomic_write_text(RESULTS / f"{args.task}-{args.budget}-s{args.seed}.json", json.dumps(out, indent=1))
    for row in rows:
        print(f"{row['method']:28s} {row['metric']:.4f}  params {row['params']:>10,}  {row['summary'][:60]}")


def latency(args: argparse.Namespace) -> None:
    from bertsmith.search.costs import measure_latency

    rows = {path: json.loads(path.read_text()) for path in sorted(RESULTS.glob("*.json"))}
    cache = {
        json.dumps(row["spec"], sort_keys=True): row["latency_ms"]  # measured before: kept
        for data in rows.values()
        for row in data["rows"]
        if "latency_ms" in row
    }
    for path, data in rows.items():
        for row in data["rows"]:
            key = json.dumps(row["spec"], sort_keys=True)
            if key not in cache:
                cache[key] = measure_latency(ArchSpec.from_dict(row["spec"]), batch=1, seq_len=128, repeats=30)
            row["latency_ms"] = cache[key]
        atomic_write_text(path, json.dumps(data, indent=1))
        print(path.name, "done")


def summary(args: argparse.Namespace) -> None:
    groups: dict[tuple[str, str, str], list[dict]] = {}
    for path in sorted(RESULTS.glob("*.json")):
        data = json.loads(path.read_text())
        for row in data["rows"]:
            if "round-" in row["method"]:
                continue
            groups.setdefault((data["task"], data["budget"], row["method"]), []).append(row)
    out = []
    for (task, budget, method), rows in sorted(groups.items()):
        metrics = [100 * r["metric"] for r in rows]
        lat = [r["latency_ms"] for r in rows if "latency_ms" in r]
        entry = {
            "task": task,
            "budget": budget,
            "method": method,
            "seeds": len(rows),
            "mean": round(statistics.mean(metrics), 2),
            "std": round(statistics.stdev(metrics), 2) if len(metrics) > 1 else 0.0,
            "params": round(statistics.mean(r["params"] for r in rows)),
            "latency_ms": round(statistics.median(lat), 2) if lat else None,
        }
        out.append(entry)
        print(
            f"{task:5s} {budget:8s} {method:24s} {entry['mean']:6.2f} ± {entry['std']:.2f} (n={len(rows)})  "
            f"params {entry['params']:>10,}  latency {entry['latency_ms']} ms"
        )
    atomic_write_text(ROOT / "bench" / "results" / "prune_summary.json", json.dumps(out, indent=1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run")
    r.add_argument("--teacher", required=True)
    r.add_argument("--task", default="sst2")
    r.add_argument("--data-dir", default=None)
    r.add_argument("--budget", choices=("half", "quarter"), default="half")
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--steps", type=int, default=60, help="distillation steps per pruning round")
    r.add_argument("--rounds", type=int, default=2)
    r.add_argument("--gate-steps", type=int, default=25)
    r.add_argument("--lr", type=float, default=1e-4)
    r.add_argument("--work", default="/tmp/prune-bench")
    sub.add_parser("latency")
    sub.add_parser("summary")
    args = parser.parse_args()
    {"run": run, "latency": latency, "summary": summary}[args.command](args)


if __name__ == "__main__":
    main()
