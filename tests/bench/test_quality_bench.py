"""bench/quality.py's helpers that bench/stronger_teacher.py shares: a measured child process, and the
baselines that fit a budget given as a share or as a count of non-embedding parameters."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from bertsmith.cost import encoder_params
from bertsmith.hf import import_checkpoint

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "quality.py"


@pytest.fixture(scope="module")
def quality():
    spec = importlib.util.spec_from_file_location("quality", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_measured_gives_stdout_and_the_childs_own_peak(quality) -> None:
    grow = "b = bytearray(200 * 2**20); b[::4096] = b'x' * len(b[::4096]); print('done')"
    out, seconds, peak = quality.measured([sys.executable, "-c", grow], {})
    assert out.strip() == "done"
    assert seconds > 0
    assert 0.2 < peak < 2.0  # the 200 MB it touched, not this test process's memory


def test_measured_raises_on_failure(quality) -> None:
    with pytest.raises(subprocess.CalledProcessError):
        quality.measured([sys.executable, "-c", "raise SystemExit(3)"], {})


def test_fitting_baselines_takes_a_share_or_a_count(quality, base_dir: Path) -> None:
    spec = import_checkpoint(base_dir).spec
    total = encoder_params(spec)
    assert quality.fitting_baselines(str(base_dir), "50%") == ["uniform", "layers"]
    assert quality.fitting_baselines(str(base_dir), total // 2) == ["uniform", "layers"]
    # one layer of three (plus the pooler) does not fit in a tenth
    assert quality.fitting_baselines(str(base_dir), total // 10) == ["uniform"]
    assert quality.fitting_baselines(str(base_dir), "10%") == ["uniform"]
