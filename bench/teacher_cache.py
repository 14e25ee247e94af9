"""Does the teacher cache change what distillation delivers, and what does it save? One student distilled
as `bertsmith run` distils its finalists, with the cache off, into an empty cache, and again from the
filled cache, on real data, several seeds.

    .venv/bin/python bench/teacher_cache.py --work /tmp/quality --data-dir ../shared/data/glue \
        [--tasks sst2,mrpc] [--seeds 0,1,2] [--out bench/results/teacher_cache.json]

The tasks and their teachers are `bench/quality.py`'s (prepared and fine-tuned once in WORK, shared with
it). The student has the shape the embedded default job chose (3 layers, hidden 384, 5 heads of 32,
FFN 768), starts from the teacher's weights sliced to it, and trains with the run's finalist settings
(default losses: logits, hidden states, attention relations). Arms, each seed:
- `off`: `BERTSMITH_TEACHER_CACHE_GB=0`, the teacher runs in every step;
- `cold`: an empty cache; the first epoch runs the teacher and stores its outputs, later epochs read them;
- `warm` (the first seed only, unless `--warm-seeds`): the same distillation again, every step reading
  the cache that `cold` filled. Its metrics must equal `cold`'s exactly (the cache makes a run
  independent of what was cached before).
Each distillation runs in its own child process, with its own cache directory under WORK. Dev and test of
each arm (mean and standard deviation over seeds) and its training seconds are recorded; dev chooses,
test only reports. Distillations are kept in WORK/teacher_cache/ (rerun to continue).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ARMS = ("off", "cold", "warm")


def student_spec(teacher_dir: str) -> dict:
    """The default job's chosen shape on the teacher's embeddings."""
    from bertsmith.hf import import_checkpoint

    spec = import_checkpoint(teacher_dir).spec
    layer = spec.layers[0]
    small = {
        "attention": layer.attention.model_copy(update={"heads": 5}),
        "ffn": layer.ffn.model_copy(update={"size": 768}),
    }
    return spec.replace(layers=[small] * 3).to_dict()


def distil(
    task_ref: str,
    teacher_dir: str,
    spec: dict,
    run_dir: Path,
    seed: int,
    cache: Path | None,
    finalists: dict | None = None,
) -> None:
    """One distillation with the run's finalist settings, updated by ``finalists`` (meant for a child
    process); ``cache``: the teacher cache's root, or None for no cache."""
    os.environ["BERTSMITH_TEACHER_CACHE_GB"] = "0" if cache is None else "4"
    from bertsmith.arch import ArchSpec
    from bertsmith.data import resolve_task
    from bertsmith.distill.objectives import LossConfig
    from bertsmith.distill.student import distill_on_task
    from bertsmith.distill.task import load_task_data, load_tokenizer
    from bertsmith.pipeline import finalist_schedule
    from bertsmith.runconfig import RunConfig

    config, task = RunConfig(), resolve_task(task_ref)
    f = config.finalists.model_copy(update=finalists or {})
    train_size = len(
        load_task_data(
            task, load_tokenizer(teacher_dir), data_dir=None, max_length=config.max_length, cache_dir=cache
        ).splits["train"]
    )
    start = time.perf_counter()
    distill_on_task(
        ArchSpec.from_dict(spec),
        teacher_dir,
        task,
        losses=LossConfig.from_terms(f.losses, attention_layers=f.attention_layers),
        config=finalist_schedule(f, seed, train_size),
        run_dir=run_dir,
        init_from_teacher=True,
        max_length=config.max_length,
        resume=True,
        progress=False,
        cache_dir=cache,
    )
    (run_dir / "seconds.json").write_text(json.dumps({"seconds": time.perf_counter() - start}))


def distil_apart(*args) -> dict:
    run_dir = args[3]
    if not (run_dir / "seconds.json").is_file():
        child = multiprocessing.get_context("spawn").Process(target=distil, args=args)
        child.start()
        child.join()
        if child.exitcode != 0:
            raise SystemExit(f"distilling into {run_dir} failed with exit code {child.exitcode}")
    result = json.loads((run_dir / "result.json").read_text())
    return {
        "metrics": result["metrics"],
        "steps": result["steps"],
        "seconds": json.loads((run_dir / "seconds.json").read_text())["seconds"],
    }


def _mean_sd(values: list[float]) -> dict:
    return {
        "mean": statistics.mean(values),
        "sd": statistics.stdev(values) if len(values) > 1 else 0.0,
        "n": len(values),
    }


def summarise(task: str, rows: dict[str, list[dict]]) -> tuple[str, dict]:
    """The task's main metric and, per arm, the mean and spread of dev, test (×100) and seconds over its
    distillations (``distil_apart``'s records); prints one line per arm."""
    first = next(iter(rows.values()))[0]
    metric = next(iter(first["metrics"]["dev"]))
    summary = {
        arm: {split: _mean_sd([r["metrics"][split][metric] * 100 for r in rs]) for split in ("dev", "test")}
        | {"seconds": _mean_sd([r["seconds"] for r in rs])}
        for arm, rs in rows.items()
    }
    for arm, s in summary.items():
        print(
            f"{task:<6}{arm:<6} dev {s['dev']['mean']:6.2f} ± {s['dev']['sd']:.2f}   test {s['test']['mean']:6.2f} "
            f"± {s['test']['sd']:.2f}   {s['seconds']['mean']:6.1f} s"
        )
    return metric, summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--data-dir", type=Path, help="the GLUE directory (for sst2 and mrpc)")
    parser.add_argument("--tasks", default="sst2,mrpc")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--warm-seeds", help="seeds that also run the warm arm (default: the first seed)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "teacher_cache.json")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT / "bench"))
    from quality import task_reference, teacher_for  # bench/quality.py, beside this script

    from bertsmith.files import atomic_write_text

    seeds = [int(s) for s in args.seeds.split(",")]
    warm_seeds = [int(s) for s in args.warm_seeds.split(",")] if args.warm_seeds else seeds[:1]
    record: dict = {"seeds": seeds, "warm_seeds": warm_seeds, "tasks": {}}
    for name in args.tasks.split(","):
        task_ref = task_reference(name, args.work, args.data_dir)
        teacher_dir = teacher_for(task_ref, args.work, dict(os.environ))["directory"]
        spec = student_spec(teacher_dir)
        rows: dict[str, list[dict]] = {arm: [] for arm in ARMS}
        for seed in seeds:
            base = args.work / "teacher_cache" / name / f"seed{seed}"
            cache = base / "cache"
            for arm in ARMS if seed in warm_seeds else ARMS[:2]:
                rows[arm].append(
                    distil_apart(task_ref, teacher_dir, spec, base / arm, seed, None if arm == "off" else cache)
                )
                print(f"{name} seed {seed} {arm}: {json.dumps(rows[arm][-1])}", flush=True)
        metric, summary = summarise(name, rows)
        cold = {seed: r for seed, r in zip(seeds, rows["cold"])}
        same = all(cold[seed]["metrics"] == w["metrics"] for seed, w in zip(warm_seeds, rows["warm"]))
        record["tasks"][name] = {"metric": metric, "summary": summary, "warm_equals_cold": same, "runs": rows}
        print(f"{name}: warm metrics equal cold: {same}")
        atomic_write_text(args.out, json.dumps(record, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
