"""Kill points: ``bertsmith run`` SIGKILLed (in a subprocess) inside each stage and at each stage
boundary of a tiny run, one kill after another on the same run directory, then run to the end: the
results equal an uninterrupted run's, and no stage that had finished is done again."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bertsmith.rundir import DONE, STAGES

from .test_pipeline import tiny_config

ROOT = Path(__file__).resolve().parents[1]
FINISH = "bertsmith.rundir:Stage.finish"
CHECKPOINT = "bertsmith.distill.checkpoint:save_checkpoint"
# (where, after how many returns of it in that attempt, the stages complete when it is killed)
CHAIN = [
    (CHECKPOINT, 1, 0),  # inside the teacher's fine-tuning, after its first checkpoint
    (FINISH, 1, 1),  # teacher | search
    (CHECKPOINT, 1, 1),  # inside the search: the supernet's training
    ("bertsmith.search.loop:Search._finish", 2, 1),  # inside the search: after two trials
    (FINISH, 1, 2),  # search | finalists
    (CHECKPOINT, 2, 2),  # inside the finalists' distillations
    (FINISH, 1, 3),  # finalists | export
    ("bertsmith.hf.deploy:quantize_onnx", 1, 3),  # inside the export: the int8 file written, not yet scored
    (FINISH, 1, 4),  # export | report
]


def _cli(*args: str, kill: tuple[str, int] | None = None) -> subprocess.CompletedProcess:
    prefix = (
        [sys.executable, "-m", "tests._killed", kill[0], str(kill[1]), "--"]
        if kill
        else [sys.executable, "-m", "bertsmith.cli"]
    )
    env = os.environ | {"PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    return subprocess.run([*prefix, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)


def _run(config: Path, out: Path, cache: Path, kill: tuple[str, int] | None = None) -> subprocess.CompletedProcess:
    return _cli("run", str(config), "--out", str(out), "--cache-dir", str(cache), "--quiet", kill=kill)


TIMED = {"timings", "latency_ms", "speedup", "seconds", "peak_rss_gb", "peak_gpu_gb"}


def _essence(run_dir: Path, cache: Path) -> Any:
    """What a run decided and measured on the data: results.json without wall times and latencies,
    its paths relative to the run and cache directories."""

    def strip(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items() if k not in TIMED}
        if isinstance(value, list):
            return [strip(v) for v in value]
        if isinstance(value, str):
            return value.replace(str(run_dir), "RUN").replace(str(cache), "CACHE")
        return value

    return strip(json.loads((run_dir / "results.json").read_text()))


@pytest.mark.slow
def test_a_run_killed_at_every_stage_boundary_and_inside_every_stage_ends_as_an_uninterrupted_one(
    tmp_path, base_dir, task_file
):
    config = tiny_config(tmp_path, base_dir, task_file, **{"search.objectives": ["params", "flops"]})
    reference = _run(config, tmp_path / "reference", tmp_path / "cache-reference")
    assert reference.returncode == 0, reference.stderr
    run_dir, cache, stamps = tmp_path / "killed", tmp_path / "cache-killed", {}
    for where, n, complete in CHAIN:
        attempt = _run(config, run_dir, cache, kill=(where, n))
        assert attempt.returncode == -signal.SIGKILL, (where, n, attempt.returncode, attempt.stderr[-2000:])
        finished = [s for s in STAGES if (run_dir / s / DONE).is_file()]
        assert finished == list(STAGES[:complete]), (where, n, finished)
        for stage in finished:
            stamp = (run_dir / stage / DONE).stat().st_mtime_ns
            assert stamps.setdefault(stage, stamp) == stamp, f"{stage} was done again after a kill at {where}"
    last = _run(config, run_dir, cache)
    assert last.returncode == 0, last.stderr
    assert {s: (run_dir / s / DONE).stat().st_mtime_ns for s in STAGES} == stamps
    assert _essence(run_dir, cache) == _essence(tmp_path / "reference", tmp_path / "cache-reference")
