"""How closely trained students follow their teacher: a diagnosis for distillation runs.

    .venv/bin/python bench/student_fit.py --teacher TEACHER_DIR --task mrpc --data-dir ../shared/data/glue \
        RUN_DIR [RUN_DIR ...]

For the teacher, the class prior and each run's best student (``RUN_DIR/model``), on the train and dev
splits: accuracy, KL(teacher ‖ model) averaged over examples, and agreement with the teacher's argmax.
A student whose train accuracy is the majority rate and whose KL equals the prior's has learned nothing
that depends on the input. Prints a table; writes ``bench/results/student_fit-TASK.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
try:
    import bertsmith  # noqa: F401
except ImportError:
    sys.path.insert(0, str(ROOT / "src"))

from bertsmith.files import atomic_write_text  # noqa: E402
from bertsmith.data import resolve_task  # noqa: E402
from bertsmith.distill.task import load_task_data, load_tokenizer, predict  # noqa: E402
from bertsmith.distill.teacher import load_teacher  # noqa: E402
from bertsmith.hf import import_checkpoint  # noqa: E402

SPLITS = ("train", "dev")


def kl(log_p: torch.Tensor, log_q: torch.Tensor) -> float:
    return float((log_p.exp() * (log_p - log_q)).sum(-1).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, help="run directories of `bertsmith distill`")
    parser.add_argument("--teacher", required=True, type=Path)
    parser.add_argument("--task", required=True)
    parser.add_argument("--data-dir", type=Path)
    args = parser.parse_args()

    task = resolve_task(args.task)
    if task.type != "classification":
        sys.exit("student_fit.py: classification tasks only")
    data = load_task_data(task, load_tokenizer(args.teacher), data_dir=args.data_dir, max_length=128, splits=SPLITS)
    gold = {s: torch.from_numpy(data.splits[s].labels) for s in SPLITS}

    def log_probs(model: torch.nn.Module) -> dict[str, torch.Tensor]:
        return {s: torch.from_numpy(predict(model.eval(), data.splits[s], data.pad_id)).log_softmax(-1) for s in SPLITS}

    teacher = log_probs(load_teacher(args.teacher, task))
    counts = torch.bincount(gold["train"], minlength=task.num_labels).float()
    prior = {s: (counts / counts.sum()).log().expand_as(teacher[s]) for s in SPLITS}
    rows = {"teacher": teacher, "class prior": prior}
    rows |= {run.name: log_probs(import_checkpoint(run / "model").model) for run in args.runs}

    results = {}
    print(f"{'model':<36} {'split':<6} {'accuracy':>8} {'KL(t||m)':>9} {'agrees':>7}")
    for name, lp in rows.items():
        for s in SPLITS:
            pred = lp[s].argmax(-1)
            row = {
                "accuracy": float((pred == gold[s]).float().mean()),
                "kl_teacher": kl(teacher[s], lp[s]),
                "agreement": float((pred == teacher[s].argmax(-1)).float().mean()),
            }
            results.setdefault(name, {})[s] = row
            print(
                f"{name:<36} {s:<6} {100 * row['accuracy']:>8.1f} {row['kl_teacher']:>9.3f} {100 * row['agreement']:>6.1f}%"
            )
    out = ROOT / "bench" / "results" / f"student_fit-{task.name}.json"
    atomic_write_text(out, json.dumps({"teacher": str(args.teacher), "task": task.name, "results": results}, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
