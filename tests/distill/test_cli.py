"""The task, teacher and distill commands: reuse, kill -9 and resume, one-line errors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bertsmith.distill.checkpoint import latest_checkpoint
from tests.test_cli import run

from tests.tasks import tiny_spec

BERTSMITH = [sys.executable, "-m", "bertsmith.cli"]


def test_task_list_and_show(monkeypatch, capsys, task_file):
    code, out, _ = run(monkeypatch, capsys, "task", "list")
    assert code == 0 and all(t in out for t in ("cola", "mnli", "stsb", "rotten-tomatoes"))
    code, out, _ = run(monkeypatch, capsys, "task", "show", str(task_file))
    assert code == 0 and "192" in out and "64" in out


def test_teacher_command_reuses_the_cached_teacher(monkeypatch, capsys, base_dir, task_file, cache_dir, teacher_dir):
    code, out, _ = run(
        monkeypatch,
        capsys,
        "teacher",
        "--model",
        str(base_dir),
        "--task",
        str(task_file),
        "--steps",
        "36",
        "--lr",
        "3e-3",
        "--batch-size",
        "16",
        "--eval-every",
        "12",
        "--max-length",
        "16",
        "--cache-dir",
        str(cache_dir),
        "--quiet",
    )
    assert code == 0 and f"reused teacher: {teacher_dir}" in out and "dev accuracy" in out


def _distill_cmd(spec_file: Path, teacher: Path, task: Path, cache: Path, out: Path) -> list[str]:
    return [
        *BERTSMITH,
        "distill",
        "--arch",
        str(spec_file),
        "--teacher",
        str(teacher),
        "--task",
        str(task),
        "--steps",
        "60",
        "--eval-every",
        "10",
        "--batch-size",
        "8",
        "--lr",
        "3e-3",
        "--max-length",
        "16",
        "--cache-dir",
        str(cache),
        "--out",
        str(out),
        "--quiet",
    ]


def test_kill_9_and_resume_ends_like_an_uninterrupted_run(tmp_path, teacher_dir, task_file, cache_dir):
    spec_file = tmp_path / "student.yaml"
    tiny_spec(layers=2, hidden=32).save(spec_file)
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    reference = subprocess.run(
        _distill_cmd(spec_file, teacher_dir, task_file, cache_dir, tmp_path / "ref"),
        env=env,
        capture_output=True,
        text=True,
    )
    assert reference.returncode == 0, reference.stderr

    run_dir = tmp_path / "run"
    proc = subprocess.Popen(
        _distill_cmd(spec_file, teacher_dir, task_file, cache_dir, run_dir),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        latest = latest_checkpoint(run_dir) if (run_dir / "checkpoints").exists() else None
        if latest is not None and int(latest.name.split("-")[1]) >= 20:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the run finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (run_dir / "result.json").exists()

    resumed = subprocess.run(
        _distill_cmd(spec_file, teacher_dir, task_file, cache_dir, run_dir) + ["--resume"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert resumed.returncode == 0, resumed.stderr
    ref = json.loads((tmp_path / "ref" / "result.json").read_text())
    got = json.loads((run_dir / "result.json").read_text())
    assert got["best_step"] == ref["best_step"]
    for split in ref["metrics"]:
        for name, value in ref["metrics"][split].items():
            assert got["metrics"][split][name] == pytest.approx(value, abs=1e-6)
    evals = [
        json.loads(line)["step"] for line in (run_dir / "metrics.jsonl").read_text().splitlines() if '"eval"' in line
    ]
    assert evals == [10, 20, 30, 40, 50, 60]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--task", "no-such-task"], "no-such-task"),
        (["--task", "sst2", "--data-dir", "/no/such/glue"], "/no/such/glue"),
        (["--task", "sst2", "--steps", "0"], "steps = 0"),
        (["--task", "sst2", "--losses", "logits,magic"], "losses = 'logits,magic'"),
        (["--task", "sst2", "--init", "/no/such/dir", "--init-from-teacher"], "--init and --init-from-teacher"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(monkeypatch, capsys, teacher_dir, tmp_path, args, message):
    code, _, err = run(
        monkeypatch,
        capsys,
        "distill",
        "--arch",
        "bert-mini",
        "--teacher",
        str(teacher_dir),
        "--max-length",
        "16",
        "--out",
        str(tmp_path / "run"),
        *args,
    )
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()


@pytest.fixture
def teacher_without_tokenizer(tmp_path, teacher_dir) -> Path:
    """The tiny teacher with its tokenizer files removed."""
    import shutil

    from bertsmith.hf.export import TOKENIZER_FILES

    out = tmp_path / "bare-teacher"
    shutil.copytree(teacher_dir, out)
    for name in TOKENIZER_FILES:
        (out / name).unlink(missing_ok=True)
    return out


def _one_line_error(code: int, err: str, *needles: str) -> None:
    assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert all(n in err for n in needles), err


def test_a_teacher_without_tokenizer_files_is_refused_before_training(
    monkeypatch, capsys, tmp_path, task_file, cache_dir, teacher_without_tokenizer
):
    out = tmp_path / "run"
    code, _, err = run(
        monkeypatch,
        capsys,
        "distill",
        "--arch",
        "bert-mini",
        "--teacher",
        str(teacher_without_tokenizer),
        "--task",
        str(task_file),
        "--max-length",
        "16",
        "--cache-dir",
        str(cache_dir),
        "--out",
        str(out),
    )
    _one_line_error(code, err, f"{teacher_without_tokenizer}: no tokenizer files", "vocab.txt")
    assert not out.exists()


def test_a_tokenizer_far_smaller_than_the_embeddings_is_refused(
    monkeypatch, capsys, tmp_path, task_file, cache_dir, teacher_without_tokenizer
):
    (teacher_without_tokenizer / "vocab.txt").write_text("[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nfilm\n", encoding="utf-8")
    code, _, err = run(
        monkeypatch,
        capsys,
        "teacher",
        "--model",
        str(teacher_without_tokenizer),
        "--task",
        str(task_file),
        "--max-length",
        "16",
        "--cache-dir",
        str(cache_dir),
        "--quiet",
    )
    _one_line_error(code, err, str(teacher_without_tokenizer), "the tokenizer has 6 tokens for the model's 30522")


def test_a_max_length_beyond_the_teacher_s_positions_is_refused_up_front(
    monkeypatch, capsys, tmp_path, base_dir, teacher_dir, task_file, cache_dir
):
    """The tiny models have 64 positions; the tiny task's sentences are short, so without the check the
    runs would go on (on real data they fail midway with an IndexError)."""
    common = ("--task", str(task_file), "--max-length", "100", "--cache-dir", str(cache_dir), "--quiet")
    code, _, err = run(monkeypatch, capsys, "teacher", "--model", str(base_dir), *common)
    _one_line_error(
        code,
        err,
        f"--max-length 100 is more than the 64 positions of {base_dir} (max_positions in {base_dir / 'config.json'})",
    )
    code, _, err = run(
        monkeypatch,
        capsys,
        "distill",
        "--arch",
        "bert-mini",
        "--teacher",
        str(teacher_dir),
        "--out",
        str(tmp_path / "run"),
        *common,
    )
    _one_line_error(code, err, f"--max-length 100 is more than the 64 positions of {teacher_dir}")
    assert not (tmp_path / "run").exists()

    corpus = tmp_path / "corpus.txt"
    corpus.write_text("the film was good\n" * 20, encoding="utf-8")
    code, _, err = run(
        monkeypatch,
        capsys,
        "pretrain",
        "--arch",
        "bert-mini",
        "--teacher",
        str(base_dir),
        "--corpus",
        str(corpus),
        "--max-length",
        "100",
        "--out",
        str(tmp_path / "pre"),
        "--quiet",
    )
    _one_line_error(code, err, f"--max-length 100 is more than the 64 positions of {base_dir}")


def test_a_max_length_beyond_the_student_s_positions_is_refused(
    monkeypatch, capsys, tmp_path, teacher_dir, task_file, cache_dir
):
    spec_file = tmp_path / "student.yaml"
    tiny_spec().replace(embeddings={"vocab_size": 30522, "max_positions": 8}).save(spec_file)
    code, _, err = run(
        monkeypatch,
        capsys,
        "distill",
        "--arch",
        str(spec_file),
        "--teacher",
        str(teacher_dir),
        "--task",
        str(task_file),
        "--max-length",
        "16",
        "--cache-dir",
        str(cache_dir),
        "--out",
        str(tmp_path / "run"),
        "--quiet",
    )
    _one_line_error(code, err, "--max-length 16 is more than the 8 positions of the student")
    assert not (tmp_path / "run").exists()
