"""Agora fine-tuning (the Bort paper): fine-tune one model per hyperparameter set, grow the
training data from the best model's mistakes, drop hyperparameter sets, repeat.

Agora was not released; this is bertsmith's reading of its description, with these choices of its own
(documented, configurable):

- **Validation split.** The mistakes come from a validation split carved at random out of the train
  split (``validation_fraction``), never from dev or test: ``agora`` receives only the two carved
  parts, so the reported splits cannot reach its training data.
- **Mistakes** are the validation examples the best model gets wrong (for regression, the tenth with
  the largest absolute errors).
- **Transformation.** Each mistaken validation example yields ``copies`` new points, every
  non-special token replaced with probability ``rate`` by a token drawn from the split's own unigram
  distribution (``data.augment``). The reference model (the task teacher) labels them (its argmax,
  or its value for regression) and they are appended to the training data.
- **Dropping sets.** The sets are sorted by validation metric, worst first, and the longest run of
  sets rooted at the first one that share its metric (the worst set and its ties) is removed, except
  the round's best set while others remain; every round removes at least one set, so the loop ends
  after at most |Θ| rounds.
- Every model of every round starts from the same initial student; the best model over all rounds,
  by validation metric, is returned.

``RUN_DIR/agora/round-N/round.json`` records each round; a rerun replays the recorded rounds (their
generated points are rebuilt from the recorded mistakes) and continues with the next.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from pydantic import ValidationError
from safetensors.torch import load_model, save_model

from .. import distributed
from ..arch import ArchSpec, read_yaml_file
from ..cost import encoder_params, params
from ..data import compute_metrics
from ..data.augment import perturbed_copies
from ..data.carve import carve, concat, subset
from ..data.tokenize import Encoded
from ..errors import ConfigError
from ..files import atomic_file, atomic_write_text, writable_dir
from ..hf.export import export_pretrained
from .objectives import LossConfig, TaskObjective
from .student import DistillResult, start_student
from .task import TaskData, evaluate, load_task_data, load_tokenizer, predict, train_on_task
from .teacher import load_teacher
from .trainer import TrainConfig

SETS: dict[str, list[dict[str, Any]]] = {
    # bertsmith's small default: two learning rates × two seeds
    "default": [{"lr": lr, "seed": seed} for lr in (1e-4, 5e-5) for seed in (0, 1)],
    # the grid the Bort README suggests (480 sets; weight decay as Bort's BERTAdam used it)
    "bort": [
        {"seed": s, "lr": lr, "weight_decay": wd, "warmup": w, "batch_size": b}
        for s in range(5)
        for lr in (1e-4, 1e-5, 9e-6)
        for wd in (0.0, 10.0, 100.0, 350.0)
        for w in (0.35, 0.40, 0.45, 0.50)
        for b in (8, 16)
    ],
}
SET_FIELDS = ("lr", "weight_decay", "warmup", "batch_size", "seed", "steps", "epochs")


def load_sets(name: str | os.PathLike, base: TrainConfig) -> list[TrainConfig]:
    """Hyperparameter sets: ``default``, ``bort`` or a YAML file holding a list of mappings of
    ``SET_FIELDS``; each set overrides ``base``."""
    if str(name) in SETS:
        raw = SETS[str(name)]
    else:
        path = Path(name)
        if not path.is_file():
            raise ConfigError(f"--agora-sets {str(name)!r}: expected {', '.join(SETS)} or a YAML file of sets")
        raw = read_yaml_file(path, "the hyperparameter sets", ConfigError)
        if not isinstance(raw, list) or not raw or not all(isinstance(r, dict) for r in raw):
            raise ConfigError(f"{path}: expected a non-empty list of hyperparameter sets (mappings)")
    configs = []
    for i, entry in enumerate(raw):
        unknown = sorted(set(entry) - set(SET_FIELDS))
        if unknown:
            raise ConfigError(f"hyperparameter set {i}: unknown field {unknown[0]!r} (known: {', '.join(SET_FIELDS)})")
        try:
            configs.append(TrainConfig.model_validate(base.model_dump() | entry))
        except ValidationError as exc:
            err = exc.errors()[0]
            raise ConfigError(f"hyperparameter set {i}: {err['loc'][0]} = {err.get('input')!r}: {err['msg']}") from None
    return configs


@dataclass
class AgoraResult:
    """The best model (by validation metric), its validation metrics, every round's record, and
    the optimizer steps spent over all trainings."""

    model: torch.nn.Module
    validation: dict[str, float]
    rounds: list[dict]
    steps: int


def agora(
    make_student: Callable[[], torch.nn.Module],
    *,
    reference: torch.nn.Module,
    teacher: torch.nn.Module | None,
    losses: LossConfig,
    task,
    tokenizer,
    max_length: int,
    train: Encoded,
    validation: Encoded,
    sets: list[TrainConfig],
    run_dir: Path,
    copies: int = 4,
    rate: float = 0.15,
    max_rounds: int | None = None,
    progress: bool = False,
) -> AgoraResult:
    """Run Agora on ``train`` with mistakes taken on ``validation`` (both carved from the task's train
    split by the caller). ``make_student``: a fresh copy of the initial student. ``max_rounds``: stop
    after that many rounds (1 is plain enumeration: every set once, the best by validation)."""
    if not sets:
        raise ConfigError("agora needs at least one hyperparameter set")
    run_dir = Path(run_dir)
    special = set(tokenizer.all_special_ids)
    pad_id = tokenizer.pad_token_id or 0
    pool = list(range(len(sets)))
    grown, rounds, best, best_metrics, spent = train, [], None, None, 0
    metric = task.main_metric
    r = 0
    while pool and (max_rounds is None or r < max_rounds):
        r += 1
        directory = run_dir / "agora" / f"round-{r}"
        record_file = directory / "round.json"
        if record_file.exists():
            record = json.loads(record_file.read_text(encoding="utf-8"))
            if best_metrics is None or record["best_metric"] > best_metrics[metric]:
                best, best_metrics = None, record["best_validation"]  # kept on disk, reloaded at the end
        else:
            data = TaskData(task, tokenizer, max_length, {"train": grown, "validation": validation})
            scores, models, logits = [], {}, {}
            for k in pool:
                torch.manual_seed(sets[k].seed)
                student = make_student()
                objective = TaskObjective(
                    student, teacher if losses.needs_teacher else None, losses, task_type=task.task_type
                )
                config = sets[k].model_copy(update={"patience": None})
                result = train_on_task(
                    objective,
                    data,
                    config=config,
                    run_dir=directory / f"set-{k}",
                    resume=True,
                    fingerprint={"agora_round": r, "set": k, "train": grown.key},
                    progress=progress,
                    description=f"agora round {r} set {k}",
                    keep_best=False,
                    evaluate_fn=lambda m: evaluate(m, data, "validation"),
                )
                spent += result.steps
                logits[k] = predict(student, validation, pad_id)  # once: the metrics and the mistakes
                scores.append((k, compute_metrics(task, logits[k], validation.labels)))
                models[k] = student
                if distributed.is_main():
                    shutil.rmtree(directory / f"set-{k}" / "checkpoints", ignore_errors=True)
            k_best, top = max(scores, key=lambda s: s[1][metric])
            best_logits = logits[k_best]
            wrong = task.task_type.mistakes(best_logits, validation.labels)
            dropped = drop({k: m[metric] for k, m in scores}, k_best)
            record = {
                "round": r,
                "sets": {str(k): m for k, m in scores},
                "best_set": k_best,
                "best_metric": top[metric],
                "best_validation": top,
                "mistakes": wrong.tolist(),
                "train_size": len(grown),
                "dropped": dropped,
                "steps": spent,
            }
            if best_metrics is None or top[metric] > best_metrics[metric]:
                best, best_metrics = models[k_best], top
                if distributed.is_main():
                    _save(best, run_dir / "agora" / "best", {"round": r, "set": k_best, "validation": top})
            if distributed.is_main():
                atomic_write_text(record_file, json.dumps(record, indent=1))
            distributed.barrier()
        spent = record["steps"]
        rounds.append(record)
        pool = [k for k in pool if k not in record["dropped"]]
        if pool and (max_rounds is None or r < max_rounds):
            grown = concat(
                grown,
                _generate(
                    subset(validation, record["mistakes"]),
                    reference,
                    task,
                    copies=copies,
                    rate=rate,
                    special=special,
                    pad_id=pad_id,
                    seed=r,
                ),
            )
    if best is None:
        best = _load(make_student(), run_dir / "agora" / "best")
    return AgoraResult(best, best_metrics, rounds, spent)


def drop(scores: dict[int, float], best: int) -> list[int]:
    """The sets a round removes: sorted worst first, the run rooted at the first that ties with it;
    the round's best set stays while others remain (so a round of ties does not end the loop)."""
    worst = min(scores.values())
    out = [k for k, v in sorted(scores.items(), key=lambda kv: (kv[1], kv[0])) if v == worst]
    return out if len(out) == len(scores) == 1 else [k for k in out if k != best] or out


def _generate(
    mistakes: Encoded,
    reference: torch.nn.Module,
    task,
    *,
    copies: int,
    rate: float,
    special: set[int],
    pad_id: int,
    seed: int,
) -> Encoded:
    """New points from the mistakes: perturbed copies, labelled by the reference model."""
    if len(mistakes) == 0 or copies == 0:
        return subset(mistakes, [])
    both = perturbed_copies(mistakes, copies, rate=rate, special_ids=special, seed=seed)
    new = subset(both, np.arange(len(mistakes), len(both)))  # the copies only, not the mistakes themselves
    labels = task.task_type.predictions(predict(reference, new, pad_id))
    return Encoded(
        new.input_ids,
        new.token_type_ids,
        new.offsets,
        labels.astype(task.task_type.label_dtype),
        new.key + "|reference",
    )


def _save(model: torch.nn.Module, directory: Path, info: dict) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    with atomic_file(directory / "model.safetensors") as tmp:
        save_model(model, str(tmp))
    atomic_write_text(directory / "best.json", json.dumps(info, indent=1))


def _load(model: torch.nn.Module, directory: Path) -> torch.nn.Module:
    load_model(model, directory / "model.safetensors")
    return model


def agora_on_task(
    spec: ArchSpec | None,
    teacher_dir: str | os.PathLike,
    task,
    *,
    losses: LossConfig,
    config: TrainConfig,
    run_dir: str | os.PathLike,
    sets: str | os.PathLike = "default",
    validation_fraction: float = 0.1,
    copies: int = 4,
    rate: float = 0.15,
    max_rounds: int | None = None,
    data_dir: str | os.PathLike | None = None,
    init: str | os.PathLike | None = None,
    init_from_teacher: bool = False,
    max_length: int = 128,
    cache_dir: str | os.PathLike | None = None,
    progress: bool = True,
):
    """``bertsmith distill --agora``: Agora on the train split (a validation split carved from it),
    then the chosen model evaluated on dev (and test where labeled). The task teacher is the
    reference model that labels the generated points. Writes ``RUN_DIR/model`` and ``result.json``."""
    if init is not None and init_from_teacher:
        raise ConfigError("--init and --init-from-teacher: choose one starting point for the student")
    if not task.task_type.generated_data:
        raise ConfigError(f"--agora: its generated points do not keep the labels of a {task.type} task")
    if copies < 0 or not 0 < rate <= 1:
        raise ConfigError(f"agora: copies = {copies}, rate = {rate}: expected copies ≥ 0 and rate in (0, 1]")
    configs = load_sets(sets, config)
    run_dir = Path(run_dir)
    writable_dir(run_dir)
    teacher = load_teacher(teacher_dir, task)
    tokenizer = load_tokenizer(teacher_dir, teacher.encoder.spec, max_length)
    data = load_task_data(task, tokenizer, data_dir=data_dir, max_length=max_length, cache_dir=cache_dir)
    rest, validation, held = carve(data.splits["train"], validation_fraction, seed=config.seed)

    initial = start_student(spec, data, teacher, init=init, init_from_teacher=init_from_teacher, seed=config.seed)
    spec = initial.encoder.spec

    start_time = time.perf_counter()
    result = agora(
        lambda: copy.deepcopy(initial),
        reference=teacher,
        teacher=teacher,
        losses=losses,
        task=task,
        tokenizer=tokenizer,
        max_length=max_length,
        train=rest,
        validation=validation,
        sets=configs,
        run_dir=run_dir,
        copies=copies,
        rate=rate,
        max_rounds=max_rounds,
        progress=progress,
    )
    metrics = {"validation": result.validation, "dev": evaluate(result.model, data, "dev")}
    if data.labeled("test"):
        metrics["test"] = evaluate(result.model, data, "test")
    model_dir = run_dir / "model"
    if distributed.is_main():
        export_pretrained(result.model, model_dir, tokenizer_dir=teacher_dir)
    summary = {
        "spec": spec.model_dump(mode="json"),
        "teacher": str(Path(teacher_dir).resolve()),
        "task": task.name,
        "mode": "agora" if max_rounds != 1 else "plain",
        "max_rounds": max_rounds,
        "sets": [c.model_dump() for c in configs],
        "validation_fraction": validation_fraction,
        "validation_rows": held.tolist(),
        "copies": copies,
        "rate": rate,
        "losses": losses.model_dump(mode="json"),
        "data": data.hashes,
        "max_length": max_length,
        "rounds": result.rounds,
        "steps": result.steps,
        "seconds": time.perf_counter() - start_time,
        "metrics": metrics,
        "params": params(spec),
        "non_embedding_params": encoder_params(spec),
    }
    if distributed.is_main():
        atomic_write_text(run_dir / "result.json", json.dumps(summary, indent=1))
    distributed.barrier()
    return DistillResult(run_dir, model_dir, metrics, None, result.steps)
