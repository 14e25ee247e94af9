"""The ``bertsmith`` command line. Errors in the user's input print one line and exit with code 2;
``--debug`` shows the traceback instead."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from . import __version__
from .errors import BertsmithError, ConfigError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Find compact, fast BERT-style encoders.")
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
    version: Optional[bool] = typer.Option(None, "--version", callback=_version, is_eager=True,
                                           help="Print the version and exit."),
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
        table.add_row(name, f"{cost.params(spec) / 1e6:.1f}M", f"{cost.encoder_params(spec) / 1e6:.1f}M",
                      presets.DESCRIPTIONS[name])
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
    table.add_row("[bold]total[/bold]", f"[bold]{sum(r.params for r in rows):,}[/bold]",
                  f"[bold]{sum(r.flops for r in rows):,}[/bold]")
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
    out: Optional[Path] = typer.Option(None, "--json", help="Also write the figures to this JSON file."),
) -> None:
    """Measure inference latency and throughput on this device (median and spread of repeats).

    A preset or spec file is built with random weights; a model directory is loaded as it is."""
    import tempfile

    import torch

    from . import cost
    from .arch import atomic_write_text
    from .latency import measure_inference, measure_onnxruntime

    for name, value in (("batch", batch), ("seq", seq), ("threads", threads), ("repeats", repeats)):
        _positive(name, value)
    if warmup < 0:
        raise ConfigError(f"--warmup must be >= 0, got {warmup}")
    if backend not in ("torch", "onnxruntime"):
        raise ConfigError(f"--backend must be torch or onnxruntime, got {backend!r}")
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
            timing = measure_inference(model, arch.embeddings.vocab_size, **timing_args)
        else:
            from .hf import export_onnx

            with tempfile.TemporaryDirectory() as tmp:
                export_onnx(model, Path(tmp) / "model.onnx", seq_len=seq)
                timing = measure_onnxruntime(str(Path(tmp) / "model.onnx"), arch.embeddings.vocab_size, **timing_args)
    result = {
        "target": target, "backend": backend, "batch": batch, "seq": seq, "threads": threads,
        "params": cost.params(arch), "flops_per_sequence": cost.flops(arch, seq),
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


@app.command("export")
def export(
    source: str = typer.Argument(..., help="Checkpoint directory (Hugging Face or bertsmith export) or hub name."),
    out_dir: Path = typer.Argument(..., help="Directory to write (replaced atomically if it holds a model)."),
    head: Optional[str] = typer.Option(None, "--head", help="base, classification or mlm (default: as found)."),
    onnx: bool = typer.Option(False, "--onnx", help="Also write model.onnx (checked against PyTorch)."),
    seq: int = typer.Option(128, "--seq", help="Example sequence length for the ONNX trace."),
) -> None:
    """Re-export a checkpoint: a stock transformers directory where the shape allows, else a
    trust_remote_code directory; optionally ONNX, verified under onnxruntime."""
    from .hf import export_onnx, export_pretrained, import_checkpoint, onnx_max_abs_diff
    from .hf.export import TOKENIZER_FILES
    from .latency import random_batch

    _positive("seq", seq)
    imported = import_checkpoint(source, head=head)
    src = Path(imported.directory)
    has_tokenizer = any((src / name).is_file() for name in TOKENIZER_FILES)
    if not has_tokenizer:
        console.print(f"note: {src} has no tokenizer files; exporting the model alone")
    kind = export_pretrained(imported, out_dir, tokenizer_dir=src if has_tokenizer else None)
    console.print(f"wrote {out_dir} ({'stock transformers ' + kind if kind != 'remote' else 'trust_remote_code'})")
    if onnx:
        path = out_dir / "model.onnx"
        with console.status(f"exporting {path}"):
            export_onnx(imported.model, path, seq_len=seq)
            diff = onnx_max_abs_diff(imported.model, path, random_batch(imported.spec.embeddings.vocab_size, 2, seq))
        console.print(f"wrote {path} (onnxruntime vs PyTorch max abs diff {diff:.2e})")


def main() -> None:
    """Entry point: usage errors exit 2 (click), input errors print one line and exit 2."""
    try:
        app()
    except BertsmithError as exc:
        if _state["debug"]:
            raise
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
