"""Does the search score predict what distillation delivers? Kendall τ between the search's scores and
the dev scores after the finalists' own distillation, over architectures spread across the budget.

    .venv/bin/python bench/fidelity.py --run runs/default [--archs 8 | --trials 3,5,...] [--seed S] \
        [--out bench/results/fidelity.json]

It reads a finished (or at least searched) `bertsmith run` directory: its config, teacher and the
search's evaluated architectures (`search/trials.csv` and the study's specs). It picks `--archs`
feasible architectures whose non-embedding parameters are evenly spread from 10 % to 100 % of the
budget (the evaluated architecture nearest each quantile of that range), or the trials named by
`--trials`, distils each exactly as the run distils its finalists (`finalists.*`: losses, init,
epochs, lr, batch, a small task's extra epochs with early stopping; the run's seed unless `--seed`), and
reports, beside Kendall τ and Spearman ρ, how many feasible architectures above a quarter of the budget
scored at a constant predictor's level in the search. τ is given over all picked architectures and
over those above half the budget, where the finalist is chosen. As yardsticks it gives τ of two
scores that need no training: the non-embedding parameter count (what the budget limits) and the
whole parameter count (embeddings included); a search score that ranks no better than a count of
parameters has bought nothing with its supernet. Distillations are kept in `RUN/fidelity/t<trial>`
(the run's seed) or `RUN/fidelity/seed<S>/t<trial>`; rerun to continue. Each runs in its own child
process, so memory held by one distillation never adds up across them.

Where a picked architecture was distilled with several seeds, the record also gives the mean over
seeds, τ of the search against that mean, and τ between the seeds themselves: how well one seed's
distillation ranks the architectures the way another seed's does, the ceiling for any search score
measured against a single seed.
"""

from __future__ import annotations

import argparse
import itertools
import json
import multiprocessing
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
            scored.append(
                {
                    "trial": t.number,
                    "value": t.values[0],
                    "params": a["costs"]["params"],
                    "spec": a["spec"],
                    "summary": a["summary"],
                }
            )
    return SearchedRun(
        config,
        teacher,
        search,
        task,
        task.main_metric,
        search["budget"]["params"],
        teacher["constant"]["dev"][task.main_metric],
        scored,
    )


def fidelity_dir(run: Path, trial: int, seed: int, run_seed: int) -> Path:
    """Where the distillation of ``trial`` with ``seed`` is kept."""
    return run / "fidelity" / (f"t{trial}" if seed == run_seed else f"seed{seed}/t{trial}")


def distilled_by_seed(run: Path, trial: int, run_seed: int) -> dict[int, dict]:
    """Every finished distillation of ``trial`` in ``run``, by seed."""
    found = {run_seed: run / "fidelity" / f"t{trial}" / "result.json"}
    for path in (run / "fidelity").glob(f"seed*/t{trial}/result.json"):
        found[int(path.parent.parent.name[4:])] = path
    return {seed: json.loads(p.read_text()) for seed, p in sorted(found.items()) if p.is_file()}


def kendall_taus(rankers: dict[str, list], target: list[float], upper: list[bool]) -> dict[str, dict]:
    """Kendall τ of each ranker against ``target``: over all architectures and over those above half
    the budget (``upper``), where the finalist is chosen."""
    from scipy import stats

    def tau(xs: list, ys: list) -> float:
        return float(stats.kendalltau(xs, ys).statistic)

    return {
        name: {
            "all": tau(xs, target),
            "above_half": tau([x for x, u in zip(xs, upper) if u], [y for y, u in zip(target, upper) if u]),
        }
        for name, xs in rankers.items()
    }


def distil(
    run: Path, spec: dict, run_dir: Path, seed: int, *, augment: int = 0, epochs_scale: float = 1.0, bf16: bool = False
) -> None:
    """Distil ``spec`` as the run distils its finalists (a small task's extra epochs and early stopping
    included), with ``seed``; ``augment`` perturbed copies of the train split, ``epochs_scale`` times the
    epochs, ``bf16`` autocast (for ``bench/finalist_levers.py``). Meant for a child process."""
    from bertsmith.arch import ArchSpec
    from bertsmith.distill.objectives import LossConfig
    from bertsmith.distill.student import distill_on_task
    from bertsmith.distill.task import load_task_data, load_tokenizer
    from bertsmith.pipeline import finalist_schedule

    searched = load_searched_run(run)
    config, f, teacher = searched.config, searched.config.finalists, searched.teacher["directory"]
    train_size = len(
        load_task_data(
            searched.task, load_tokenizer(teacher), data_dir=config.data_dir, max_length=config.max_length
        ).splits["train"]
    )
    train = finalist_schedule(f, seed, train_size, bf16=bf16)
    train = train.model_copy(update={"epochs": train.epochs * epochs_scale})
    distill_on_task(
        ArchSpec.from_dict(spec),
        teacher,
        searched.task,
        losses=LossConfig.from_terms(f.losses),
        config=train,
        run_dir=run_dir,
        data_dir=config.data_dir,
        init_from_teacher=f.init == "teacher",
        augment=augment,
        max_length=config.max_length,
        resume=True,
        progress=False,
    )


def distil_apart(run: Path, spec: dict, run_dir: Path, seed: int, **options) -> dict:
    """``distil`` in a child process (memory held by one distillation never adds up across them), unless
    ``run_dir`` already holds its result; the result."""
    if not (run_dir / "result.json").is_file():
        child = multiprocessing.get_context("spawn").Process(
            target=distil, args=(run, spec, run_dir, seed), kwargs=options
        )
        child.start()
        child.join()
        if child.exitcode != 0:
            raise SystemExit(f"distilling into {run_dir} failed with exit code {child.exitcode}")
    return json.loads((run_dir / "result.json").read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", type=Path, required=True, help="a bertsmith run directory (search complete)")
    parser.add_argument("--archs", type=int, default=8)
    parser.add_argument("--trials", help="comma-separated trial numbers to distil instead of an evenly spread pick")
    parser.add_argument("--seed", type=int, help="distillation seed (default: the run's seed)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "fidelity.json")
    args = parser.parse_args()

    from scipy import stats

    from bertsmith.arch import ArchSpec
    from bertsmith.cost import params as total_params
    from bertsmith.quality import at_constant_level

    run = load_searched_run(args.run)
    config, search = run.config, run.search
    metric, budget, level, scored = run.metric, run.budget, run.level, run.scored
    above_quarter = [s for s in scored if s["params"] > budget / 4]
    constant = [s for s in above_quarter if at_constant_level(s["value"], level, config.quality.constant_margin)]

    picked: list[dict] = []
    if args.trials:
        by_trial = {s["trial"]: s for s in scored}
        wanted = [int(t) for t in args.trials.split(",")]
        unknown = [t for t in wanted if t not in by_trial]
        if unknown:
            parser.error(f"--trials: {unknown[0]} is not a feasible, distinct evaluated trial of {args.run}")
        picked = [by_trial[t] for t in wanted]
    for i in range(0 if args.trials else args.archs):
        target = budget * (0.1 + 0.9 * i / max(1, args.archs - 1))
        left = [s for s in scored if s not in picked]
        if left:
            picked.append(min(left, key=lambda s: abs(s["params"] - target)))
    run_seed = config.seed
    seed = run_seed if args.seed is None else args.seed
    for s in sorted(picked, key=lambda s: s["params"]):
        start = time.perf_counter()
        result = distil_apart(args.run, s["spec"], fidelity_dir(args.run, s["trial"], seed, run_seed), seed)
        s["distilled"] = result["metrics"]["dev"][metric]
        s["seconds"] = time.perf_counter() - start
        print(
            f"t{s['trial']:>3} {s['params'] / budget:6.1%} of budget  search {s['value']:.4f}  "
            f"distilled {s['distilled']:.4f}  ({seed=}, {s['seconds']:.0f} s)  {s['summary']}",
            flush=True,
        )
        s["by_seed"] = {
            str(k): r["metrics"]["dev"][metric] for k, r in distilled_by_seed(args.run, s["trial"], run_seed).items()
        }
    rankers = {
        "search": [s["value"] for s in picked],
        "non_embedding_params": [s["params"] for s in picked],
        "params": [total_params(ArchSpec.from_dict(s["spec"])) for s in picked],
    }
    upper = [s["params"] > budget / 2 for s in picked]
    distilled = [s["distilled"] for s in picked]
    record = {
        "run": str(args.run),
        "task": config.task,
        "metric": metric,
        "budget_params": budget,
        "evaluator": search["evaluator"],
        "supernet_steps": config.search.supernet_steps,
        "seed": seed,
        "kendall_tau": stats.kendalltau(rankers["search"], distilled).statistic,
        "spearman": stats.spearmanr(rankers["search"], distilled).statistic,
        "kendall_tau_by_ranker": kendall_taus(rankers, distilled, upper),
        "constant_level": level,
        "feasible_above_quarter": len(above_quarter),
        "at_constant_level_above_quarter": len(constant),
    }
    seeds = sorted(set.intersection(*(set(s["by_seed"]) for s in picked)), key=int)
    if len(seeds) > 1:
        means = [float(sum(s["by_seed"][k] for k in seeds) / len(seeds)) for s in picked]
        record["seeds"] = [int(k) for k in seeds]
        record["kendall_tau_by_ranker_seed_mean"] = kendall_taus(rankers, means, upper)
        record["kendall_tau_between_seeds"] = {
            f"{a}-{b}": kendall_taus({a: [s["by_seed"][a] for s in picked]}, [s["by_seed"][b] for s in picked], upper)[
                a
            ]
            for a, b in itertools.combinations(seeds, 2)
        }
    record["architectures"] = [
        {k: s[k] for k in ("trial", "params", "summary", "value", "distilled", "by_seed")} for s in picked
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=1) + "\n")
    print(json.dumps({k: v for k, v in record.items() if k != "architectures"}, indent=1))


if __name__ == "__main__":
    main()
