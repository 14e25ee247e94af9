"""Bort's extraction on a real task: how many surrogate trainings the approximation scheme spends against
the grid, whether its selection is on the Pareto set of an exhaustive run, and the selected
architecture's size, CPU latency and accuracy against the teacher (and against BERT-base's shape).

    .venv/bin/python bench/extract.py search --teacher TEACHER --task sst2 --data-dir ../shared/data/glue \\
        --grid teacher --work /tmp/extract-bench            # the scheme on the teacher-scaled grid
    .venv/bin/python bench/extract.py search ... --grid small             # the scheme on the small grid
    .venv/bin/python bench/extract.py search ... --grid small --exhaustive  # every small-grid candidate
    .venv/bin/python bench/extract.py final --teacher TEACHER --task sst2 --data-dir ../shared/data/glue \\
        --work /tmp/extract-bench                           # distil the selection longer
    .venv/bin/python bench/extract.py latency --task sst2   # CPU latency, alone on the machine
    .venv/bin/python bench/extract.py compare               # scheme vs exhaustive on the small grid
    .venv/bin/python bench/extract.py agora --teacher TEACHER --task sst2 --data-dir ../shared/data/glue \
        --work /tmp/extract-bench                           # Agora vs plain enumeration, same steps

The budget is a quarter of the teacher's non-embedding parameters (MiniLM-L6: 2,698,656). Each
candidate's surrogate is a ``--steps`` distillation from the sliced teacher. Results go to
``bench/results/extract/``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
try:
    import bertsmith  # noqa: F401
except ImportError:
    sys.path.insert(0, str(ROOT / "src"))

import optuna  # noqa: E402

from bertsmith.arch import ArchSpec  # noqa: E402
from bertsmith.files import atomic_write_text  # noqa: E402
from bertsmith.search.job import SearchSettings, run_search_job  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "extract"
QUARTER = 10_794_624 // 4
SMALL_GRID = {"depth": [1, 2, 3], "heads": [6, 12], "hidden": [192, 384], "ffn": [192, 384, 1152], "head_dim": 32}
MAX_LENGTH = {"sst2": 64, "mrpc": 128}


def _name(args: argparse.Namespace) -> str:
    refine = "" if args.refine == 0.05 else f"-k{args.refine:g}"
    return f"{args.task}-{args.grid}-{'exhaustive' if args.exhaustive else f'eps{args.epsilon:g}{refine}'}"


def search(args: argparse.Namespace) -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    work = Path(args.work)
    grid = args.grid
    if grid == "small":
        grid_file = work / "small-grid.json"
        work.mkdir(parents=True, exist_ok=True)
        grid_file.write_text(json.dumps(SMALL_GRID))
        grid = str(grid_file)
    settings = SearchSettings(
        space=None,
        teacher=Path(args.teacher),
        task=args.task,
        run_dir=work / _name(args),
        strategy="extract",
        budget=f"params={QUARTER}",
        evaluator="short",
        init="teacher",
        eval_steps=args.steps,
        eval_lr=args.lr,
        time_budget=args.time_budget,
        options={
            "grid": str(grid),
            "epsilon": args.epsilon,
            "exhaustive": args.exhaustive,
            "refine_margin": args.refine,
        },
        data_dir=Path(args.data_dir) if args.data_dir else None,
        max_length=MAX_LENGTH.get(args.task, 128),
        seed=args.seed,
        progress=False,
    )
    start = time.perf_counter()
    result = run_search_job(settings)
    selection = json.loads((settings.run_dir / "extract" / "selection.json").read_text())
    plan = json.loads((settings.run_dir / "extract" / "plan.json").read_text())
    planned = {tuple(c["dahi"]): c["stage"] for c in plan["candidates"] if c["stage"]}
    trials = [
        {
            "dahi": t.user_attrs["extract"],
            "stage": planned[tuple(t.user_attrs["extract"])],
            "metric": t.values[0],
            "params": t.user_attrs["costs"]["params"],
            "flops": t.user_attrs["costs"]["flops"],
            "seconds": t.user_attrs["seconds"],
        }
        for t in result.study.get_trials(deepcopy=False)
        if "extract" in t.user_attrs and t.values and tuple(t.user_attrs["extract"]) in planned
    ]
    out = {
        "task": args.task,
        "grid": args.grid,
        "exhaustive": args.exhaustive,
        "epsilon": args.epsilon,
        "steps": args.steps,
        "lr": args.lr,
        "seed": args.seed,
        "budget_params": QUARTER,
        "refine": args.refine,
        "time_budget": args.time_budget,
        "stopped": result.stopped,
        "wall_seconds": time.perf_counter() - start,
        "surrogate_seconds": sum(t["seconds"] for t in trials),
        "counts": selection["counts"],
        "rule": selection["rule"],
        "selected": selection["selected"],
        "maximum_point": selection["maximum_point"],
        "pareto": selection["pareto"],
        "trials": trials,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    atomic_write_text(RESULTS / f"{_name(args)}.json", json.dumps(out, indent=1))
    print(json.dumps({k: out[k] for k in ("counts", "wall_seconds")} | {"selected": out["selected"]["summary"]}))


def _on_front(dahi: list[int], pareto: list[dict]) -> bool:
    return any(p["dahi"] == dahi for p in pareto)


def compare(args: argparse.Namespace) -> None:
    """Scheme vs exhaustive on the small grid, per task."""
    out = {}
    for task in ("sst2", "mrpc"):
        scheme, full = RESULTS / f"{task}-small-eps{args.epsilon:g}.json", RESULTS / f"{task}-small-exhaustive.json"
        if not (scheme.exists() and full.exists()):
            continue
        s, f = json.loads(scheme.read_text()), json.loads(full.read_text())
        metric = {tuple(t["dahi"]): t["metric"] for t in f["trials"]}
        out[task] = {
            "scheme_trained": s["counts"]["surrogate_trained"],
            "exhaustive_trained": f["counts"]["surrogate_trained"],
            "grid_within_budget": f["counts"]["within_budget"],
            "scheme_selected": s["selected"]["dahi"],
            "exhaustive_selected": f["selected"]["dahi"],
            "scheme_selection_on_full_front": _on_front(s["selected"]["dahi"], f["pareto"]),
            "scheme_selected_metric_in_full_run": metric.get(tuple(s["selected"]["dahi"])),
            "exhaustive_selected_metric": f["selected"]["metric"],
            "scheme_surrogate_seconds": sum(t["seconds"] for t in s["trials"]),
            "exhaustive_surrogate_seconds": sum(t["seconds"] for t in f["trials"]),
            "full_front": [p["dahi"] for p in f["pareto"]],
        }
    atomic_write_text(RESULTS / "compare.json", json.dumps(out, indent=1))
    print(json.dumps(out, indent=1))


def final(args: argparse.Namespace) -> None:
    """Distil the scheme's selection (of ``--grid``) for longer; its dev metrics against the teacher's."""
    from bertsmith.cost import encoder_params, params
    from bertsmith.data import resolve_task
    from bertsmith.distill.objectives import LossConfig
    from bertsmith.distill.student import distill_on_task
    from bertsmith.distill.task import evaluate, load_task_data, load_tokenizer
    from bertsmith.distill.teacher import load_teacher
    from bertsmith.distill.trainer import TrainConfig

    name = f"{args.task}-{args.grid}-eps{args.epsilon:g}"
    selection = json.loads((RESULTS / f"{name}.json").read_text())
    spec = ArchSpec.from_dict(selection["selected"]["spec"])
    task = resolve_task(args.task)
    max_length = MAX_LENGTH.get(args.task, 128)
    teacher = load_teacher(args.teacher, task)
    data = load_task_data(
        task, load_tokenizer(args.teacher), data_dir=args.data_dir, max_length=max_length, splits=("train", "dev")
    )
    teacher_dev = evaluate(teacher, data, "dev")
    config = TrainConfig(
        steps=args.final_steps, lr=args.lr, batch_size=32, eval_every=max(1, args.final_steps // 5), seed=args.seed
    )
    result = distill_on_task(
        spec,
        args.teacher,
        task,
        losses=LossConfig(),
        config=config,
        run_dir=Path(args.work) / f"{name}-final",
        data_dir=args.data_dir,
        init_from_teacher=True,
        max_length=max_length,
        resume=True,
        progress=False,
    )
    bert_base = ArchSpec.uniform(layers=12, hidden=768, heads=12, ffn=3072, embeddings=spec.embeddings)
    out = {
        "task": args.task,
        "metric": task.main_metric,
        "steps": args.final_steps,
        "lr": args.lr,
        "seed": args.seed,
        "selected": {
            "summary": spec.summary(),
            "dahi": selection["selected"]["dahi"],
            "spec": spec.to_dict(),
            "non_embedding_params": encoder_params(spec),
            "params": params(spec),
            "dev": result.metrics["dev"],
        },
        "teacher": {
            "summary": teacher.encoder.spec.summary(),
            "spec": teacher.encoder.spec.to_dict(),
            "non_embedding_params": encoder_params(teacher.encoder.spec),
            "params": params(teacher.encoder.spec),
            "dev": teacher_dev,
        },
        "bert_base": {
            "summary": bert_base.summary(),
            "spec": bert_base.to_dict(),
            "non_embedding_params": encoder_params(bert_base),
        },
    }
    atomic_write_text(RESULTS / f"{args.task}-final.json", json.dumps(out, indent=1))
    print(json.dumps(out, indent=1))


def agora(args: argparse.Namespace) -> None:
    """Agora against plain enumeration of the same hyperparameter sets on the selected architecture,
    at the same total optimizer steps; both start from the sliced teacher and select on the same
    validation split carved from train; dev is reported."""
    from bertsmith.data import resolve_task
    from bertsmith.distill.agora import agora_on_task
    from bertsmith.distill.objectives import LossConfig
    from bertsmith.distill.trainer import TrainConfig

    selection = json.loads((RESULTS / f"{args.task}-{args.grid}-eps{args.epsilon:g}.json").read_text())
    spec = ArchSpec.from_dict(selection["selected"]["spec"])
    task = resolve_task(args.task)
    common = dict(
        losses=LossConfig(),
        data_dir=args.data_dir,
        init_from_teacher=True,
        max_length=MAX_LENGTH.get(args.task, 128),
        progress=False,
    )
    config = TrainConfig(steps=args.agora_steps, batch_size=32, lr=1e-4, eval_every=args.agora_steps, seed=args.seed)
    start = time.perf_counter()
    grown = agora_on_task(
        spec, args.teacher, task, config=config, run_dir=Path(args.work) / f"{args.task}-agora", **common
    )
    agora_seconds = time.perf_counter() - start
    info = json.loads((Path(args.work) / f"{args.task}-agora" / "result.json").read_text())
    per_set = grown.steps // len(info["sets"])  # the same total steps, shared by the sets
    start = time.perf_counter()
    plain = agora_on_task(
        spec,
        args.teacher,
        task,
        config=config.model_copy(update={"steps": per_set, "eval_every": per_set}),
        run_dir=Path(args.work) / f"{args.task}-plain",
        max_rounds=1,
        **common,
    )
    plain_seconds = time.perf_counter() - start
    out = {
        "task": args.task,
        "metric": task.main_metric,
        "spec": spec.summary(),
        "sets": info["sets"],
        "steps_per_training": args.agora_steps,
        "seed": args.seed,
        "agora": {
            "steps": grown.steps,
            "seconds": agora_seconds,
            "metrics": grown.metrics,
            "rounds": [
                {k: r[k] for k in ("round", "sets", "best_set", "train_size", "dropped")}
                | {"mistakes": len(r["mistakes"])}
                for r in info["rounds"]
            ],
        },
        "plain": {"steps": plain.steps, "steps_per_set": per_set, "seconds": plain_seconds, "metrics": plain.metrics},
    }
    atomic_write_text(RESULTS / f"{args.task}-agora.json", json.dumps(out, indent=1))
    print(json.dumps({k: out[k] for k in ("agora", "plain")}, indent=1))


def latency(args: argparse.Namespace) -> None:
    """CPU latency (batch 1 and 32, sequence 128) of the selected architecture, the teacher and
    BERT-base's shape, one process, every thread; adds it to ``<task>-final.json``. Run it alone."""
    import torch

    from bertsmith.search.costs import measure_latency

    path = RESULTS / f"{args.task}-final.json"
    out = json.loads(path.read_text())
    timing = {}
    for label in ("selected", "teacher", "bert_base"):
        arch = ArchSpec.from_dict(out[label]["spec"])
        timing[label] = {
            "batch1": measure_latency(arch, batch=1, seq_len=128, repeats=args.repeats),
            "batch32": measure_latency(arch, batch=32, seq_len=128, warmup=1, repeats=5),
        }
    out["latency_ms"] = timing | {"threads": torch.get_num_threads()}
    for ref in ("teacher", "bert_base"):
        out[f"speedup_vs_{ref}"] = {b: timing[ref][b] / timing["selected"][b] for b in ("batch1", "batch32")}
    atomic_write_text(path, json.dumps(out, indent=1))
    print(json.dumps({k: v for k, v in out.items() if k.startswith(("latency", "speedup"))}, indent=1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("search", "final", "latency", "compare", "agora"):
        p = sub.add_parser(name)
        p.add_argument("--teacher")
        p.add_argument("--task", default="sst2")
        p.add_argument("--data-dir")
        p.add_argument("--work", default="/tmp/extract-bench")
        p.add_argument("--grid", default="teacher", choices=("teacher", "small", "bort"))
        p.add_argument("--epsilon", type=float, default=0.2)
        p.add_argument("--exhaustive", action="store_true")
        p.add_argument("--refine", type=float, default=0.05, help="the fine stage's margin κ below T")
        p.add_argument("--time-budget", type=float, help="seconds of surrogate training for the whole study")
        p.add_argument("--steps", type=int, default=50, help="surrogate distillation steps per candidate")
        p.add_argument("--final-steps", type=int, default=1000)
        p.add_argument("--lr", type=float, default=1e-4)
        p.add_argument("--repeats", type=int, default=20)
        p.add_argument("--agora-steps", type=int, default=100, help="steps of each Agora training")
        p.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    {"search": search, "final": final, "latency": latency, "compare": compare, "agora": agora}[args.command](args)


if __name__ == "__main__":
    main()
