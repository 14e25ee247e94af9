"""The teacher cache: the same losses as a live teacher, keyed by teacher and data, bounded by its budget."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from bertsmith.arch import ArchSpec
from bertsmith.data.tasktypes import CLASSIFICATION
from bertsmith.data.tokenize import Encoded
from bertsmith.distill import teacher_cache as tc
from bertsmith.distill.objectives import LossConfig, TaskObjective
from bertsmith.errors import CacheError, ConfigError
from bertsmith.modeling import BertsmithForSequenceClassification

EMB = {"embeddings": {"vocab_size": 97, "max_positions": 40, "type_vocab_size": 2}}
DEFAULT = LossConfig.from_terms("logits,hidden,attention")


def _teacher(seed: int = 1) -> BertsmithForSequenceClassification:
    torch.manual_seed(seed)
    return BertsmithForSequenceClassification(ArchSpec.uniform(layers=4, hidden=64, heads=4, ffn=96, **EMB), 3).eval()


def _student(heads: int) -> BertsmithForSequenceClassification:
    torch.manual_seed(2)  # in eval mode: dropout would make two forwards differ
    return BertsmithForSequenceClassification(
        ArchSpec.uniform(layers=2, hidden=32, heads=heads, ffn=64, **EMB), 3
    ).eval()


def _split(n: int = 12, seed: int = 0) -> Encoded:
    rng = np.random.default_rng(seed)
    lengths = rng.integers(3, 12, n)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    ids = rng.integers(1, 97, offsets[-1])
    return Encoded(ids, np.zeros_like(ids), offsets, rng.integers(0, 3, n), key="test")


def _batch(split: Encoded, indices: list[int]) -> dict:
    from bertsmith.data import collate

    return collate(split, indices, 0) | {"example_ids": torch.tensor(indices)}


@pytest.mark.parametrize("layers", ["all", "last"])
@pytest.mark.parametrize("heads", [4, 2], ids=["scores", "relation"])
def test_cached_losses_and_gradients_equal_the_live_teachers(tmp_path, heads, layers):
    split, teacher = _split(), _teacher()
    losses = DEFAULT.model_copy(update={"attention_layers": layers})
    live = TaskObjective(_student(heads), teacher, losses, task_type=CLASSIFICATION)
    cached = TaskObjective(_student(heads), teacher, losses, task_type=CLASSIFICATION)
    cached.use_cache(tc.TeacherCache.open(teacher, split, root=tmp_path, bf16=False))
    assert cached.teacher_cache is not None and cached.teacher_cache.hidden
    assert cached.intermediate.modes == ["scores" if heads == 4 else "relation"] * 2
    batch = _batch(split, [0, 3, 5, 7])
    (a, parts_a), (b, parts_b) = live(batch), cached(batch)
    assert set(parts_a) == set(parts_b) == {"logits", "hidden", "attention"}
    for name in parts_a:  # only the fp16 rounding of the stored hidden states differs
        assert parts_b[name].item() == pytest.approx(parts_a[name].item(), rel=1e-4)
    ga = torch.autograd.grad(a, list(live.student.parameters()))
    gb = torch.autograd.grad(b, list(cached.student.parameters()))
    assert max((x - y).abs().max().item() for x, y in zip(ga, gb)) < 1e-4 * max(x.abs().max().item() for x in ga)


def test_a_warm_cache_gives_what_a_cold_one_gives_without_running_the_teacher(tmp_path):
    split, teacher = _split(), _teacher()
    calls = []
    teacher.register_forward_hook(lambda *_: calls.append(1))

    def losses() -> list[float]:
        objective = TaskObjective(_student(2), teacher, DEFAULT, task_type=CLASSIFICATION)
        objective.use_cache(tc.TeacherCache.open(teacher, split, root=tmp_path, bf16=False))
        return [objective(_batch(split, ids))[0].item() for ids in ([0, 1, 2], [2, 3, 4], [5, 6, 7, 8, 9, 10, 11])]

    cold = losses()
    assert len(calls) == 3  # each batch ran the teacher on its missing examples only once
    warm = losses()
    assert warm == cold and len(calls) == 3


def test_the_key_is_the_teacher_the_data_and_the_precision(tmp_path):
    split, teacher = _split(), _teacher()
    first = tc.TeacherCache.open(teacher, split, root=tmp_path, bf16=False).directory
    assert tc.TeacherCache.open(_teacher(), split, root=tmp_path, bf16=False).directory == first
    other = _teacher()
    with torch.no_grad():
        other.encoder.layers[1].ffn.up.weight[0, 0] += 1e-3
    directories = {
        first,
        tc.TeacherCache.open(other, split, root=tmp_path, bf16=False).directory,
        tc.TeacherCache.open(teacher, _split(seed=1), root=tmp_path, bf16=False).directory,
        tc.TeacherCache.open(teacher, split, root=tmp_path, bf16=True).directory,
    }
    assert len(directories) == 4


def test_the_budget_decides_what_is_stored(tmp_path, monkeypatch):
    split, teacher = _split(), _teacher()
    hidden_bytes = 2 * int(split.offsets[-1]) * 5 * 64
    assert tc.TeacherCache.open(teacher, split, root=tmp_path, bf16=False, budget=0) is None
    assert tc.TeacherCache.open(teacher, split, root=tmp_path, bf16=False, budget=100) is None
    small = tc.TeacherCache.open(teacher, split, root=tmp_path, bf16=False, budget=hidden_bytes)
    assert not small.hidden and not (small.directory / "hidden.f16").exists()
    objective = TaskObjective(_student(2), teacher, DEFAULT, task_type=CLASSIFICATION)
    objective.use_cache(small)
    assert objective.teacher_cache is None  # hidden and attention terms need the stored hidden states
    logits_only = TaskObjective(_student(2), teacher, LossConfig.from_terms("logits"), task_type=CLASSIFICATION)
    logits_only.use_cache(small)
    assert logits_only.teacher_cache is small
    assert (small.directory / "logits.f32").stat().st_size == 4 * 3 * len(split)
    monkeypatch.setenv(tc.ENV, "0")
    assert tc.budget_bytes() == 0
    monkeypatch.setenv(tc.ENV, "lots")
    with pytest.raises(ConfigError, match="BERTSMITH_TEACHER_CACHE_GB = 'lots'"):
        tc.budget_bytes()


def test_a_cache_directory_that_cannot_be_written_is_one_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(CacheError, match=f"{blocker}/teacher-outputs: cannot create a teacher cache"):
        tc.TeacherCache.open(_teacher(), _split(), root=blocker, bf16=False)


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_a_full_disk_while_writing_is_one_clear_error(tmp_path):
    split, teacher = _split(), _teacher()
    cache = tc.TeacherCache.open(teacher, split, root=tmp_path, bf16=False)
    full = os.open("/dev/full", os.O_RDWR)
    os.dup2(full, cache._fds["hidden.f16"])  # the hidden-state file now reports a full disk
    os.close(full)
    objective = TaskObjective(_student(2), teacher, DEFAULT, task_type=CLASSIFICATION)
    objective.use_cache(cache)
    with pytest.raises(CacheError, match="cannot write the teacher cache .*BERTSMITH_TEACHER_CACHE_GB=0"):
        objective(_batch(split, [0, 1]))
    assert not cache.filled(np.array([0, 1])).any()  # nothing half-written is flagged


def test_a_damaged_cache_is_refused_naming_it(tmp_path):
    split, teacher = _split(), _teacher()
    cache = tc.TeacherCache.open(teacher, split, root=tmp_path, bf16=False)
    with open(cache.directory / "hidden.f16", "r+b") as f:
        f.truncate(100)
    with pytest.raises(CacheError, match="hidden.f16: 100 bytes where the teacher cache needs .*delete"):
        tc.TeacherCache.open(teacher, split, root=tmp_path, bf16=False)
    (cache.directory / "meta.json").write_text("{not json")
    with pytest.raises(CacheError, match="meta.json does not describe this teacher and data; delete the directory"):
        tc.TeacherCache.open(teacher, split, root=tmp_path, bf16=False)


def test_the_least_recently_used_caches_make_room_within_the_budget(tmp_path):
    split = _split()
    first = tc.TeacherCache.open(_teacher(1), split, root=tmp_path, bf16=False)
    size = sum(f.stat().st_size for f in first.directory.iterdir() if f.is_file())
    second = tc.TeacherCache.open(_teacher(2), split, root=tmp_path, bf16=False, budget=2 * size)
    assert first.directory.is_dir() and second.directory.is_dir()  # both fit
    tie = (first.directory / "meta.json").stat().st_mtime_ns + 10**12  # a clock that has not ticked since
    for cache in (first, second):
        os.utime(cache.directory / "meta.json", ns=(tie, tie))
    tc.TeacherCache.open(_teacher(1), split, root=tmp_path, bf16=False, budget=2 * size)  # the first, used again
    third = tc.TeacherCache.open(_teacher(3), split, root=tmp_path, bf16=False, budget=2 * size)
    assert first.directory.is_dir() and not second.directory.exists() and third.directory.is_dir()
    objective = TaskObjective(_student(2), _teacher(2), DEFAULT, task_type=CLASSIFICATION)
    objective.use_cache(second)  # deleted under it: its open files still work
    assert torch.isfinite(objective(_batch(split, [0, 1]))[0])
