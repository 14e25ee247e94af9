"""Memory of distillations run one after another in one Python process, as a run's finalists and
baselines are: does resident memory come back after each, or does it add up?

    .venv/bin/python bench/memory_growth.py --work /tmp/memory-growth     # ~5 min on 2 cores

It fine-tunes the default teacher briefly on the task (cached under WORK/cache: memory, not accuracy,
is measured), loads the task data once to warm the token cache, then distils ``--count`` students of
different shapes from it, each as a finalist is distilled (``distill_on_task`` with the default losses,
started from the teacher's sliced weights, evaluated on dev twice), each followed by the run's
``release_memory``. It prints and records in ``bench/results/memory_growth.json``: the resident memory
before the first distillation and after each, each distillation's own peak, and the growth from before
the first to after the last (goal: <= 0.3 GB).
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
try:
    import bertsmith  # noqa: F401
except ImportError:
    sys.path.insert(0, str(ROOT / "src"))

from bertsmith.arch import ArchSpec  # noqa: E402
from bertsmith.files import atomic_write_text  # noqa: E402
from bertsmith.data import resolve_task  # noqa: E402
from bertsmith.distill.objectives import LossConfig  # noqa: E402
from bertsmith.distill.student import distill_on_task  # noqa: E402
from bertsmith.distill.task import load_task_data, load_tokenizer  # noqa: E402
from bertsmith.distill.teacher import finetune_teacher, load_teacher  # noqa: E402
from bertsmith.distill.trainer import TrainConfig  # noqa: E402
from bertsmith.memory import PeakMemory, release_memory, rss_gb  # noqa: E402

GOAL_GB = 0.3
SHAPES = ((3, 384, 6, 768), (2, 256, 4, 512), (4, 192, 3, 768), (6, 128, 2, 512), (1, 384, 12, 1536))  # heads of 32


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, required=True, help="scratch directory (teacher cache and runs)")
    parser.add_argument("--task", default="rotten-tomatoes")
    parser.add_argument("--count", type=int, default=5, help="distillations (shapes cycle)")
    parser.add_argument("--steps", type=int, default=60, help="optimizer steps per distillation")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "memory_growth.json")
    args = parser.parse_args()

    task, cache = resolve_task(args.task), args.work / "cache"
    teacher_dir = finetune_teacher(
        None, task, config=TrainConfig(steps=30, batch_size=32), cache_dir=cache, progress=False
    ).directory
    teacher_spec = load_teacher(teacher_dir, task).encoder.spec
    load_task_data(task, load_tokenizer(teacher_dir), data_dir=None, max_length=128, cache_dir=cache)
    release_memory()
    before = rss_gb()
    print(f"before the first distillation: {before:.2f} GB", flush=True)
    rows = []
    for i in range(args.count):
        layers, hidden, heads, ffn = SHAPES[i % len(SHAPES)]
        spec = ArchSpec.uniform(
            layers=layers,
            hidden=hidden,
            heads=heads,
            ffn=ffn,
            qk_dim=32,
            v_dim=32,
            embeddings=teacher_spec.embeddings.model_dump(),
        )
        run_dir = args.work / "runs" / f"d{i + 1}"
        shutil.rmtree(run_dir, ignore_errors=True)
        start = time.perf_counter()
        with PeakMemory() as peak:
            distill_on_task(
                spec,
                teacher_dir,
                task,
                losses=LossConfig.from_terms("logits,hidden,attention"),
                config=TrainConfig(steps=args.steps, eval_every=args.steps // 2, lr=1e-4, seed=i),
                run_dir=run_dir,
                init_from_teacher=True,
                cache_dir=cache,
                progress=False,
            )
        seconds = time.perf_counter() - start
        release_memory()
        rows.append(
            {
                "shape": spec.summary(),
                "seconds": round(seconds, 1),
                "peak_gb": round(peak.gb, 3),
                "after_gb": round(rss_gb(), 3),
            }
        )
        print(
            f"{i + 1}. {spec.summary()}: {seconds:.0f} s, peak {peak.gb:.2f} GB, after {rows[-1]['after_gb']:.2f} GB",
            flush=True,
        )
    growth = rows[-1]["after_gb"] - before
    record = {
        "task": task.name,
        "count": args.count,
        "steps": args.steps,
        "before_gb": round(before, 3),
        "distillations": rows,
        "growth_gb": round(growth, 3),
        "growth_after_first_gb": round(rows[-1]["after_gb"] - rows[0]["after_gb"], 3),
        "goal_gb": GOAL_GB,
        "met": growth <= GOAL_GB,
        "machine": platform.machine(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out, json.dumps(record, indent=1) + "\n")
    print(f"growth over {args.count} distillations: {growth:+.3f} GB (goal <= {GOAL_GB} GB)")


if __name__ == "__main__":
    main()
