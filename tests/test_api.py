"""The Python API: the README's example runs as written (with the tiny teacher and task), a context is
never mixed up with another teacher's settings, its teacher is not changed by the jobs it serves, and one
`bertsmith run` reads the fine-tuned teacher's weights once."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

import bertsmith.hf.checkpoint as checkpoint
from bertsmith import api
from bertsmith.distill.trainer import TrainConfig

README = Path(__file__).resolve().parents[1] / "README.md"
INPUTS = re.compile(r"^teacher, task, data_dir, settings = .*$", re.MULTILINE)


def readme_example() -> str:
    """The python block of the README's "Python API" section."""
    text = README.read_text(encoding="utf-8")
    section = text[text.index("## Python API") :]
    start = section.index("```python\n") + len("```python\n")
    return section[start : section.index("\n```", start)]


@pytest.fixture
def reads(monkeypatch) -> list[Path]:
    """Every weights file that checkpoint imports read from here on."""
    seen: list[Path] = []
    original = checkpoint._read_file

    def spy(path: Path):
        seen.append(Path(path).resolve())
        return original(path)

    monkeypatch.setattr(checkpoint, "_read_file", spy)
    return seen


def test_the_readme_example_runs(teacher_dir, task_file, cache_dir, tmp_path, monkeypatch, capsys):
    code = readme_example()
    assert INPUTS.search(code), "the example's first line names its inputs"
    settings = {
        "budget": "params=20K",
        "trials": 3,
        "supernet_steps": 4,
        "batch_size": 16,
        "options": {"population_size": 4},
    }
    code = INPUTS.sub(
        lambda _: f"teacher, task, data_dir, settings = {str(teacher_dir)!r}, {str(task_file)!r}, None, {settings!r}",
        code,
    )
    code = code.replace(
        "api.load(teacher, task, data_dir=data_dir)",
        f"api.load(teacher, task, data_dir=data_dir, max_length=16, cache_dir={str(cache_dir)!r})",
    )
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "README.md", "exec"), {})
    printed = capsys.readouterr().out
    assert (tmp_path / "runs" / "api" / "student" / "model" / "config.json").is_file()
    assert "accuracy" in printed


def test_a_context_serves_only_its_own_settings(teacher_dir, task_file, cache_dir, tmp_path):
    from bertsmith.distill.context import context_for

    context = api.load(teacher_dir, task_file, max_length=16, cache_dir=cache_dir)
    assert context_for(context, teacher_dir, context.task, max_length=16, data_dir=None, cache_dir=cache_dir) is context
    with pytest.raises(ValueError, match="max length 16"):
        context_for(context, teacher_dir, context.task, max_length=32, data_dir=None, cache_dir=cache_dir)
    with pytest.raises(ValueError, match="not"):
        context_for(context, tmp_path, context.task, max_length=16, data_dir=None, cache_dir=cache_dir)


def test_the_jobs_leave_the_context_s_teacher_and_data_as_they_were(teacher_dir, task_file, cache_dir, tmp_path, reads):
    context = api.load(teacher_dir, task_file, max_length=16, cache_dir=cache_dir)
    assert len(reads) == 1
    reads.clear()
    before = {k: v.clone() for k, v in context.model.state_dict().items()}
    train = context.data().splits["train"]
    student = context.spec.replace(hidden=context.spec.hidden // 2)
    result = api.distill(context, student, tmp_path / "student", train=TrainConfig(steps=4, batch_size=16))
    api.search(
        context,
        tmp_path / "search",
        budget="params=20K",
        trials=3,
        supernet_steps=4,
        batch_size=16,
        options={"population_size": 4},
    )
    assert result.metrics["dev"]
    after = context.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before), "a job changed the shared teacher"
    assert context.data().splits["train"] is train
    assert not [p for p in reads if p.is_relative_to(Path(teacher_dir).resolve())], "a job read the teacher again"


def test_one_run_reads_the_teacher_s_weights_once(tmp_path, base_dir, task_file, cache_dir, reads):
    from tests.test_pipeline import tiny_config

    result = api.run(tiny_config(tmp_path, base_dir, task_file), tmp_path / "out", cache_dir=cache_dir)
    teacher = Path(result.results["teacher"]["directory"]).resolve()
    assert sum(p.is_relative_to(teacher) for p in reads) == 1
    assert any(p.is_relative_to(Path(base_dir).resolve()) for p in reads)  # the spy sees the reads

    reads.clear()  # a rerun reuses every stage; the report and the export read the teacher at most once
    api.run(tiny_config(tmp_path, base_dir, task_file), tmp_path / "out", cache_dir=cache_dir)
    assert sum(p.is_relative_to(teacher) for p in reads) <= 1
