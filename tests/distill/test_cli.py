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
    code, out, _ = run(monkeypatch, capsys, "teacher", "--model", str(base_dir), "--task", str(task_file), "--steps", "36",
                       "--lr", "3e-3", "--batch-size", "16", "--eval-every", "12", "--max-length", "16",
                       "--cache-dir", str(cache_dir), "--quiet")
    assert code == 0 and f"reused teacher: {teacher_dir}" in out and "dev accuracy" in out


def _distill_cmd(spec_file: Path, teacher: Path, task: Path, cache: Path, out: Path) -> list[str]:
    return [*BERTSMITH, "distill", "--arch", str(spec_file), "--teacher", str(teacher), "--task", str(task),
            "--steps", "60", "--eval-every", "10", "--batch-size", "8", "--lr", "3e-3", "--max-length", "16",
            "--cache-dir", str(cache), "--out", str(out), "--quiet"]


def test_kill_9_and_resume_ends_like_an_uninterrupted_run(tmp_path, teacher_dir, task_file, cache_dir):
    spec_file = tmp_path / "student.yaml"
    tiny_spec(layers=2, hidden=32).save(spec_file)
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    reference = subprocess.run(_distill_cmd(spec_file, teacher_dir, task_file, cache_dir, tmp_path / "ref"),
                               env=env, capture_output=True, text=True)
    assert reference.returncode == 0, reference.stderr

    run_dir = tmp_path / "run"
    proc = subprocess.Popen(_distill_cmd(spec_file, teacher_dir, task_file, cache_dir, run_dir), env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
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

    resumed = subprocess.run(_distill_cmd(spec_file, teacher_dir, task_file, cache_dir, run_dir) + ["--resume"],
                             env=env, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    ref = json.loads((tmp_path / "ref" / "result.json").read_text())
    got = json.loads((run_dir / "result.json").read_text())
    assert got["best_step"] == ref["best_step"]
    for split in ref["metrics"]:
        for name, value in ref["metrics"][split].items():
            assert got["metrics"][split][name] == pytest.approx(value, abs=1e-6)
    evals = [json.loads(line)["step"] for line in (run_dir / "metrics.jsonl").read_text().splitlines() if '"eval"' in line]
    assert evals == [10, 20, 30, 40, 50, 60]


@pytest.mark.parametrize(("args", "message"), [
    (["--task", "no-such-task"], "no-such-task"),
    (["--task", "sst2", "--data-dir", "/no/such/glue"], "/no/such/glue"),
    (["--task", "sst2", "--steps", "0"], "steps = 0"),
    (["--task", "sst2", "--losses", "logits,magic"], "losses = 'logits,magic'"),
    (["--task", "sst2", "--init", "/no/such/dir", "--init-from-teacher"], "--init and --init-from-teacher"),
])
def test_bad_input_is_one_line_and_exit_2(monkeypatch, capsys, teacher_dir, tmp_path, args, message):
    code, _, err = run(monkeypatch, capsys, "distill", "--arch", "bert-mini", "--teacher", str(teacher_dir),
                       "--out", str(tmp_path / "run"), *args)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()
