"""The run directory of ``bertsmith run``: its layout, its stages, and what each stage hands on.

Run directory::

    config.yaml          the resolved configuration (every default written out)
    teacher/             done.json: the task teacher's directory, metrics and costs
    search/              the search's run directory (study.db, supernet/, pareto.json, trials.csv, ...)
    finalists/<name>/    one distillation per finalist and baseline (model/, result.json, metrics.jsonl)
    export/model/        the chosen model: Hugging Face directory, model.onnx, README.md (model card)
    results.json, pareto.json, pareto.png, report.html

A stage is complete when its ``done.json`` holds the key of its inputs (its own settings and the
keys of the stages it reads). A rerun reuses every complete stage whose key is unchanged, resumes an
interrupted one with the same identity (the search continues its study, a distillation its last
checkpoint), and starts over a stage whose identity changed, along with every stage after it.
``done.json`` is written last and atomically, so a killed run or a full disk never leaves a stage
that looks complete.

Each stage's outputs are a model here (``TeacherOutputs``, ``SearchOutputs``, ``FinalistsOutputs``,
``ExportOutputs``), written under ``outputs`` in its ``done.json`` with the fields the stage set:
an optional field a stage left out (a baseline's trial, an export without ONNX) stays out of the
file, as in the files of earlier runs, which load as they are.
"""

from __future__ import annotations

import csv
import json
import math
import shutil
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ValidationError, field_validator

from .errors import ConfigError
from .files import atomic_write_text, digest as sha
from .memory import PeakMemory

CONFIG, DONE, BEGUN = "config.yaml", "done.json", ".stage.json"
STAGES = ("teacher", "search", "finalists", "export")
TRIALS = "trials.csv"  # in search/: every trial of the search
SPACE = "space.yaml"  # in search/: the space around the teacher, when the config names none
TEACHER_LATENCY = "teacher_latency.json"  # in search/: the teacher's latency, for a budget's share of it
DISTILLED = "result.json"  # in finalists/<name>/: the distillation's summary
EXPORTED = "model"  # in export/: the chosen model's directory
RESULTS, FRONT, PLOT, PAGE = "results.json", "pareto.json", "pareto.png", "report.html"

Metrics = dict[str, dict[str, float]]  # split → metric name → value


class Record(BaseModel):
    """What the run writes: a stage's outputs (``key``, each one's last field: the key of the inputs that
    made them) or a part of them."""

    def dump(self) -> dict[str, Any]:
        """The fields that were set, as JSON values: what ``done.json`` holds."""
        return self.model_dump(mode="json", exclude_unset=True)


class TeacherOutputs(Record):
    directory: str
    metrics: Metrics  # dev and, where labelled, test
    constant: Metrics = {}  # a constant predictor's level on each labelled split (runs before it: none)
    spec: dict[str, Any]
    summary: str
    params: int  # non-embedding
    total_params: int
    flops: int  # per sequence of budget.seq_len tokens
    precision: Literal["fp32", "bf16"] = "fp32"
    key: str = ""


class FrontPoint(BaseModel):
    """A point of the search's Pareto front: ``values`` are (search score, *objective costs)."""

    trial: int
    values: list[float]
    spec: dict[str, Any]
    summary: str
    costs: dict[str, int | float]
    metrics: dict[str, float]


class SearchOutputs(Record):
    budget: dict[str, Any]  # absolute figures: shares of the teacher's costs resolved
    teacher_latency_ms: float | None  # measured when the budget asked for a share of it
    evaluated: int
    infeasible: int
    duplicates: int
    failed: int
    stopped: str | None
    metric: str
    objectives: list[str]
    evaluator: str
    front: list[FrontPoint]
    key: str = ""


class FinalistEntry(Record):
    """A distilled finalist (from the front: ``search_value``, ``trial``) or baseline (``source``)."""

    name: str
    kind: Literal["finalist", "baseline"]
    spec: dict[str, Any]
    search_value: float | None = None
    trial: int | None = None
    source: str | None = None
    model_dir: str
    metrics: Metrics
    steps: int
    best_step: int | None
    data: dict[str, str]  # split → sha256 of its raw data
    params: int
    total_params: int
    flops: int
    latency_ms: float
    summary: str
    violations: list[str]  # the budget's, empty when within it


class FinalistsOutputs(Record):
    entries: list[FinalistEntry]
    chosen: str
    teacher_latency_ms: float  # measured next to the entries' latencies
    key: str = ""

    def chosen_entry(self) -> FinalistEntry:
        return next(e for e in self.entries if e.name == self.chosen)


class ExportOutputs(Record):
    directory: str
    format: str
    onnx: str | None = None
    onnx_max_abs_diff: float | None = None
    int8_fusions: dict[str, int] | None = None
    int8_onnx: str | None = None
    deployment: dict[str, Any] | None = None  # ``deployment.assess``'s findings
    files_mb: dict[str, float]
    key: str = ""


class Trial(BaseModel):
    """An architecture the search evaluated (a row of ``trials.csv``); costs not measured are None."""

    trial: int
    value: float
    feasible: bool
    params: float | None
    flops: float | None
    latency_ms: float | None
    summary: str
    on_front: bool = False

    @field_validator("params", "flops", "latency_ms", mode="before")
    @classmethod
    def _measured(cls, value: Any) -> Any:
        """An empty cell or a non-finite figure is no figure."""
        return None if value in ("", None) or not math.isfinite(float(value)) else value


Out = TypeVar("Out", bound=Record)


def digest(value: Any) -> str:
    """A stage's key of ``value`` (its inputs)."""
    return sha(value)[:16]


class Stage:
    """One stage's directory. ``identity``: the inputs whose change makes earlier work useless (the
    directory is wiped); ``key``: identity plus the inputs that only extend the work (e.g. more
    trials), which a rerun continues from what is there."""

    def __init__(self, run_dir: Path, name: str, identity: Any, extent: Any = None, keep: dict[str, str] | None = None):
        self.dir, self.name = run_dir / name, name
        self.identity = digest(identity)
        self.key = digest([self.identity, extent])
        self.keep = keep or {}  # subdirectory → the file that marks it complete: kept when the stage starts over

    def done(self, model: type[Out]) -> Out | None:
        """The outputs of a complete run with the same key, else None."""
        path = self.dir / DONE
        if not path.is_file():
            return None
        try:
            info = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if info.get("key") != self.key:
            return None
        try:
            return model.model_validate(info["outputs"])
        except (KeyError, ValidationError):
            return None

    def begin(self) -> bool:
        """Prepare the directory; True when earlier work of the same identity is resumed."""
        marker = self.dir / BEGUN
        same = marker.is_file() and json.loads(marker.read_text(encoding="utf-8")).get("identity") == self.identity
        (self.dir / DONE).unlink(missing_ok=True)
        if not same:
            kept = self._set_aside()
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir.mkdir(parents=True)
            for name, path in kept.items():
                path.rename(self.dir / name)
            atomic_write_text(marker, json.dumps({"identity": self.identity}))
        return same

    def _set_aside(self) -> dict[str, Path]:
        """Move the complete ``keep`` subdirectories next to the stage (their own keys decide reuse)."""
        kept = {}
        for name, complete in self.keep.items():
            path = self.dir / name
            if (path / complete).is_file():
                aside = self.dir.with_name(f".{self.name}-{name}.kept")
                shutil.rmtree(aside, ignore_errors=True)
                path.rename(aside)
                kept[name] = aside
        return kept

    def finish(self, outputs: Out, seconds: float, peak: PeakMemory) -> Out:
        """Mark the stage complete: its key, time, peak resident memory (GiB, sampled; None where unknown)
        and peak GPU memory (GiB, None without a GPU), outputs."""
        memory = {
            name: None if gb is None else round(gb, 3)
            for name, gb in (("peak_rss_gb", peak.gb), ("peak_gpu_gb", peak.gpu_gb))
        }
        atomic_write_text(
            self.dir / DONE,
            json.dumps(
                {"key": self.key, "seconds": seconds, **memory, "outputs": outputs.dump()}, indent=1, default=str
            ),
        )
        return outputs


def read_outputs(run_dir: Path, name: str, model: type[Out]) -> Out:
    """The outputs of stage ``name`` of a run, complete or not; a ConfigError that says how to finish
    the run when it is not."""
    path = run_dir / name / DONE
    if not path.is_file():
        raise ConfigError(
            f"{run_dir}: the {name} stage is not complete ({path} is missing); finish the run with "
            f"`bertsmith run {run_dir / CONFIG} --out {run_dir}`"
        )
    try:
        return model.model_validate(json.loads(path.read_text(encoding="utf-8"))["outputs"])
    except (ValueError, KeyError) as e:  # pydantic's ValidationError is a ValueError
        raise ConfigError(
            f"{path}: not the outputs of a {name} stage ({str(e).splitlines()[0]}); rerun the stage "
            f"with `bertsmith run {run_dir / CONFIG} --out {run_dir}`"
        ) from None


def read_timings(run_dir: Path) -> dict[str, float]:
    """Each stage's seconds as the last report recorded them (none without one)."""
    path = run_dir / RESULTS
    return json.loads(path.read_text(encoding="utf-8")).get("timings", {}) if path.is_file() else {}


def read_trials(run_dir: Path, metric: str) -> list[Trial]:
    """The search's evaluated architectures (complete, feasible or not, not repeats) from its trials.csv."""
    with (run_dir / "search" / TRIALS).open(encoding="utf-8", newline="") as f:
        return [
            Trial(
                trial=row["trial"],
                value=row[metric],
                feasible=row["feasible"],
                params=row["params"],
                flops=row["flops"],
                latency_ms=row["latency"],
                summary=row["summary"],
            )
            for row in csv.DictReader(f)
            if row["state"] == "COMPLETE" and not row["duplicate_of"] and row[metric] != ""
        ]
