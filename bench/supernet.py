"""Supernet quality and speed on a real task: slice evaluations per minute, and the rank agreement
(Kendall tau) between supernet-slice accuracy and accuracy after a short distillation.

    .venv/bin/python bench/supernet.py --teacher TEACHER_DIR --task sst2 --data-dir ../shared/data/glue

1. Trains (or reuses) the sandwich-rule supernet of ``bench/spaces/minilm.yaml`` in ``--run-dir``.
2. Picks ``--archs`` architectures spread over the space: 400 samples sorted by non-embedding
   parameters, then evenly spaced quantiles, so small, medium and large ones are all present.
3. Scores each by its supernet slice (no training) on dev, timing every evaluation.
4. Distils each for ``--short-steps`` steps from the importance-ordered teacher sliced to its shape
   (``init=teacher``: independent of the supernet, the way finalists are trained) and scores it on dev.
5. Reports Kendall tau between the two scores, and slice evaluations per minute.

Every finished architecture is recorded in the result file at once, so an interrupted run picks up
where it stopped. Writes ``bench/results/supernet_<task>.json`` (or ``--out``).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
try:
    import bertsmith  # noqa: F401
except ImportError:
    sys.path.insert(0, str(ROOT / "src"))

from scipy.stats import kendalltau, spearmanr  # noqa: E402

from bertsmith.arch import ArchSpec  # noqa: E402
from bertsmith.files import atomic_write_text  # noqa: E402
from bertsmith.cost import encoder_params  # noqa: E402
from bertsmith.data import resolve_task  # noqa: E402
from bertsmith.distill.task import evaluate, load_task_data, load_tokenizer  # noqa: E402
from bertsmith.files import files_digest  # noqa: E402
from bertsmith.distill.teacher import load_teacher  # noqa: E402
from bertsmith.distill.trainer import TrainConfig  # noqa: E402
from bertsmith.search.evaluators import DistillEvaluator, SliceEvaluator  # noqa: E402
from bertsmith.search.space import SearchSpace  # noqa: E402
from bertsmith.search.supernet import SupernetJob  # noqa: E402


def spread(space: SearchSpace, count: int, seed: int) -> list[ArchSpec]:
    rng = np.random.default_rng(seed)
    pool = sorted((space.sample(rng) for _ in range(400)), key=encoder_params)
    return [pool[int(round(q))] for q in np.linspace(0, len(pool) - 1, count)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--teacher", required=True, help="fine-tuned task teacher directory")
    parser.add_argument("--task", default="sst2")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--space", default=str(ROOT / "bench" / "spaces" / "minilm.yaml"))
    parser.add_argument("--run-dir", default="/tmp/bertsmith-bench-supernet")
    parser.add_argument("--steps", type=int, default=1500, help="supernet training steps")
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--random-subnets", type=int, default=2)
    parser.add_argument("--archs", type=int, default=12)
    parser.add_argument("--short-steps", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()

    task = resolve_task(args.task)
    space = SearchSpace.load(args.space)
    out = Path(args.out or ROOT / "bench" / "results" / f"supernet_{task.name}.json")
    config = TrainConfig(
        steps=args.steps, batch_size=32, lr=args.lr, eval_every=max(1, args.steps // 5), seed=args.seed
    )
    t0 = time.perf_counter()
    job = SupernetJob(
        space,
        Path(args.teacher),
        task,
        run_dir=Path(args.run_dir) / "supernet",
        config=config,
        random_subnets=args.random_subnets,
        data_dir=args.data_dir,
    )
    trained = job.train()
    train_seconds = time.perf_counter() - t0
    print(
        f"supernet: {trained.steps} steps, dev {trained.metrics} ({'reused' if trained.reused else f'{train_seconds:.0f} s'})"
    )

    data = load_task_data(
        task, load_tokenizer(args.teacher), data_dir=args.data_dir, max_length=128, splits=("train", "dev")
    )
    teacher = load_teacher(args.teacher, task).eval()
    teacher_dev = evaluate(teacher, data, "dev")[task.main_metric]
    key = job.key
    slicer = SliceEvaluator(job, data)
    slicer.prepare()
    short = DistillEvaluator(
        teacher,
        data,
        teacher_key=files_digest(args.teacher),
        steps=args.short_steps,
        init="teacher",
        config=TrainConfig(batch_size=32, lr=1e-4, seed=args.seed),
    )

    # earlier rows: short distillations do not depend on the supernet, slice scores do
    previous = json.loads(out.read_text()) if out.exists() else {}
    same_short = previous.get("short_steps") == args.short_steps
    done = {json.dumps(r["spec"], sort_keys=True): r for r in previous.get("archs", [])}
    rows = []
    for i, spec in enumerate(spread(space, args.archs, args.seed)):
        row = dict(done.get(json.dumps(spec.to_dict(), sort_keys=True), {}))
        if previous.get("supernet") != key or "slice" not in row:
            sliced = slicer.evaluate(spec, Path(args.run_dir) / "slice")
            row |= {"slice": sliced.metrics[task.main_metric], "slice_seconds": sliced.seconds}
        if not same_short or "short" not in row:
            distilled = short.evaluate(spec, Path(args.run_dir) / "short" / f"{i:02d}")
            row |= {"short": distilled.metrics[task.main_metric], "short_seconds": distilled.seconds}
        row |= {"spec": spec.to_dict(), "summary": spec.summary(), "params": encoder_params(spec)}
        rows.append(row)
        print(
            f"{i + 1:>2}/{args.archs} {row['params'] / 1e6:5.2f}M  slice {row['slice']:.4f}  "
            f"short {row['short']:.4f}  {row['summary'][:80]}",
            flush=True,
        )
        _write(out, args, key, trained, teacher_dev, rows, final=False)
    _write(out, args, key, trained, teacher_dev, rows, final=True)


def _write(out: Path, args, key: str, trained, teacher_dev: float, rows: list[dict], final: bool) -> None:
    result = {
        "task": args.task,
        "space": args.space,
        "supernet": key,
        "supernet_steps": trained.steps,
        "supernet_dev": trained.metrics,
        "teacher_dev": teacher_dev,
        "short_steps": args.short_steps,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "machine": platform.processor() or platform.machine(),
        "archs": rows,
    }
    if final and len(rows) >= 3:
        slice_acc, short_acc = [r["slice"] for r in rows], [r["short"] for r in rows]
        seconds = [r["slice_seconds"] for r in rows]
        result |= {
            "kendall_tau": float(kendalltau(slice_acc, short_acc)[0]),
            "spearman": float(spearmanr(slice_acc, short_acc)[0]),
            "slice_evals_per_minute": 60.0 / float(np.mean(seconds)),
            "slice_seconds_median": float(np.median(seconds)),
        }
        print(
            f"Kendall tau {result['kendall_tau']:.3f} (Spearman {result['spearman']:.3f}) over {len(rows)} "
            f"architectures; {result['slice_evals_per_minute']:.1f} slice evaluations per minute"
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
