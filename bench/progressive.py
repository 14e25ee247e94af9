"""EfficientBERT's progressive FFN search on a real task, and whether the searched FFNs help.

    .venv/bin/python bench/progressive.py search --teacher TEACHER --task sst2 --data-dir ../shared/data/glue \\
        --work /tmp/pg --stage-trials 8,8,8                 # the three-stage search (resumable)
    .venv/bin/python bench/progressive.py search --teacher TEACHER --task mrpc --data-dir ../shared/data/glue \
        --work /tmp/pg --stage-trials 4,4,4 --eval-steps 60 --warmup-steps 150 --batch-size 16 \
        --validation-fraction 0.1                           # MRPC: 5x the tokens per step, so a smaller search
    .venv/bin/python bench/progressive.py compare --teacher TEACHER --task sst2 --data-dir ../shared/data/glue \\
        --work /tmp/pg --seeds 0,1,2                        # searched vs dense vs published FFNs
    .venv/bin/python bench/progressive.py summary --teacher TEACHER --task sst2 --work /tmp/pg  # mean, spread

``search`` is ``bertsmith search --strategy progressive`` with the settings below (a quarter of the
teacher's non-embedding parameters as the budget, window 0.9); it records the search's cost and result.
``compare`` distils three students of the same backbone and (nearly) the same non-embedding parameter
count from the sliced teacher with the same losses (logits, hidden states, attention: EfficientBERT's
task distillation), steps and learning rate, one run per seed, and reports dev at the last step (no
checkpoint is picked on dev): the search's best (``best.yaml``), a dense FFN of the same size
(``dense.yaml``) and the published EfficientBERT FFNs transplanted at that size
(``efficientbert.yaml``). Results go to ``bench/results/progressive/``.
"""

from __future__ import annotations

import argparse
import json
import statistics
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

RESULTS = ROOT / "bench" / "results" / "progressive"
QUARTER = 10_794_624 // 4  # a quarter of MiniLM-L6's non-embedding parameters
MODELS = ("best", "dense", "efficientbert")


def search(args: argparse.Namespace) -> None:
    from bertsmith.search.job import SearchSettings, run_search_job

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    run_dir = Path(args.work) / args.task
    done = run_dir / "progressive" / "result.json"
    if done.exists():  # already run (e.g. by the equivalent `bertsmith search` command): record it as it is
        info = json.loads(done.read_text(encoding="utf-8"))
        _record(args, info, evaluated=info["evaluated"], seconds=None)
        return
    settings = SearchSettings(
        space=None,
        teacher=Path(args.teacher),
        task=args.task,
        run_dir=run_dir,
        strategy="progressive",
        budget=f"params={QUARTER}",
        eval_steps=args.eval_steps,
        options={
            "stage_trials": args.stage_trials,
            "warmup_steps": args.warmup_steps,
            "validation_fraction": args.validation_fraction,
        },
        batch_size=args.batch_size,
        data_dir=args.data_dir,
        progress=not args.quiet,
    )
    begun = time.perf_counter()
    result = run_search_job(settings)
    info = json.loads(done.read_text(encoding="utf-8"))
    _record(args, info, evaluated=result.evaluated, seconds=time.perf_counter() - begun)


def _record(args: argparse.Namespace, info: dict, *, evaluated: int, seconds: float | None) -> None:
    out = {
        "task": args.task,
        "budget": QUARTER,
        "settings": {k: str(v) for k, v in vars(args).items()},
        "evaluated": evaluated,
        "this_call_seconds": seconds,
    } | info
    RESULTS.mkdir(parents=True, exist_ok=True)
    atomic_write_text(RESULTS / f"{args.task}-search.json", json.dumps(out, indent=1))
    print(
        json.dumps(
            {
                k: out[k]
                for k in ("evaluated", "wall_seconds", "warmup_seconds", "evaluation_seconds", "best", "baselines")
            },
            indent=1,
        )
    )


def compare(args: argparse.Namespace) -> None:
    from bertsmith.cost import encoder_params
    from bertsmith.data import resolve_task
    from bertsmith.distill.objectives import LossConfig
    from bertsmith.distill.student import distill_on_task
    from bertsmith.distill.task import evaluate, load_task_data, load_tokenizer
    from bertsmith.distill.teacher import load_teacher
    from bertsmith.distill.trainer import TrainConfig

    task = resolve_task(args.task)
    folder = Path(args.work) / args.task / "progressive"
    specs = {name: ArchSpec.load(folder / f"{name}.yaml") for name in MODELS}
    only = args.models.split(",") if args.models else MODELS
    path = RESULTS / f"{args.task}-compare{'-' + args.part if args.part else ''}.json"
    out = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {"runs": {}}
    losses = LossConfig(logits=1.0, hidden=1.0, attention=1.0)
    for seed in (int(s) for s in args.seeds.split(",")):
        for name in only:
            key = f"{name}/{seed}"
            if key in out["runs"]:
                continue
            config = TrainConfig(
                steps=args.steps, lr=args.lr, batch_size=args.batch_size, eval_every=args.steps, seed=seed
            )
            begun = time.perf_counter()
            result = distill_on_task(
                specs[name],
                args.teacher,
                task,
                losses=losses,
                config=config,
                run_dir=Path(args.work) / f"{args.task}-compare" / name / str(seed),
                data_dir=args.data_dir,
                init_from_teacher=True,
                resume=True,
                progress=False,
            )
            out["runs"][key] = {"dev": result.metrics["dev"], "seconds": time.perf_counter() - begun}
            print(key, result.metrics["dev"], flush=True)
            _summarise(out, specs, task.main_metric, args, encoder_params)
            RESULTS.mkdir(parents=True, exist_ok=True)
            atomic_write_text(path, json.dumps(out, indent=1))
    if "teacher_dev" not in out:
        teacher = load_teacher(args.teacher, task)
        data = load_task_data(
            task, load_tokenizer(args.teacher), data_dir=args.data_dir, max_length=128, splits=("train", "dev")
        )
        out["teacher_dev"] = evaluate(teacher, data, "dev")
        atomic_write_text(path, json.dumps(out, indent=1))
    print(json.dumps(out["summary"], indent=1))


def summary(args: argparse.Namespace) -> None:
    """Merge the runs of every ``compare`` part of a task (parts ran side by side) into one summary."""
    from bertsmith.cost import encoder_params
    from bertsmith.data import resolve_task

    task = resolve_task(args.task)
    folder = Path(args.work) / args.task / "progressive"
    specs = {name: ArchSpec.load(folder / f"{name}.yaml") for name in MODELS}
    merged: dict = {"runs": {}}
    for path in sorted(RESULTS.glob(f"{args.task}-compare*.json")):
        part = json.loads(path.read_text(encoding="utf-8"))
        merged["runs"].update(part["runs"])
        merged.setdefault("teacher_dev", part.get("teacher_dev"))
        merged["protocol"] = part["protocol"]
    args.steps, args.lr, args.batch_size = (merged["protocol"][k] for k in ("steps", "lr", "batch_size"))
    _summarise(merged, specs, task.main_metric, args, encoder_params)
    atomic_write_text(RESULTS / f"{args.task}-summary.json", json.dumps(merged, indent=1))
    print(json.dumps(merged["summary"], indent=1))


def _summarise(out: dict, specs: dict, metric: str, args: argparse.Namespace, encoder_params) -> None:
    summary = {}
    for name, spec in specs.items():
        values = [r["dev"][metric] for k, r in out["runs"].items() if k.split("/")[0] == name]
        accuracy = [
            r["dev"]["accuracy"] for k, r in out["runs"].items() if k.split("/")[0] == name and "accuracy" in r["dev"]
        ]
        summary[name] = {
            "summary": spec.summary(),
            "non_embedding_params": encoder_params(spec),
            "runs": len(values),
            "metric": metric,
            "mean": statistics.mean(values) if values else None,
            "std": statistics.stdev(values) if len(values) > 1 else None,
            "min": min(values, default=None),
            "max": max(values, default=None),
            "accuracy_mean": statistics.mean(accuracy) if accuracy else None,
        }
    out["summary"] = summary
    out["protocol"] = {
        "steps": args.steps,
        "lr": args.lr,
        "batch_size": args.batch_size,
        "losses": "logits+hidden+attention",
        "init": "teacher slice",
        "dev": "at the last step",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("search", "compare", "summary"):
        p = sub.add_parser(name)
        p.add_argument("--teacher", required=True)
        p.add_argument("--task", default="sst2")
        p.add_argument("--data-dir")
        p.add_argument("--work", default="/tmp/progressive-bench")
        p.add_argument("--batch-size", type=int, default=32)
    s = sub.choices["search"]
    s.add_argument("--stage-trials", default="8,8,8")
    s.add_argument("--eval-steps", type=int, default=100)
    s.add_argument("--warmup-steps", type=int, default=300)
    s.add_argument("--validation-fraction", type=float, default=0.05)
    s.add_argument("--quiet", action="store_true")
    c = sub.choices["compare"]
    c.add_argument("--seeds", default="0,1,2")
    c.add_argument("--steps", type=int, default=800)
    c.add_argument("--lr", type=float, default=1e-4)
    c.add_argument("--models", help="a comma-separated subset of best, dense, efficientbert")
    c.add_argument(
        "--part", help="write the runs to <task>-compare-PART.json (parts run side by side; `summary` merges them)"
    )
    args = parser.parse_args()
    {"search": search, "compare": compare, "summary": summary}[args.command](args)


if __name__ == "__main__":
    main()
