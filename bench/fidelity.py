"""Does the search score predict what distillation delivers? Kendall τ between the search's scores and
the dev scores after the finalists' own distillation, over architectures spread across the budget.

    .venv/bin/python bench/fidelity.py --run runs/default [--archs 8] [--out bench/results/fidelity.json]

It reads a finished (or at least searched) `bertsmith run` directory: its config, teacher and the
search's evaluated architectures (`search/trials.csv` and the study's specs). It picks `--archs`
feasible architectures whose non-embedding parameters are evenly spread from 10 % to 100 % of the
budget (the evaluated architecture nearest each quantile of that range), distils each exactly as the
run distils its finalists (`finalists.*`: losses, init, epochs, lr, batch, seed), and reports, beside
Kendall τ and Spearman ρ, how many feasible architectures above a quarter of the budget scored at a
constant predictor's level in the search. Distillations are kept in `RUN/fidelity/` (rerun to
continue).
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class SearchedRun:
    """What a searched `bertsmith run` directory says: its config, the teacher and search stages' outputs,
    the task's main metric, the budget's parameters, the constant predictor's dev level, and its distinct
    feasible evaluated architectures (trial, search score, params, spec, summary)."""

    config: Any
    teacher: dict
    search: dict
    task: Any
    metric: str
    budget: int
    level: float
    scored: list[dict]


def load_searched_run(run: Path) -> SearchedRun:
    import optuna

    from bertsmith.data import resolve_task
    from bertsmith.runconfig import load_config

    config = load_config(run / "config.yaml")
    teacher = json.loads((run / "teacher" / "done.json").read_text())["outputs"]
    search = json.loads((run / "search" / "done.json").read_text())["outputs"]
    task = resolve_task(config.task)
    study = optuna.load_study(study_name=None, storage=f"sqlite:///{run / 'search' / 'study.db'}")
    scored = []
    for t in study.get_trials(deepcopy=False):
        a = t.user_attrs
        if t.state.name == "COMPLETE" and a.get("feasible") and a.get("duplicate_of") is None and "spec" in a:
            scored.append({"trial": t.number, "value": t.values[0], "params": a["costs"]["params"], "spec": a["spec"],
                           "summary": a["summary"]})
    return SearchedRun(config, teacher, search, task, task.main_metric, search["budget"]["params"],
                       teacher["constant"]["dev"][task.main_metric], scored)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", type=Path, required=True, help="a bertsmith run directory (search complete)")
    parser.add_argument("--archs", type=int, default=8)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "fidelity.json")
    args = parser.parse_args()

    from scipy import stats

    from bertsmith.arch import ArchSpec
    from bertsmith.distill.objectives import LossConfig
    from bertsmith.distill.task import distill_on_task
    from bertsmith.distill.trainer import TrainConfig
    from bertsmith.quality import at_constant_level

    run = load_searched_run(args.run)
    config, teacher, search, task = run.config, run.teacher, run.search, run.task
    metric, budget, level, scored = run.metric, run.budget, run.level, run.scored
    above_quarter = [s for s in scored if s["params"] > budget / 4]
    constant = [s for s in above_quarter if at_constant_level(s["value"], level, config.quality.constant_margin)]

    picked: list[dict] = []
    for i in range(args.archs):
        target = budget * (0.1 + 0.9 * i / max(1, args.archs - 1))
        left = [s for s in scored if s not in picked]
        if left:
            picked.append(min(left, key=lambda s: abs(s["params"] - target)))
    f = config.finalists
    train = TrainConfig(epochs=f.epochs, steps=f.steps, lr=f.lr, batch_size=f.batch_size, warmup=f.warmup,
                        seed=config.seed)
    for s in sorted(picked, key=lambda s: s["params"]):
        run_dir = args.run / "fidelity" / f"t{s['trial']}"
        start = time.perf_counter()
        if not (run_dir / "result.json").is_file():
            distill_on_task(ArchSpec.from_dict(s["spec"]), teacher["directory"], task,
                            losses=LossConfig.from_terms(f.losses), config=train, run_dir=run_dir,
                            data_dir=config.data_dir, init_from_teacher=f.init == "teacher",
                            max_length=config.max_length, resume=True, progress=False)
        result = json.loads((run_dir / "result.json").read_text())
        s["distilled"] = result["metrics"]["dev"][metric]
        s["seconds"] = time.perf_counter() - start
        print(f"t{s['trial']:>3} {s['params'] / budget:6.1%} of budget  search {s['value']:.4f}  "
              f"distilled {s['distilled']:.4f}  {s['summary']}", flush=True)
    search_scores = [s["value"] for s in picked]
    distilled = [s["distilled"] for s in picked]
    record = {
        "run": str(args.run), "task": config.task, "metric": metric, "budget_params": budget,
        "evaluator": search["evaluator"], "supernet_steps": config.search.supernet_steps,
        "kendall_tau": stats.kendalltau(search_scores, distilled).statistic,
        "spearman": stats.spearmanr(search_scores, distilled).statistic,
        "constant_level": level, "feasible_above_quarter": len(above_quarter),
        "at_constant_level_above_quarter": len(constant),
        "architectures": [{k: s[k] for k in ("trial", "params", "summary", "value", "distilled")} for s in picked],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=1) + "\n")
    print(json.dumps({k: v for k, v in record.items() if k != "architectures"}, indent=1))


if __name__ == "__main__":
    main()
