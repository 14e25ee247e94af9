"""The bad-input catalogue: the CLI on each case of the README's bad-input lists and of the reliability
review, each checked the same way: exit code 2, one line on stderr naming the file, key or value, no
traceback, and the output path and the inputs' directory byte-identical to before."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from .test_cli import run
from .test_pipeline import tiny_config


@dataclass
class Env:
    """The fixtures a case builds its command from, and a scratch folder for its input files."""

    work: Path
    out: Path
    base_dir: Path
    teacher_dir: Path
    task_file: Path
    cache_dir: Path

    def config(self, **changes) -> str:
        return str(tiny_config(self.work / "config", self.base_dir, self.task_file, **changes))

    def file(self, name: str, content: str | bytes) -> str:
        path = self.work / name
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
        return str(path)

    def teacher_without_tokenizer(self) -> str:
        copy = self.work / "teacher-no-tokenizer"
        shutil.copytree(self.teacher_dir, copy)
        for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
            (copy / name).unlink(missing_ok=True)
        return str(copy)

    def distill(self, *args: str) -> list[str]:
        return [
            "distill",
            "--arch",
            "bert-mini",
            "--teacher",
            str(self.teacher_dir),
            "--task",
            str(self.task_file),
            "--max-length",
            "16",
            "--cache-dir",
            str(self.cache_dir),
            "--out",
            str(self.out),
            "--quiet",
            *args,
        ]

    def search(self, *args: str) -> list[str]:
        space = self.file(
            "space.yaml",
            "depth: [1, 2]\nhidden: [32, 48]\nlayer: {heads: [1, 2], qk_dim: [16], v_dim: [16], ffn: [64]}\n",
        )
        return [
            "search",
            "--teacher",
            str(self.teacher_dir),
            "--task",
            str(self.task_file),
            "--max-length",
            "16",
            "--space",
            space,
            "--cache-dir",
            str(self.cache_dir),
            "--out",
            str(self.out),
            "--quiet",
            *args,
        ]

    def run(self, config: str) -> list[str]:
        return ["run", config, "--out", str(self.out), "--cache-dir", str(self.cache_dir), "--quiet"]


def _distill_on(e: Env, train: bytes) -> list[str]:
    """``bertsmith distill`` on a task whose train file holds ``train``."""
    dev = e.file("dev.csv", "text,label\ngood,1\nbad,0\n")
    e.file("train.csv", train)
    task = e.file("task.yaml", f"name: t\nfiles: {{train: train.csv, dev: {Path(dev).name}}}\ntext_columns: [text]\n")
    args = e.distill()
    args[args.index("--task") + 1] = task
    return args


def _resume_with_another_lr(e: Env) -> list[str]:
    """A two-step distillation run in the inputs' folder, resumed with another learning rate."""
    first = e.distill("--steps", "2", "--lr", "1e-4")
    first[first.index("--out") + 1] = str(e.work / "run")
    subprocess.run([sys.executable, "-m", "bertsmith.cli", *first], check=True, capture_output=True)
    return [*first[:-2], "--lr", "3e-4", "--resume"]


# (id, command builder, what the one line must say)
CASES: list[tuple[str, Callable[[Env], list[str]], str]] = [
    # task files and resume
    ("task-empty-train-file", lambda e: _distill_on(e, b""), "train.csv: the file is empty"),
    ("task-header-only-train-file", lambda e: _distill_on(e, b"text,label\n"), "train.csv: no data rows"),
    (
        "task-utf16-train-file-without-bom",
        lambda e: _distill_on(e, "text,label\na,0\n".encode("utf-16-le")),
        "train.csv, line 1: a NUL character, so not UTF-8 text",
    ),
    (
        "task-latin1-train-file",
        lambda e: _distill_on(e, "text,label\ncafé,0\nb,1\n".encode("latin-1")),
        "train.csv, line 2: not UTF-8 text (byte 0xe9 at character 4)",
    ),
    (
        "distill-resume-other-settings",
        _resume_with_another_lr,
        "cannot resume: the run was started with other settings (train.lr: 0.0001 -> 0.0003)",
    ),
    # bertsmith run: the config file
    ("run-unknown-key", lambda e: e.run(e.config(colour="blue")), "colour"),
    ("run-wrong-type", lambda e: e.run(e.config(**{"search.trials": "many"})), "search.trials"),
    ("run-share-not-a-number", lambda e: e.run(e.config(**{"budget.params": "25 percent"})), "budget.params"),
    (
        "run-unknown-strategy-option",
        lambda e: e.run(e.config(**{"search.options": {"bogus": 1}})),
        "search.options.bogus",
    ),
    ("run-unknown-strategy", lambda e: e.run(e.config(**{"search.strategy": "annealing"})), "search.strategy"),
    (
        "run-missing-space-file",
        lambda e: e.run(e.config(**{"search.space": str(e.work / "nowhere.yaml")})),
        "nowhere.yaml",
    ),
    ("run-unknown-baseline", lambda e: e.run(e.config(**{"finalists.baselines": ["shrunken"]})), "shrunken"),
    ("run-unknown-loss", lambda e: e.run(e.config(**{"finalists.losses": "logits,vibes"})), "finalists.losses"),
    ("run-max-length-beyond-positions", lambda e: e.run(e.config(max_length=1000)), "1000"),
    ("run-unknown-quantization", lambda e: e.run(e.config(export={"quantize": "int4"})), "export.quantize"),
    (
        "run-quantize-without-onnx",
        lambda e: e.run(e.config(export={"onnx": False, "quantize": "int8"})),
        "export.quantize needs export.onnx",
    ),
    (
        "run-teacher-without-tokenizer",
        lambda e: e.run(e.config(teacher={"finetuned": e.teacher_without_tokenizer()})),
        "no tokenizer files",
    ),
    # bertsmith distill and search
    ("distill-max-length-beyond-positions", lambda e: e.distill("--max-length", "1000"), "1000"),
    ("distill-unknown-attention-layers", lambda e: e.distill("--attention-layers", "middle"), "--attention-layers"),
    (
        "distill-teacher-without-tokenizer",
        lambda e: [
            "distill",
            "--arch",
            "bert-mini",
            "--teacher",
            e.teacher_without_tokenizer(),
            "--task",
            str(e.task_file),
            "--max-length",
            "16",
            "--cache-dir",
            str(e.cache_dir),
            "--out",
            str(e.out),
        ],
        "no tokenizer files",
    ),
    ("search-in-memory-storage", lambda e: e.search("--storage", "sqlite:///:memory:"), "sqlite:///:memory:"),
    ("search-unknown-strategy", lambda e: e.search("--strategy", "annealing"), "annealing"),
    ("search-budget-unknown-unit", lambda e: e.search("--budget", "params=3apples"), "3apples"),
    # bertsmith export and predict
    ("export-unknown-quantization", lambda e: ["export", str(e.teacher_dir), str(e.out), "--quantize", "int4"], "int4"),
    ("export-no-such-checkpoint", lambda e: ["export", str(e.work / "nothing-here"), str(e.out)], "nothing-here"),
    (
        "predict-onnx-backend-without-onnx",
        lambda e: ["predict", str(e.teacher_dir), "--text", "x", "--backend", "onnxruntime"],
        "model.onnx",
    ),
    (
        "predict-missing-text-column",
        lambda e: [
            "predict",
            str(e.teacher_dir),
            "--file",
            e.file("reviews.csv", "review\ngood\n"),
            "--out",
            str(e.out),
        ],
        "reviews.csv",
    ),
    (
        "predict-empty-file",
        lambda e: ["predict", str(e.teacher_dir), "--file", e.file("empty.csv", ""), "--out", str(e.out)],
        "empty.csv",
    ),
    (
        "predict-not-utf8",
        lambda e: [
            "predict",
            str(e.teacher_dir),
            "--file",
            e.file("latin.csv", b"text\ncaf\xe9\n"),
            "--out",
            str(e.out),
        ],
        "latin.csv",
    ),
    # search spaces
    ("space-unknown-dimension", lambda e: ["space", e.file("space.yaml", "depth: [2]\nwidth: [64]\n")], "width"),
    # parsers: expressions, spaces, strict types
    (
        "space-deep-expression",
        lambda e: [
            "space",
            e.file(
                "space.yaml",
                _space(
                    "layer: {heads: [2], qk_dim: [16], v_dim: [16], ffn: [64], ffn_kind: [searched], "
                    f"expression: ['{'L(' * 700}x{')' * 700}']}}"
                ),
            ),
        ],
        "space.yaml: layer.expression[0]",
    ),
    (
        "space-wide-expression",
        lambda e: [
            "space",
            e.file(
                "space.yaml",
                _space(
                    "layer: {heads: [2], qk_dim: [16], v_dim: [16], ffn: [64], ffn_kind: [searched], "
                    f"expression: ['add({', '.join(['mul(relu(x), add(x, x))'] * 1000)})']}}"
                ),
            ),
        ],
        "over the limit of 256",
    ),
    (
        "spec-deep-expression",
        lambda e: [
            "bench",
            e.file("spec.yaml", _spec(ffn=f"{{kind: searched, size: 64, expression: '{'L(' * 700}x{')' * 700}'}}")),
        ],
        "over the limit of 32",
    ),
    (
        "space-huge-hidden",
        lambda e: ["space", e.file("space.yaml", _space(hidden="{min: 1, max: 2000000000}"))],
        "hidden.max = 2000000000",
    ),
    (
        "space-deep-per-layer",
        lambda e: ["space", e.file("space.yaml", _space(depth="{min: 1, max: 100000}") + "per_layer: true\n")],
        "depth.max = 100000",
    ),
    (
        "space-depth-zero",
        lambda e: ["space", e.file("space.yaml", _space(depth="[0, 2]")), "--sample", "3"],
        "space.yaml: depth[0] = 0",
    ),
    (
        "space-bad-expression-beside-valid",
        lambda e: [
            "space",
            e.file(
                "space.yaml",
                _space(
                    "layer: {heads: [2], qk_dim: [16], v_dim: [16], ffn: [64], ffn_kind: [searched], "
                    "expression: ['L(gelu(L(x)))', 'L(gelu(L(x)']}"
                ),
            ),
        ],
        "layer.expression[1]",
    ),
    (
        "space-hidden-bool",
        lambda e: ["space", e.file("space.yaml", _space(hidden="[64, true]"))],
        "hidden[1]: expected a number, got the boolean true",
    ),
    (
        "space-budget-device",
        lambda e: ["space", e.file("space.yaml", _space() + "budget: {device: cuda}\n")],
        "space.yaml: budget.device",
    ),
    (
        "spec-hidden-bool",
        lambda e: ["bench", e.file("spec.yaml", _spec(hidden="true"))],
        "spec.yaml: hidden: expected a number, got the boolean true",
    ),
    (
        "spec-misspelled-layers",
        lambda e: ["bench", e.file("spec.yaml", _spec().replace("layers:", "layer:"))],
        "spec.yaml: layers: missing (unknown key 'layer' given",
    ),
    ("run-trials-bool", lambda e: e.run(e.config(**{"search.trials": True})), "search.trials: expected a number"),
    ("search-budget-bool", lambda e: e.search("--budget", "batch=true"), "batch = 'true'"),
]


def _space(
    layer: str = "layer: {heads: [2], qk_dim: [16], v_dim: [16], ffn: [64]}", depth: str = "[2]", hidden: str = "[64]"
) -> str:
    """A search space file's text, one part replaced."""
    return f"depth: {depth}\nhidden: {hidden}\n{layer}\n"


def _spec(hidden: str = "64", ffn: str = "{size: 128}") -> str:
    """An ArchSpec file's text (two layers), one part replaced."""
    layer = f"{{attention: {{heads: 2, qk_dim: 32, v_dim: 32}}, ffn: {ffn}}}"
    return f"hidden: {hidden}\nlayers: [{layer}, {layer}]\n"


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input_exits_2_with_one_line_and_changes_nothing(
    case, tmp_path, monkeypatch, capsys, base_dir, teacher_dir, task_file, cache_dir
):
    _name, build, named = case
    env = Env(tmp_path / "inputs", tmp_path / "out", base_dir, teacher_dir, task_file, cache_dir)
    env.work.mkdir()
    args = build(env)
    before = _snapshot(env.work)
    code, out, err = run(monkeypatch, capsys, *args)
    assert code == 2, (out, err)
    assert "Traceback" not in err + out and len(err.strip().splitlines()) == 1, err
    assert named in err, err
    assert not env.out.exists(), sorted(p.name for p in env.out.rglob("*"))
    assert _snapshot(env.work) == before


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}
