"""Task-agnostic distillation on raw text: warm-up distillation (the EfficientBERT paper)
and Bort's distillation pretraining (§2.4, §2.6).

The corpus is one or more UTF-8 text files (or directories of ``*.txt``); each non-empty line is a
unit of text. Lines are tokenized and packed in order into sequences of up to ``max_length``
tokens ([CLS] … [SEP]); a line longer than that is cut into several sequences. A fixed share of the
sequences (every ``1/held_out``-th) is held out to select the best checkpoint by its loss.

Recipes (bertsmith's presets of the papers' settings; every value can be overridden):
- ``warmup``: hidden-state and attention losses, no masking, AdamW lr 1e-4, wd 0.01, 10 % warm-up,
  clip 1.0 (EfficientBERT's warm-up; any teacher);
- ``bort``: 0.1·MLM + 0.5·T²·KL with T = 2 on 15 % masked tokens, lr 1e-4, 1 % warm-up (needs a
  teacher and a student with a masked-LM head);
- ``relations``: Bort's distillation pretraining for an encoder-only teacher (no MLM head, e.g. the
  PyPI MiniLM): hidden-state MSE and MiniLMv2 attention relations (any head counts), with Bort's
  optimiser settings (lr 1e-4, 1 % warm-up). bertsmith's substitute: Bort itself needs MLM logits.

``auto`` picks ``bort`` for a teacher with a masked-LM head, ``relations`` otherwise.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .. import distributed
from ..errors import ConfigError, DataError
from ..files import digest, writable_dir
from ..hf.checkpoint import import_checkpoint
from ..hf.export import export_pretrained
from ..modeling import BertsmithForMaskedLM, BertsmithModel
from .objectives import AgnosticObjective, LossConfig
from .task import check_max_length, check_vocab, load_tokenizer
from .teacher import model_directory
from .trainer import TrainConfig, Trainer, TrainResult

RECIPES: dict[str, tuple[LossConfig, TrainConfig]] = {
    "warmup": (LossConfig(logits=0.0, hidden=1.0, attention=1.0), TrainConfig(lr=1e-4, warmup=0.1, epochs=1)),
    "bort": (LossConfig(logits=0.0, mlm=1.0), TrainConfig(lr=1e-4, warmup=0.01, epochs=1)),
    "relations": (
        LossConfig(logits=0.0, hidden=1.0, attention=1.0, attention_mode="relation"),
        TrainConfig(lr=1e-4, warmup=0.01, epochs=1),
    ),
}


def corpus_files(paths: list[str | os.PathLike]) -> list[Path]:
    """The text files named, directories expanded to their ``*.txt`` files (sorted)."""
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(p.rglob("*.txt"))
            if not found:
                raise DataError(f"{p}: the corpus directory has no *.txt files")
            files += found
        elif p.is_file():
            files.append(p)
        else:
            raise DataError(f"{p}: no such corpus file or directory")
    return files


def read_lines(files: list[Path]) -> list[str]:
    """Non-empty lines of the corpus files; non-UTF-8 bytes are an error naming file and line."""
    lines: list[str] = []
    for path in files:
        raw = path.read_bytes()
        for number, line in enumerate(raw.splitlines(), start=1):
            try:
                text = line.decode("utf-8").strip()
            except UnicodeDecodeError as e:
                raise DataError(f"{path}: line {number}: not UTF-8 ({e.reason} at byte {e.start})") from None
            if text:
                lines.append(text)
    if not lines:
        raise DataError(f"{', '.join(map(str, files))}: the corpus has no text")
    return lines


@dataclass
class Corpus:
    """Packed token sequences with their special-token masks."""

    sequences: list[np.ndarray]

    def __len__(self) -> int:
        return len(self.sequences)

    @property
    def lengths(self) -> np.ndarray:
        return np.array([len(s) for s in self.sequences])


def pack(lines: list[str], tokenizer, max_length: int) -> Corpus:
    """Tokenize lines and pack them into [CLS] … [SEP] sequences of at most ``max_length``."""
    if max_length < 8:
        raise DataError(f"max_length = {max_length}: too short for packed text (at least 8)")
    body = max_length - 2
    cls, sep = tokenizer.cls_token_id, tokenizer.sep_token_id
    sequences, current = [], []
    for ids in tokenizer(lines, add_special_tokens=False)["input_ids"]:
        while ids:
            room = body - len(current)
            current += ids[:room]
            ids = ids[room:]
            if len(current) == body:
                sequences.append(np.array([cls, *current, sep], dtype=np.int64))
                current = []
    if current:
        sequences.append(np.array([cls, *current, sep], dtype=np.int64))
    return Corpus(sequences)


def collate_corpus(corpus: Corpus, indices: list[int], pad_id: int) -> dict[str, torch.Tensor]:
    """Pad a batch of sequences; marks [CLS]/[SEP] so that masking skips them."""
    width = max(len(corpus.sequences[i]) for i in indices)
    ids = torch.full((len(indices), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(indices), width), dtype=torch.long)
    for row, i in enumerate(indices):
        seq = torch.from_numpy(corpus.sequences[i])
        ids[row, : len(seq)] = seq
        mask[row, : len(seq)] = 1
    special = torch.ones_like(mask)
    special[:, 1:-1] = 0
    lengths = mask.sum(1)
    special[torch.arange(len(indices)), lengths - 1] = 1
    special |= 1 - mask
    return {"input_ids": ids, "attention_mask": mask, "special_tokens_mask": special}


def split_held_out(corpus: Corpus, every: int) -> tuple[Corpus, Corpus]:
    """(train, held-out): every ``every``-th sequence is held out (at least one)."""
    held = [s for i, s in enumerate(corpus.sequences) if i % every == every - 1] or corpus.sequences[-1:]
    train = [s for i, s in enumerate(corpus.sequences) if i % every != every - 1] or corpus.sequences
    return Corpus(train), Corpus(held)


def distill_agnostic(
    objective: AgnosticObjective,
    corpus: Corpus,
    *,
    pad_id: int,
    config: TrainConfig,
    run_dir: Path,
    resume: bool,
    fingerprint: dict,
    held_out: int = 50,
    progress: bool = True,
) -> TrainResult:
    """Distil on the corpus; the best checkpoint has the lowest held-out loss."""
    train, held = split_held_out(corpus, held_out)
    rng_batches = _shuffled_batches(len(train), config.batch_size, config.seed)
    eval_batches = [
        list(range(i, min(i + config.batch_size, len(held)))) for i in range(0, len(held), config.batch_size)
    ]

    def held_out_loss(_student: torch.nn.Module) -> dict[str, float]:
        generator_state = torch.get_rng_state()  # masking draws must not shift the training stream
        torch.manual_seed(0)
        try:
            objective.eval()
            total = sum(objective(collate_corpus(held, b, pad_id))[0].item() * len(b) for b in eval_batches)
        finally:
            objective.train()
            torch.set_rng_state(generator_state)
        return {"held_out_loss": total / len(held)}

    trainer = Trainer(
        objective,
        batches=rng_batches,
        collate=lambda indices: collate_corpus(train, indices, pad_id),
        config=config,
        run_dir=run_dir,
        evaluate=held_out_loss,
        metric="held_out_loss",
        maximize=False,
        fingerprint=fingerprint,
        progress=progress,
        description="distilling (task-agnostic)",
    )
    return trainer.run(resume=resume)


def _shuffled_batches(n: int, batch_size: int, seed: int):
    def batches(epoch: int) -> list[list[int]]:
        order = np.random.default_rng([seed, epoch]).permutation(n)
        return [order[i : i + batch_size].tolist() for i in range(0, n, batch_size)]

    return batches


@dataclass
class PretrainResult:
    model_dir: Path
    held_out_loss: float
    recipe: str
    steps: int


def pretrain_student(
    spec,
    teacher: str | os.PathLike,
    corpus: list[str | os.PathLike],
    *,
    recipe: str = "auto",
    overrides: dict | None = None,
    run_dir: str | os.PathLike,
    max_length: int = 128,
    resume: bool = False,
    progress: bool = True,
) -> PretrainResult:
    """Distil a fresh student of shape ``spec`` from ``teacher`` on raw text with a recipe
    (``auto``: ``bort`` when the teacher has a masked-LM head, else ``relations``). Writes
    ``RUN_DIR/model``: the student encoder (with its MLM head under ``bort``) and the tokenizer."""
    writable_dir(run_dir)
    source = model_directory(teacher)
    imported = import_checkpoint(source)
    has_mlm = isinstance(imported.model, BertsmithForMaskedLM)
    if recipe == "auto":
        recipe = "bort" if has_mlm else "relations"
    if recipe not in RECIPES:
        raise ConfigError(f"recipe = {recipe!r}: expected auto, {', '.join(RECIPES)}")
    if recipe == "bort" and not has_mlm:
        raise ConfigError(
            f"{source}: recipe 'bort' needs a teacher with a masked-LM head; this one has none (use 'relations' or 'warmup')"
        )
    losses, base = RECIPES[recipe]
    config = base.with_overrides(**(overrides or {}))
    teacher_model = (
        imported.model
        if recipe == "bort"
        else (imported.model.encoder if not isinstance(imported.model, BertsmithModel) else imported.model)
    )
    tokenizer = load_tokenizer(source, imported.spec, max_length)
    check_vocab(tokenizer, spec, "the student spec")
    check_max_length(max_length, spec, "the student", "embeddings.max_positions of its spec")
    files = corpus_files(list(corpus))
    packed = pack(read_lines(files), tokenizer, max_length)

    torch.manual_seed(config.seed)
    student = BertsmithForMaskedLM(spec) if recipe == "bort" else BertsmithModel(spec)
    objective = AgnosticObjective(student, teacher_model, losses, mask_id=tokenizer.mask_token_id)
    fingerprint = {
        "spec": spec.model_dump(mode="json"),
        "teacher": str(source),
        "recipe": recipe,
        "corpus": digest([str(f.resolve()) for f in files]),
        "max_length": max_length,
    }
    run_dir = Path(run_dir)
    result = distill_agnostic(
        objective,
        packed,
        pad_id=tokenizer.pad_token_id or 0,
        config=config,
        run_dir=run_dir,
        resume=resume,
        fingerprint=fingerprint,
        progress=progress,
    )
    model_dir = run_dir / "model"
    if distributed.is_main():
        export_pretrained(student, model_dir, tokenizer_dir=source)
    distributed.barrier()
    return PretrainResult(model_dir, result.best_metrics.get("held_out_loss", float("nan")), recipe, result.steps)
