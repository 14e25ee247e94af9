"""NSGA-II against random search on a real task: the Pareto front (dev metric vs non-embedding
parameters) that each reaches with the same number of evaluated architectures.

    .venv/bin/python bench/search_front.py --teacher TEACHER_DIR --supernet RUN/supernet --task sst2 \\
        --data-dir ../shared/data/glue --time-budget 300

Both searches use the supernet-slice evaluator with the trained supernet of ``bench/supernet.py``
(``--supernet``, linked into each run directory; the supernet settings must match it). NSGA-II runs
for ``--time-budget`` seconds of evaluation; random search then gets exactly as many evaluated
architectures. Each front is scored by its hypervolume: the area, in (metric, parameters/budget)
coordinates, that the front dominates above the reference point (``--floor`` metric, the parameter
budget). Writes ``bench/results/search_front_<task>_s<seed>.json``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
try:
    import bertsmith  # noqa: F401
except ImportError:
    sys.path.insert(0, str(ROOT / "src"))

import optuna  # noqa: E402

from bertsmith.files import atomic_write_text  # noqa: E402
from bertsmith.search.job import SearchSettings, run_search_job  # noqa: E402


def hypervolume(front: list[tuple[float, float]], floor: float, budget: float) -> float:
    """Area dominated by (metric ↑, params ↓) points, in units of metric × (params / budget)."""
    area, best = 0.0, floor
    for metric, params in sorted(front, key=lambda p: p[1]):  # cheapest first; the step function rises
        if metric > best:
            area += (metric - best) * (1.0 - params / budget)
            best = metric
    return area


def best_within(front: list[tuple[float, float]], budget: float) -> dict[str, float | None]:
    """The best metric within 1/8, 1/4, 1/2 and all of the parameter budget."""
    out = {}
    for share in (0.125, 0.25, 0.5, 1.0):
        fits = [m for m, p in front if p <= share * budget]
        out[f"{share:g}"] = max(fits) if fits else None
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--teacher", required=True)
    parser.add_argument("--supernet", required=True, help="a trained supernet directory (bench/supernet.py)")
    parser.add_argument("--task", default="sst2")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--space", default=str(ROOT / "bench" / "spaces" / "minilm.yaml"))
    parser.add_argument("--budget", default="params=5M")
    parser.add_argument("--supernet-steps", type=int, default=600)
    parser.add_argument("--time-budget", type=float, default=300.0, help="seconds of evaluation for NSGA-II")
    parser.add_argument("--population-size", type=int, default=16)
    parser.add_argument("--floor", type=float, default=0.5, help="reference metric of the hypervolume")
    parser.add_argument("--run-dir", default="/tmp/bertsmith-bench-search")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)

    results = {}
    evaluated = None
    for strategy in ("nsga2", "random"):
        run_dir = Path(args.run_dir) / strategy
        run_dir.mkdir(parents=True, exist_ok=True)
        if not (run_dir / "supernet").exists():
            shutil.copytree(args.supernet, run_dir / "supernet", ignore=shutil.ignore_patterns("training"))
        settings = SearchSettings(
            space=Path(args.space),
            teacher=Path(args.teacher),
            task=args.task,
            run_dir=run_dir,
            strategy=strategy,
            budget=args.budget,
            supernet_steps=args.supernet_steps,
            options={"population_size": args.population_size} if strategy == "nsga2" else {},
            data_dir=Path(args.data_dir) if args.data_dir else None,
            seed=args.seed,
            trials=10_000 if strategy == "nsga2" else evaluated,
            time_budget=args.time_budget if strategy == "nsga2" else None,
        )
        result = run_search_job(settings)
        evaluated = result.evaluated
        budget = float(json.loads((run_dir / "search.json").read_text())["budget"]["params"])
        front = [(p.values[0], p.values[1]) for p in result.front]
        trials = [t for t in result.study.trials if t.user_attrs.get("feasible") and t.values]
        results[strategy] = {
            "evaluated": result.evaluated,
            "over_budget": result.infeasible,
            "duplicates": result.duplicates,
            "evaluation_seconds": sum(t.user_attrs.get("seconds", 0.0) for t in trials),
            "hypervolume": hypervolume(front, args.floor, budget),
            "best_metric": max(v for v, _ in front),
            "best_within": best_within(front, budget),
            "front": [{"metric": m, "params": p} for m, p in front],
        }
        print(
            f"{strategy}: {result.evaluated} evaluated, {result.infeasible} over budget, front of {len(front)}, "
            f"hypervolume {results[strategy]['hypervolume']:.4f}, best {results[strategy]['best_metric']:.4f}",
            flush=True,
        )
    out = ROOT / "bench" / "results" / f"search_front_{args.task}_s{args.seed}.json"
    atomic_write_text(
        out,
        json.dumps(
            {
                "task": args.task,
                "budget": args.budget,
                "time_budget": args.time_budget,
                "floor": args.floor,
                "population_size": args.population_size,
                "seed": args.seed,
                "strategies": results,
            },
            indent=1,
        ),
    )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
