"""Agora fine-tuning: the carved validation split, the hyperparameter sets, the drop rule, and the
proof that the reported dev split never reaches Agora's training data."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

from bertsmith.data import resolve_task
from bertsmith.data.carve import carve, concat, subset
from bertsmith.distill import agora as agora_module
from bertsmith.distill.agora import SETS, agora_on_task, drop, load_sets
from bertsmith.distill.objectives import LossConfig
from bertsmith.distill.task import load_tokenizer
from bertsmith.distill.trainer import TrainConfig
from bertsmith.errors import ConfigError
from tests.tasks import FILLER, NEGATIVE, POSITIVE, tiny_spec
from tests.test_cli import run

MARKER = "zebra"  # appears in every dev row and nowhere in train


def _encoded(n: int):
    from bertsmith.data.tokenize import Encoded

    lengths = np.arange(1, n + 1)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    ids = np.concatenate([np.full(k, k) for k in lengths])
    return Encoded(ids, np.zeros_like(ids), offsets, np.arange(n) % 2, "key")


def test_carve_splits_train_into_disjoint_parts_that_cover_it():
    train = _encoded(50)
    rest, validation, held = carve(train, 0.2, seed=3)
    assert len(validation) == 10 and len(rest) == 40 and len(held) == 10
    rows = lambda e: {int(e[i][0][0]) for i in range(len(e))}  # example k holds the token k  # noqa: E731
    assert rows(rest).isdisjoint(rows(validation)) and rows(rest) | rows(validation) == set(range(1, 51))
    assert rows(validation) == {int(h) + 1 for h in held}
    joined = concat(rest, validation)
    assert len(joined) == 50 and np.array_equal(subset(joined, [40])[0][0], validation[0][0])
    with pytest.raises(ConfigError, match=r"validation fraction = 1.0: expected a number in \(0, 1\)"):
        carve(train, 1.0)


def test_hyperparameter_sets(tmp_path):
    base = TrainConfig(steps=5)
    assert len(load_sets("default", base)) == 4 and len(SETS["bort"]) == 5 * 3 * 4 * 4 * 2
    path = tmp_path / "sets.yaml"
    path.write_text("- {lr: 0.001, seed: 3}\n- {lr: 0.0001}\n")
    sets = load_sets(path, base)
    assert [(s.lr, s.seed, s.steps) for s in sets] == [(0.001, 3, 5), (0.0001, 0, 5)]
    path.write_text("- {lr: 0.001, momentum: 0.9}\n")
    with pytest.raises(ConfigError, match="hyperparameter set 0: unknown field 'momentum'"):
        load_sets(path, base)
    path.write_text("- {lr: -1}\n")
    with pytest.raises(ConfigError, match="hyperparameter set 0: lr = -1: Input should be greater than 0"):
        load_sets(path, base)
    with pytest.raises(ConfigError, match="--agora-sets 'nope'"):
        load_sets("nope", base)


def test_drop_removes_the_worst_run_but_keeps_the_best_while_others_remain():
    assert drop({0: 0.4, 1: 0.5, 2: 0.6}, best=2) == [0]
    assert drop({0: 0.5, 1: 0.5, 2: 0.7, 3: 0.5}, best=2) == [0, 1, 3]
    assert drop({0: 0.5, 1: 0.5, 2: 0.5}, best=1) == [0, 2]  # all tied: the best set goes on alone
    assert drop({4: 0.9}, best=4) == [4]


def _marked_task(folder):
    """The tiny sentiment task with MARKER in every dev row (never in train or test)."""
    rng = random.Random(1)
    folder.mkdir(parents=True, exist_ok=True)
    for split, n in {"train": 160, "dev": 48, "test": 32}.items():
        lines = ["text,label"]
        for _ in range(n):
            label = rng.randint(0, 1)
            words = rng.sample(FILLER, 4) + [rng.choice(POSITIVE if label else NEGATIVE)]
            if split == "dev":
                words.append(MARKER)
            rng.shuffle(words)
            lines.append(f"{' '.join(words)},{label}")
        (folder / f"{split}.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    task = folder / "task.yaml"
    task.write_text(
        "name: tiny-marked\nfiles: {train: train.csv, dev: dev.csv, test: test.csv}\n"
        "text_columns: [text]\nlabel_column: label\n",
        encoding="utf-8",
    )
    return task


def test_the_reported_split_never_reaches_agora_training(monkeypatch, tmp_path, teacher_dir, cache_dir):
    task = resolve_task(_marked_task(tmp_path / "task"))
    marker = load_tokenizer(teacher_dir, tiny_spec(), 16).convert_tokens_to_ids(MARKER)
    seen, real = [], agora_module.train_on_task

    def spy(objective, data, **kwargs):
        seen.append(
            (
                set(data.splits),
                np.unique(data.splits["train"].input_ids),
                np.unique(data.splits["validation"].input_ids),
            )
        )
        return real(objective, data, **kwargs)

    monkeypatch.setattr(agora_module, "train_on_task", spy)
    config = TrainConfig(steps=4, batch_size=16, lr=3e-3)
    result = agora_on_task(
        tiny_spec(layers=1, hidden=24, heads=2),
        teacher_dir,
        task,
        losses=LossConfig(),
        config=config,
        run_dir=tmp_path / "run",
        max_length=16,
        cache_dir=cache_dir,
        progress=False,
        copies=2,
    )
    summary = json.loads((tmp_path / "run" / "result.json").read_text())
    rounds = summary["rounds"]
    assert len(rounds) >= 2 and rounds[1]["train_size"] > rounds[0]["train_size"]  # points were generated
    assert len(seen) == sum(len(r["sets"]) for r in rounds)
    for splits, train_ids, validation_ids in seen:
        assert splits == {"train", "validation"}  # dev and test are not even there
        assert marker not in train_ids and marker not in validation_ids
    assert "dev" in result.metrics and "validation" in result.metrics  # dev is only reported


def test_a_rerun_replays_the_recorded_rounds(monkeypatch, capsys, tmp_path, teacher_dir, task_file, cache_dir):
    arch = tmp_path / "arch.json"
    arch.write_text(tiny_spec(layers=1, hidden=24, heads=2).to_json())
    args = (
        "distill",
        "--agora",
        "--arch",
        str(arch),
        "--teacher",
        str(teacher_dir),
        "--task",
        str(task_file),
        "--out",
        str(tmp_path / "run"),
        "--max-length",
        "16",
        "--cache-dir",
        str(cache_dir),
        "--steps",
        "3",
        "--batch-size",
        "16",
        "--agora-copies",
        "1",
        "--quiet",
    )
    code, out, err = run(monkeypatch, capsys, *args)
    assert code == 0, err
    first = json.loads((tmp_path / "run" / "result.json").read_text())
    calls = []
    monkeypatch.setattr(agora_module, "train_on_task", lambda *a, **k: calls.append(1))
    code, again_out, err = run(monkeypatch, capsys, *args)
    again = json.loads((tmp_path / "run" / "result.json").read_text())
    assert code == 0 and calls == [] and again["metrics"] == first["metrics"] and again["rounds"] == first["rounds"]
    assert again_out == out


@pytest.mark.parametrize(
    "extra, message",
    [
        (("--validation-fraction", "0"), "validation fraction = 0.0: expected a number in (0, 1)"),
        (("--agora-sets", "nope"), "--agora-sets 'nope'"),
        (("--agora-rate", "2"), "rate = 2.0"),
        (("--augment", "2"), "--augment and --agora"),
    ],
)
def test_bad_agora_input_exits_2(monkeypatch, capsys, tmp_path, teacher_dir, task_file, cache_dir, extra, message):
    arch = tmp_path / "arch.json"
    arch.write_text(tiny_spec(layers=1, hidden=24, heads=2).to_json())
    code, _, err = run(
        monkeypatch,
        capsys,
        "distill",
        "--agora",
        "--arch",
        str(arch),
        "--teacher",
        str(teacher_dir),
        "--task",
        str(task_file),
        "--out",
        str(tmp_path / "run"),
        "--max-length",
        "16",
        "--cache-dir",
        str(cache_dir),
        "--steps",
        "2",
        "--quiet",
        *extra,
    )
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "run" / "result.json").exists()
