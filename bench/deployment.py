"""What deploying a run's chosen model costs and keeps: the int8 file's accuracy against fp32, the four
latencies and every file's size.

    .venv/bin/python bench/deployment.py runs/default --work /tmp/deployment      # ~1-2 min on 2 cores

For a finished ``bertsmith run`` directory it copies the export to ``WORK/<task>/model``, writes
``model.int8.onnx`` there with the current code (``export.quantize``/``per_channel`` as bertsmith does;
older runs had none), and runs the export stage's own assessment (``bertsmith.deployment.assess``):
``model.onnx`` and ``model.int8.onnx`` scored on dev and test by the run's evaluation code against the
PyTorch model's metrics, and, in one process and interleaved, the teacher in PyTorch fp32 and the
student in PyTorch fp32, onnxruntime fp32 and onnxruntime int8 at batch 1 and 32 with the run's sequence
length, over ``--rounds`` rounds (medians). It prints and records in
``bench/results/deployment-<task>.json`` those figures with the speed-up over the teacher, every file's
size, CPU steal over the measurement and the peak resident memory.

With ``--fp16`` it also exports the model with half-precision safetensors weights (``bertsmith export
--fp16``) to ``WORK/<task>/fp16`` and scores it (loaded back into fp32, as bertsmith does) on dev and test.
With ``--prune-vocab`` it also exports the model with the vocabulary of the task's train split only
(``bertsmith export --prune-vocab``) to ``WORK/<task>/pruned`` and scores that on dev and test, with
its own (pruned) tokenizer, against the full model.
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

import torch  # noqa: E402

from bertsmith.files import atomic_write_text  # noqa: E402
from bertsmith.data import resolve_task  # noqa: E402
from bertsmith.deployment import ARMS, INT8_FILE, assess  # noqa: E402
from bertsmith.distill.context import TaskContext  # noqa: E402
from bertsmith.distill.task import load_task_data, load_tokenizer  # noqa: E402
from bertsmith.hf.deploy import quantize_onnx  # noqa: E402
from bertsmith.memory import PeakMemory  # noqa: E402
from bertsmith.runconfig import load_config  # noqa: E402

GOAL = 8.0  # int8 student vs the fp32 PyTorch teacher, batch 1


def steal() -> float:
    """Cumulative CPU steal ticks of this machine (from /proc/stat)."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()
    return float(fields[8]) if len(fields) > 8 else 0.0


def half_precision(directory: Path, out: Path, results: dict, data) -> dict:
    """The export with fp16 weights, its files and its dev/test metrics against the full model's."""
    from bertsmith.distill.task import evaluate
    from bertsmith.hf import export_pretrained, import_checkpoint

    export_pretrained(import_checkpoint(directory), out, tokenizer_dir=directory, dtype=torch.float16)
    model = import_checkpoint(out).model
    metrics = {split: evaluate(model, data, split) for split in ("dev", "test") if data.labeled(split)}
    metric, full = results["metric"], results["chosen"]["metrics"]
    change = {split: 100 * (m[metric] - full[split][metric]) for split, m in metrics.items()}
    size = round((out / "model.safetensors").stat().st_size / 1e6, 2)
    print(f"fp16 weights: model.safetensors {size} MB; change (points) {change}")
    return {"metrics": metrics, "change_points": change, "safetensors_mb": size}


def pruned_vocabulary(task, directory: Path, out: Path, results: dict, config, cache_dir) -> dict:
    """The export with the train split's vocabulary only, its files and its dev/test metrics (its own
    tokenizer) against the full model's."""
    import tempfile

    from bertsmith.data import load_split
    from bertsmith.distill.task import evaluate
    from bertsmith.hf import export_pretrained, import_checkpoint
    from bertsmith.hf.vocab import kept_ids, prune_vocab

    train = load_split(task, "train", data_dir=config.data_dir)
    imported = import_checkpoint(directory)
    keep = kept_ids(directory, ((t[0], t[1] if len(t) > 1 else None) for t in train.texts))
    with tempfile.TemporaryDirectory() as tokenizer:
        pruned = prune_vocab(imported, directory, keep, Path(tokenizer))
        export_pretrained(pruned, out, tokenizer_dir=tokenizer)
    data = load_task_data(
        task,
        load_tokenizer(out, pruned.spec, config.max_length),
        data_dir=config.data_dir,
        max_length=config.max_length,
        cache_dir=cache_dir,
    )
    metrics = {split: evaluate(pruned.model, data, split) for split in ("dev", "test") if data.labeled(split)}
    metric, full = results["metric"], results["chosen"]["metrics"]
    change = {split: 100 * (m[metric] - full[split][metric]) for split, m in metrics.items()}
    files = {p.name: round(p.stat().st_size / 1e6, 2) for p in sorted(out.iterdir()) if p.is_file()}
    print(
        f"pruned vocabulary: {len(keep):,} of {imported.spec.embeddings.vocab_size:,} pieces; model.safetensors "
        f"{files['model.safetensors']} MB; change (points) {change}"
    )
    return {
        "kept": len(keep),
        "of": imported.spec.embeddings.vocab_size,
        "metrics": metrics,
        "change_points": change,
        "files_mb": files,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", type=Path, help="a finished `bertsmith run` directory (with model.onnx)")
    parser.add_argument("--work", type=Path, required=True, help="scratch directory (a copy of the export)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--cache-dir", type=Path, default=None, help="tokenized data (default $BERTSMITH_CACHE)")
    parser.add_argument("--out", type=Path, default=None, help="default bench/results/deployment-<task>.json")
    parser.add_argument("--prune-vocab", action="store_true", help="also measure vocabulary pruning")
    parser.add_argument("--fp16", action="store_true", help="also measure fp16 safetensors weights")
    args = parser.parse_args()

    results = json.loads((args.run_dir / "results.json").read_text())
    config = load_config(args.run_dir / "config.yaml")
    source = Path(results["export"]["directory"])
    if not (source / "model.onnx").is_file():
        sys.exit(f"{source}: no model.onnx (the run had export.onnx: false)")
    task = resolve_task(config.task)
    name = task.name
    directory = args.work / name / "model"
    shutil.rmtree(directory, ignore_errors=True)
    shutil.copytree(source, directory)
    quantize_onnx(directory / "model.onnx", directory / INT8_FILE, per_channel=config.export.per_channel)
    teacher = results["teacher"]
    context = TaskContext.load(
        teacher["directory"], task, max_length=config.max_length, data_dir=config.data_dir, cache_dir=args.cache_dir
    )
    data = context.data()
    start, steal0 = time.time(), steal()
    with PeakMemory() as peak:
        d = assess(
            directory,
            context.model,
            data,
            results["chosen"]["metrics"],
            results["metric"],
            max_drop=config.export.int8_max_drop,
            seq_len=config.budget.seq_len,
            rounds=args.rounds,
        )
    seconds, stolen = time.time() - start, (steal() - steal0) / 100
    latency = d["latency_ms"]
    record = {
        "run_dir": str(args.run_dir.resolve()),
        "task": name,
        "chosen": results["chosen"]["summary"],
        "teacher": teacher["summary"],
        **d,
        "speedup": {batch: {arm: ms["teacher_torch"] / ms[arm] for arm in ARMS} for batch, ms in latency.items()},
        "files_mb": {p.name: round(p.stat().st_size / 1e6, 2) for p in sorted(directory.iterdir()) if p.is_file()},
        "seconds": round(seconds, 1),
        "steal_seconds": round(stolen, 1),
        "peak_rss_gb": round(peak.gb, 2),
        "machine": platform.machine(),
        "torch": torch.__version__,
    }
    for batch, ms in latency.items():
        print(f"{batch}: " + "; ".join(f"{ARMS[a]} {ms[a]:.2f} ms ({ms['teacher_torch'] / ms[a]:.2f}x)" for a in ARMS))
    b1 = latency["batch 1"]
    print(
        f"int8 student vs the PyTorch teacher at batch 1: {b1['teacher_torch'] / b1['student_int8']:.2f}x "
        f"(goal {GOAL:g}x)"
    )
    for model, metrics in d["metrics"].items():
        print(
            f"{model}: "
            + "; ".join(f"{s} " + ", ".join(f"{k} {v:.4f}" for k, v in m.items()) for s, m in metrics.items())
        )
    print(f"int8 change (points): {d['change_points']}; recommended: {d['recommended']}")
    print("files: " + ", ".join(f"{n} {mb} MB" for n, mb in record["files_mb"].items() if mb >= 0.1))
    print(f"{seconds:.0f} s, steal {stolen:.1f} s, peak RSS {peak.gb:.2f} GB")
    if args.fp16:
        record["fp16"] = half_precision(directory, args.work / name / "fp16", results, data)
    if args.prune_vocab:
        record["pruned"] = pruned_vocabulary(
            task, directory, args.work / name / "pruned", results, config, args.cache_dir
        )
    out = args.out or ROOT / "bench" / "results" / f"deployment-{name}.json"
    atomic_write_text(out, json.dumps(record, indent=1) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
