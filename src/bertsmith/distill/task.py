"""Work on a task: its tokenizer and tokenized data, prediction and evaluation, one training run of a
student (or a teacher) with a given objective, the importance order of a model's units, and the
digests that key what is derived from inputs.

Used by the task teacher (``distill.teacher``), the distillation job (``distill.student``), the
search's evaluators and strategies, and ``bertsmith run``.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ..arch import ArchSpec
from ..device import compute_device
from ..data import Encoded, Task, collate, encode_split, length_grouped_batches, load_split
from ..data.tokenize import PAD_LOGIT, cache_root
from ..errors import CheckpointError, ConfigError, DataError
from ..hf.export import TOKENIZER_FILES
from ..modeling.elastic import Importance, importance, reorder
from .teacher_cache import TeacherCache, weights_digest
from .trainer import TrainConfig, Trainer, TrainResult

EVAL_BATCH = 64
IMPORTANCE_EXAMPLES = 512  # train examples that score the teacher's units before slicing (bertsmith's choice)
SCORINGS_KEPT = 4  # importance scorings remembered per process (reorder_by_importance)
_SCORINGS: OrderedDict[str, Importance] = OrderedDict()


def load_tokenizer(directory: str | os.PathLike, spec: ArchSpec | None = None, max_length: int | None = None):
    """The tokenizer saved with the checkpoint ``directory`` of a model of shape ``spec`` (never
    downloaded), for inputs of up to ``max_length`` tokens. A directory without tokenizer files is
    refused: transformers would build one of five special tokens from nothing, every word would
    become [UNK], and the model would silently train and score on garbage. So is a vocabulary far
    smaller (under half) or larger than the model's embedding rows, and a ``max_length`` beyond its
    positions (both checked where ``spec`` is given). A trust_remote_code export (config.json with
    ``auto_map``) keeps a stock tokenizer, named in tokenizer_config.json: its model config is not
    read, since transformers would first ask whether to run the export's code."""
    from transformers import AutoTokenizer, PretrainedConfig  # slow to import: only when a tokenizer is loaded

    if not any((Path(directory) / name).is_file() for name in TOKENIZER_FILES):
        raise CheckpointError(
            f"{directory}: no tokenizer files (none of {', '.join(TOKENIZER_FILES)}); copy those of "
            "the checkpoint it was trained from into it, or pass a directory that has them"
        )
    config = PretrainedConfig() if _remote_code(Path(directory)) else None
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(directory), local_files_only=True, config=config)
    except (OSError, ValueError, TypeError) as e:
        raise CheckpointError(f"{directory}: no usable tokenizer files: {str(e).splitlines()[0]}") from e
    if spec is None:
        return tokenizer
    rows = spec.embeddings.vocab_size
    if 2 * len(tokenizer) < rows:
        raise CheckpointError(
            f"{directory}: the tokenizer has {len(tokenizer)} tokens for the model's {rows} embedding "
            "rows: its tokenizer files are incomplete; copy those of the checkpoint it was trained "
            "from into it"
        )
    check_vocab(tokenizer, spec, directory)
    if max_length is not None:
        check_max_length(max_length, spec, str(directory), f"max_positions in {Path(directory) / 'config.json'}")
    return tokenizer


def _remote_code(directory: Path) -> bool:
    try:
        return "auto_map" in json.loads((directory / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False


def check_vocab(tokenizer, spec: ArchSpec, model_dir: str | os.PathLike) -> None:
    """Every id the tokenizer can produce must have an embedding row in the model."""
    n = len(tokenizer)
    if n > spec.embeddings.vocab_size:
        raise CheckpointError(
            f"{model_dir}: vocab_size = {spec.embeddings.vocab_size}, but the tokenizer "
            f"({getattr(tokenizer, 'name_or_path', '?')}) has {n} tokens: the model and the data's tokenizer do not match"
        )


def check_max_length(max_length: int, spec: ArchSpec, model: str, where: str, option: str = "--max-length") -> None:
    """Refuse inputs longer than ``spec``'s position embeddings cover before any work: they would
    stop training midway with an IndexError. ``model`` and ``where`` name the model and its setting,
    ``option`` the user's setting of the length."""
    limit = spec.embeddings.max_tokens
    if max_length > limit:
        raise ConfigError(
            f"{option} {max_length} is more than the {limit} positions of {model} ({where}); use {limit} or less"
        )


@dataclass
class TaskData:
    """A task's splits tokenized with one tokenizer. ``hashes``: split name → raw data sha256."""

    task: Task
    tokenizer: object
    max_length: int
    splits: dict[str, Encoded]
    hashes: dict[str, str] = field(default_factory=dict)
    cache_dir: Path | None = None  # bertsmith's cache that the tokens came from (None: the default one)

    @property
    def pad_id(self) -> int:
        return self.tokenizer.pad_token_id or 0

    def labeled(self, name: str) -> bool:
        return name in self.splits and self.splits[name].labels is not None


def load_task_data(
    task: Task,
    tokenizer,
    *,
    data_dir: str | os.PathLike | None,
    max_length: int,
    splits: tuple[str, ...] | None = None,
    cache_dir: str | os.PathLike | None = None,
) -> TaskData:
    """Read and tokenize the requested splits (all before any training starts, so bad data stops a
    run before it does any work); tokens are cached under ``cache_dir/tokens``. ``splits``: by default
    train, dev, and test when the task has one."""
    cache = Path(cache_dir) if cache_dir is not None else cache_root()
    if splits is None:
        splits = ("train", "dev") + (("test",) if "test" in task.splits else ())
    encoded, hashes = {}, {}
    for name in splits:
        split = load_split(task, name, data_dir=data_dir)
        if len(split) == 0:
            raise DataError(f"{split.source}: the {name} split has no rows")
        hashes[name] = split.sha256
        encoded[name] = encode_split(split, tokenizer, max_length=max_length, cache_dir=cache / "tokens", task=task)
    if encoded["train"].labels is None:
        raise DataError(f"{task.name}: the train split has no labels")
    return TaskData(task, tokenizer, max_length, encoded, hashes, cache)


def task_model(task: Task, spec: ArchSpec) -> torch.nn.Module:
    """A fresh model of ``spec`` with ``task``'s head (its type's ``build_model``)."""
    return task.task_type.build_model(spec, task.num_labels)


def load_encoder(model: torch.nn.Module, encoder: torch.nn.Module) -> None:
    """Copy ``encoder``'s weights (a checkpoint's ``BertsmithModel``) into ``model``'s encoder; its pooler's
    only where ``model`` has one (a QA model has none)."""
    state = encoder.state_dict()
    if model.encoder.pooler is None:
        state = {k: v for k, v in state.items() if not k.startswith("pooler.")}
    model.encoder.load_state_dict(state)


@torch.no_grad()
def predict(model: torch.nn.Module, data: Encoded, pad_id: int, batch_size: int = EVAL_BATCH) -> np.ndarray:
    """Logits in the split's order (batches are formed by length for speed): [N, C] from a sequence
    head, [N, T, C] from a token-level head (extractive QA), T the split's longest sequence and the
    positions beyond each sequence's end ``PAD_LOGIT``."""
    model.eval()
    order = length_grouped_batches(data.lengths, batch_size, seed=0, epoch=0, shuffle=False)
    out: np.ndarray | None = None
    param = next(model.parameters(), None)  # a student trained on a GPU is evaluated there; ONNX has none
    device = param.device if param is not None else torch.device("cpu")
    for indices in order:
        batch = {k: v.to(device) for k, v in collate(data, indices, pad_id).items()}
        logits, _ = model(batch["input_ids"], batch["attention_mask"], batch.get("token_type_ids"))
        logits = logits.float().cpu().numpy()
        if logits.ndim == 3:  # one row per token: the padding of this batch is masked
            logits[batch["attention_mask"].cpu().numpy() == 0] = PAD_LOGIT
        if out is None:
            rest = logits.shape[1:] if logits.ndim == 2 else (int(data.lengths.max()), logits.shape[-1])
            out = np.full((len(data), *rest), PAD_LOGIT, dtype=np.float32)
        if logits.ndim == 3:
            out[indices, : logits.shape[1]] = logits
        else:
            out[indices] = logits
    return out


def evaluate(
    model: torch.nn.Module, data: TaskData, split: str, *, dev: dict[str, float] | None = None
) -> dict[str, float]:
    """The task's official metrics on a labeled split; ``dev``: the model's dev metrics, where the task
    type applies a setting tuned on dev to this split (extractive QA v2.0's null threshold)."""
    encoded = data.splits[split]
    return data.task.task_type.evaluate(data.task, predict(model, encoded, data.pad_id), encoded, dev=dev)


def final_metrics(student: torch.nn.Module, data: TaskData, result: TrainResult) -> dict[str, dict[str, float]]:
    """Dev metrics of the kept (best) student, and test metrics where the test split has labels."""
    metrics = {"dev": result.best_metrics or evaluate(student, data, "dev")}
    if data.labeled("test"):
        metrics["test"] = evaluate(student, data, "test", dev=metrics["dev"])
    return metrics


def train_on_task(
    objective: torch.nn.Module,
    data: TaskData,
    *,
    config: TrainConfig,
    run_dir: Path,
    resume: bool,
    fingerprint: dict,
    progress: bool = True,
    description: str = "training",
    evaluate_fn: Callable[[torch.nn.Module], dict[str, float]] | None = None,
    keep_best: bool = True,
) -> TrainResult:
    """Train ``objective`` on the train split, evaluate on dev (``evaluate_fn`` replaces the plain
    dev evaluation; it must report the task's main metric) and keep the best student, or the last
    one when ``keep_best`` is False. A teacher's outputs on the train split come from its cache
    (``teacher_cache``), filled as training meets each example."""
    train = data.splits["train"]

    def batches(epoch: int) -> list[list[int]]:
        return length_grouped_batches(train.lengths, config.batch_size, seed=config.seed, epoch=epoch, shuffle=True)

    def batch_of(indices: list[int]) -> dict:
        return collate(train, indices, data.pad_id) | {"example_ids": torch.as_tensor(indices, dtype=torch.long)}

    if getattr(objective, "teacher", None) is not None:
        objective.use_cache(
            TeacherCache.open(objective.teacher, train, root=data.cache_dir or cache_root(), bf16=config.bf16)
        )
    trainer = Trainer(
        objective,
        batches=batches,
        collate=batch_of,
        config=config,
        run_dir=run_dir,
        evaluate=evaluate_fn or ((lambda student: evaluate(student, data, "dev")) if data.labeled("dev") else None),
        metric=data.task.main_metric,
        fingerprint=fingerprint | {"data": data.hashes, "max_length": data.max_length},
        progress=progress,
        description=description,
        keep_best=keep_best,
    )
    return trainer.run(resume=resume)


def reorder_by_importance(model: torch.nn.Module, data: TaskData, *, seed: int) -> None:
    """Permute ``model``'s heads, FFN neurons and hidden channels in place, most important first by
    their Taylor scores on ``IMPORTANCE_EXAMPLES`` train examples (``modeling.elastic``); the model's
    function is unchanged, and slicing it afterwards keeps the units that matter most.

    The scores are remembered by what decides them (the weights, the scored batches, the task type's
    loss, the device), so the copies of one teacher that a run's supernet, finalists and baselines each
    order are scored once (about 10 s each for a 6-layer teacher on 2 CPU cores), with the same result."""
    train = data.splits["train"]
    sample = np.random.default_rng(seed).permutation(len(train))[:IMPORTANCE_EXAMPLES]
    home, device = next(model.parameters()).device, compute_device()
    batches = [
        {k: v.to(device) for k, v in collate(train, sample[i : i + EVAL_BATCH], data.pad_id).items()}
        for i in range(0, len(sample), EVAL_BATCH)
    ]
    key = _scoring_key(model, batches, f"{data.task.type}@{device}")
    model.to(device)
    scores = _SCORINGS.get(key)
    if scores is None:
        scores = _SCORINGS[key] = importance(model, batches, data.task.task_type.label_loss)
        while len(_SCORINGS) > SCORINGS_KEPT:
            _SCORINGS.popitem(last=False)
    _SCORINGS.move_to_end(key)
    reorder(model, scores)
    model.to(home)


def _scoring_key(model: torch.nn.Module, batches: list[dict], loss: str) -> str:
    """sha256 of a model's weights, the batches that score it and the loss they are scored by."""
    h = hashlib.sha256(f"{weights_digest(model)}:{loss}".encode())
    for batch in batches:
        for name, tensor in sorted(batch.items()):
            h.update(name.encode())
            h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()
