"""The chosen model's export: a Hugging Face directory (stock transformers where the shape allows,
else ``trust_remote_code``), ``model.onnx`` checked against PyTorch, and a ``README.md`` model card
with the ArchSpec, the costs, the metrics and the command that produced it.

The files are written by ``hf.export_dir.write_export_dir`` (as ``bertsmith export`` writes them),
which assembles the directory beside its final place and renames it into place, so an interrupted
export never leaves a directory that looks complete. Weights are only read from safetensors.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from . import __version__
from .arch import ArchSpec
from .deployment import latency_table
from .files import atomic_write_text
from .hf import import_checkpoint
from .hf.export_dir import ExportDir, write_export_dir
from .rundir import FinalistEntry, FinalistsOutputs, TeacherOutputs

if TYPE_CHECKING:
    from .quality import Verdict
    from .runconfig import RunConfig


def write_export(
    model_dir: Path,
    out: Path,
    *,
    chosen: FinalistEntry,
    teacher: TeacherOutputs,
    finalists: FinalistsOutputs,
    config: RunConfig,
    log: Callable[[str], None],
    verdict: Verdict | None = None,
    labels: tuple[str, ...] | None = None,
    deploy: Callable[[Path], dict] | None = None,
) -> dict:
    """Export the model in ``model_dir`` (a distillation's ``model/``) to ``out`` as ``config.export``
    says, with the task's class names (``labels``). ``deploy`` measures the finished files (int8
    metrics, latency) before the card is written."""
    settings = config.export
    info: dict = {}

    def finish(directory: Path, written: ExportDir) -> None:
        """Measure the int8 file and write the model card into the unfinished export."""
        info.update(
            directory=str(out.resolve()),
            format="trust_remote_code" if written.kind == "remote" else f"transformers {written.kind}",
        )
        if written.onnx is not None:
            info.update(onnx=str(written.onnx.resolve()), onnx_max_abs_diff=written.onnx_max_abs_diff)
        if written.int8_onnx is not None:
            info.update(int8_fusions=written.int8_fusions, int8_onnx=str(written.int8_onnx.resolve()))
            if deploy is not None:
                info["deployment"] = deploy(directory)
        atomic_write_text(directory / "README.md", model_card(chosen, teacher, finalists, config, info, verdict))

    written = write_export_dir(
        import_checkpoint(model_dir),
        out,
        tokenizer_dir=model_dir,
        labels=labels,
        onnx=settings.onnx,
        quantize=settings.quantize,
        per_channel=settings.per_channel,
        seq_len=settings.seq_len,
        finish=finish,
    )
    info["files_mb"] = written.files_mb
    log(
        f"[export] {out} ({info['format']}"
        + (f"; model.onnx, max abs diff {info['onnx_max_abs_diff']:.1e}" if settings.onnx else "")
        + ("; model.int8.onnx" if settings.quantize else "")
        + ")"
    )
    if "deployment" in info:
        d = info["deployment"]
        log(f"[export] recommended: {d['recommended']} ({d['reason']})")
    return info


def deployment_card(info: dict) -> str:
    """The model card's section on ``model.int8.onnx``: metrics against fp32, latencies, how to load it."""
    if "int8_onnx" not in info:
        return ""
    load = """
```python
import onnxruntime as ort
session = ort.InferenceSession(f"{path}/model.int8.onnx", providers=["CPUExecutionProvider"],
                               disabled_optimizers=["SkipLayerNormFusion"])
logits = session.run(None, dict(tokenizer(texts, padding=True, return_tensors="np")))[0]
```

`model.int8.onnx` holds onnxruntime's transformer fusions and int8 weights (dynamic quantization), so it runs
under onnxruntime only. Turning off `SkipLayerNormFusion` is bertsmith's measured choice: onnxruntime's fused
kernel was slower on the CPUs it was measured on; the default session gives the same outputs.
"""
    d = info.get("deployment")
    if d is None:
        return "\n## Deployment (ONNX Runtime int8)\n" + load + "\nIts accuracy was not measured.\n"
    splits = list(d["metrics"]["int8"])
    metric_rows = "\n".join(
        f"| {name} | " + " | ".join(", ".join(f"{k} {v:.4f}" for k, v in m[split].items()) for split in splits) + " |"
        for name, m in (
            ("PyTorch fp32", d["metrics"]["torch"]),
            ("ONNX Runtime fp32", d["metrics"]["onnx"]),
            ("ONNX Runtime int8", d["metrics"]["int8"]),
        )
    )
    batches = list(d["latency_ms"])
    latency_rows = "\n".join(
        f"| {label} | " + " | ".join(cells) + " |" for label, cells in latency_table(d["latency_ms"])
    )
    return f"""
## Deployment (ONNX Runtime int8)

Recommended file: **`{d["recommended"]}`**: {d["reason"]}.

| model | {" | ".join(splits)} |
|---|{"---|" * len(splits)}
{metric_rows}

Latency at {d["seq_len"]} tokens, {d["threads"]} threads, one process, interleaved (speed-up over the teacher in PyTorch):

| model | {" | ".join(batches)} |
|---|{"---|" * len(batches)}
{latency_rows}
{load}"""


def command_line() -> str:
    """The command that is running, as a user would type it."""
    name = Path(sys.argv[0]).name
    return " ".join(shlex.quote(a) for a in ["bertsmith" if name.startswith("bertsmith") else name, *sys.argv[1:]])


def model_card(
    chosen: FinalistEntry,
    teacher: TeacherOutputs,
    finalists: FinalistsOutputs,
    config: RunConfig,
    info: dict,
    verdict: Verdict | None = None,
) -> str:
    """The README.md of the export."""
    origin = (
        f"found by a `{config.search.strategy}` search"
        if chosen.kind == "finalist"
        else f"the baseline `{chosen.source or chosen.name}` (better on dev than the search's finalists)"
    )
    quality = ""
    if verdict is not None and not verdict.passed:
        quality += "\n> **Warning: this model failed bertsmith's quality gate.**\n" + "".join(
            f"> - {reason}\n" for reason in verdict.reasons
        )
    if verdict is not None and verdict.baseline:
        quality += f"\nAgainst the obvious alternative at the same budget and distillation: {verdict.baseline}.\n"

    spec = ArchSpec.from_dict(chosen.spec)
    metric_rows = "\n".join(
        f"| {split} | "
        + ", ".join(f"{k} {v:.4f}" for k, v in m.items())
        + " | "
        + ", ".join(f"{k} {v:.4f}" for k, v in teacher.metrics.get(split, {}).items())
        + " |"
        for split, m in chosen.metrics.items()
    )
    t_latency = finalists.teacher_latency_ms
    remote = ", trust_remote_code=True" if info["format"] == "trust_remote_code" else ""
    remote_note = (
        "\nThe model's code ships in this directory (transformers runs it with `trust_remote_code=True`); "
        "the tokenizer is transformers' own, but without the flag transformers would first ask whether "
        "to run the directory's code.\n"
        if remote
        else ""
    )
    onnx = (
        f"\n`model.onnx` (inputs `input_ids`, `attention_mask` and, for a model with token types, "
        f"`token_type_ids`; output `logits`) matches PyTorch within {info['onnx_max_abs_diff']:.1e} under "
        f"onnxruntime.\n"
        if "onnx" in info
        else ""
    )
    onnx += deployment_card(info)
    return f"""# {config.task} student ({spec.summary()})

A compact BERT-style encoder for the task `{config.task}`, {origin} and
distilled from the teacher `{teacher.directory}` by bertsmith {__version__}.
{quality}
## Use

```python
from transformers import AutoModelForSequenceClassification, AutoTokenizer, pipeline
classify = pipeline("text-classification", model=path{remote})
print(classify(["an example sentence"]))
# or the parts:
tokenizer = AutoTokenizer.from_pretrained(path{remote})
model = AutoModelForSequenceClassification.from_pretrained(path{remote})
```
{remote_note}{onnx}
## Cost (batch {config.budget.batch}, {config.budget.seq_len} tokens, measured on the machine that ran the search)

| | this model | teacher | ratio |
|---|---|---|---|
| non-embedding parameters | {chosen.params:,} | {teacher.params:,} | {teacher.params / chosen.params:.2f}× smaller |
| all parameters | {chosen.total_params:,} | {teacher.total_params:,} | {teacher.total_params / chosen.total_params:.2f}× smaller |
| FLOPs per sequence | {chosen.flops:,} | {teacher.flops:,} | {teacher.flops / chosen.flops:.2f}× fewer |
| latency (PyTorch, CPU) | {chosen.latency_ms:.2f} ms | {t_latency:.2f} ms | {t_latency / chosen.latency_ms:.2f}× faster |

## Metrics

| split | this model | teacher |
|---|---|---|
{metric_rows}

## Architecture (ArchSpec)

```yaml
{spec.to_yaml().rstrip()}
```

## How it was made

```bash
{command_line()}
```

with the resolved configuration:

```yaml
{config.echo().rstrip()}
```
"""
