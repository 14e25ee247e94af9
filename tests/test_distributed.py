"""Multi-process training: the global batch shared out, and teacher fine-tuning, distillation and
supernet training under torchrun with 2 CPU processes (DDP, gloo) reaching the same weights as one
process with the same global batch and seed.

Tolerance: the largest absolute difference of any weight stays below ``TOLERANCE`` (measured: 3e-7
for the teacher, 5e-8 for distillation, 1e-5 for the supernet after 12 steps; the processes sum
their gradients in another order). Dropout is 0 in these models: with dropout, each process draws
masks for its own share of the batch, so runs agree in distribution, not weight by weight.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from bertsmith import distributed
from bertsmith.distill.teacher import INFO
from bertsmith.errors import ConfigError
from bertsmith.hf.export import export_pretrained
from bertsmith.modeling import BertsmithModel

from .tasks import tiny_spec

TOLERANCE = 1e-4
COMMON = ["--batch-size", "16", "--max-length", "16", "--quiet"]
TRAIN = ["--steps", "12", "--lr", "3e-3", "--eval-every", "6"]


@pytest.mark.parametrize("size,world", [(16, 2), (15, 2), (7, 3), (2, 4), (1, 1)])
def test_shards_cover_the_batch_and_their_scaled_losses_average_to_the_batch_mean(monkeypatch, size, world):
    values = torch.arange(size, dtype=torch.float64) ** 2
    shards, average = [], 0.0
    for rank in range(world):
        monkeypatch.setenv("RANK", str(rank))
        monkeypatch.setenv("WORLD_SIZE", str(world))
        indices, scale = distributed.shard(list(range(size)))
        if scale:
            shards += indices
        average += scale * float(values[indices].mean()) / world  # what DDP's gradient averaging computes
    assert shards == list(range(size))
    assert average == pytest.approx(float(values.mean()))


def test_an_empty_share_gets_one_example_that_counts_zero(monkeypatch):
    monkeypatch.setenv("RANK", "2")
    monkeypatch.setenv("WORLD_SIZE", "4")
    assert distributed.shard([10, 11]) == ([10], 0.0)
    assert not distributed.is_main()


def test_search_and_run_refuse_a_multi_process_launch(monkeypatch, tmp_path):
    from bertsmith.cli import run
    from bertsmith.search.job import SearchSettings, run_search_job

    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(ConfigError, match="bertsmith search runs in one process.*--supernet-only"):
        run_search_job(SearchSettings(space=None, teacher=tmp_path, task="sst2", run_dir=tmp_path / "run"))
    with pytest.raises(ConfigError, match="bertsmith run runs in one process"):
        run(config_file=None, out=tmp_path / "run", force=False, show_config=False, cache_dir=None, quiet=True)
    assert not (tmp_path / "run").exists()


# ---- the training loops under torchrun ------------------------------------------------------------
@pytest.fixture(scope="module")
def models(tmp_path_factory, minilm_dir) -> Path:
    """A dropout-free base model, student spec and search space."""
    root = tmp_path_factory.mktemp("ddp")
    torch.manual_seed(0)
    no_dropout = {"hidden_dropout": 0.0, "attention_dropout": 0.0}
    export_pretrained(
        BertsmithModel(tiny_spec(layers=2, hidden=32).replace(**no_dropout)).eval(),
        root / "base",
        tokenizer_dir=minilm_dir,
    )
    (root / "student.json").write_text(tiny_spec(layers=1, hidden=16, heads=2).replace(**no_dropout).to_json())
    (root / "space.yaml").write_text(
        "depth: [1, 2]\nhidden: [16, 32]\nper_layer: true\ndropout: 0\n"
        "embeddings: {vocab_size: 30522, max_positions: 64, type_vocab_size: 2}\n"
        "layer: {heads: [1, 2, 4], qk_dim: [4, 8], v_dim: [4, 8], ffn: [32, 64]}\n"
    )
    return root


def launch(processes: int, *args: str | Path) -> str:
    """``bertsmith ARGS`` under torchrun with ``processes`` CPU processes; its output."""
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={processes}",
        "-m",
        "bertsmith.cli",
        *map(str, args),
    ]
    env = os.environ | {"HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def max_difference(a: Path, b: Path) -> float:
    first, second = load_file(a), load_file(b)
    assert first.keys() == second.keys()
    return max(float((first[k] - second[k]).abs().max()) for k in first)


def records(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_teacher_finetuning_with_2_processes_equals_1(models, task_file, tmp_path):
    for n in (1, 2):
        out = launch(
            n,
            "teacher",
            "--model",
            models / "base",
            "--task",
            task_file,
            "--cache-dir",
            tmp_path / f"c{n}",
            *TRAIN,
            *COMMON,
        )
        assert out.count("trained teacher") == 1  # printed by the main process only
    one, two = (next((tmp_path / f"c{n}" / "teachers").glob("tiny-sentiment-*")) for n in (1, 2))
    assert max_difference(one / "model.safetensors", two / "model.safetensors") < TOLERANCE
    assert json.loads((one / INFO).read_text())["metrics"] == json.loads((two / INFO).read_text())["metrics"]


@pytest.mark.slow
def test_distillation_with_2_processes_equals_1_and_only_the_main_process_writes(
    models, teacher_dir, task_file, tmp_path
):
    for n in (1, 2):
        launch(
            n,
            "distill",
            "--arch",
            models / "student.json",
            "--teacher",
            teacher_dir,
            "--task",
            task_file,
            "--out",
            tmp_path / f"d{n}",
            *TRAIN,
            *COMMON,
        )
    one, two = tmp_path / "d1", tmp_path / "d2"
    assert max_difference(one / "model" / "model.safetensors", two / "model" / "model.safetensors") < TOLERANCE
    first, second = records(one), records(two)
    assert [r["step"] for r in first] == [r["step"] for r in second]  # each record written once
    for a, b in zip(first, second):
        if "loss" in a:  # the global batch's loss, averaged over the processes
            assert a["loss"] == pytest.approx(b["loss"], abs=1e-4)
        else:
            assert a["eval"] == b["eval"]
    assert sorted(p.name for p in two.iterdir()) == sorted(p.name for p in one.iterdir())


@pytest.mark.slow
def test_supernet_training_with_2_processes_equals_1(models, teacher_dir, task_file, tmp_path):
    for n in (1, 2):
        out = launch(
            n,
            "search",
            "--space",
            models / "space.yaml",
            "--teacher",
            teacher_dir,
            "--task",
            task_file,
            "--supernet-only",
            "--supernet",
            tmp_path / f"s{n}",
            "--supernet-steps",
            "12",
            "--supernet-lr",
            "3e-3",
            *COMMON,
        )
        assert out.count("supernet trained (12 steps)") == 1
    assert (
        max_difference(tmp_path / "s1" / "supernet.safetensors", tmp_path / "s2" / "supernet.safetensors") < TOLERANCE
    )
