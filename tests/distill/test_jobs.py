"""Teacher fine-tuning (cached), task distillation and task-agnostic distillation on tiny models."""

from __future__ import annotations

import json

import pytest
import torch

from bertsmith.data import resolve_task
from bertsmith.distill.agnostic import corpus_files, pack, pretrain_student, read_lines
from bertsmith.distill.objectives import LossConfig
from bertsmith.distill.student import distill_on_task
from bertsmith.distill.task import load_tokenizer
from bertsmith.distill.teacher import INFO, finetune_teacher, load_teacher
from bertsmith.distill.trainer import TrainConfig
from bertsmith.errors import CheckpointError, DataError, SpecError
from bertsmith.hf import import_checkpoint

from tests.tasks import tiny_spec

STUDENT = TrainConfig(steps=36, lr=3e-3, batch_size=16, eval_every=12)
SPEC = tiny_spec(layers=2, hidden=48)


def test_teacher_learns_the_task_and_is_reused(teacher_dir, base_dir, task_file, cache_dir):
    info = json.loads((teacher_dir / INFO).read_text())
    assert info["metrics"]["dev"]["accuracy"] > 0.8 and "test" in info["metrics"]
    task = resolve_task(task_file)
    config = TrainConfig(steps=36, lr=3e-3, batch_size=16, eval_every=12)
    again = finetune_teacher(base_dir, task, config=config, max_length=16, cache_dir=cache_dir, progress=False)
    assert again.reused and again.directory == teacher_dir and again.metrics == info["metrics"]
    teacher = load_teacher(teacher_dir, task)
    assert teacher.num_labels == 2


def test_teacher_key_follows_the_training_settings(base_dir, task_file, cache_dir, teacher_dir):
    other = finetune_teacher(
        base_dir,
        resolve_task(task_file),
        config=TrainConfig(steps=2, lr=3e-3, batch_size=16),
        max_length=16,
        cache_dir=cache_dir,
        progress=False,
    )
    assert not other.reused and other.directory != teacher_dir


def test_distillation_writes_a_loadable_student(teacher_dir, task_file, cache_dir, tmp_path):
    result = distill_on_task(
        SPEC,
        teacher_dir,
        resolve_task(task_file),
        losses=LossConfig.from_terms("labels,logits"),
        config=STUDENT,
        run_dir=tmp_path / "run",
        max_length=16,
        cache_dir=cache_dir,
        progress=False,
    )
    summary = json.loads((tmp_path / "run" / "result.json").read_text())
    assert summary["metrics"] == result.metrics and set(result.metrics) == {"dev", "test"}
    assert result.metrics["dev"]["accuracy"] > 0.7
    imported = import_checkpoint(result.model_dir)
    assert imported.spec == SPEC and imported.num_labels == 2
    tokenizer = load_tokenizer(result.model_dir, imported.spec, 16)
    batch = tokenizer(["the film was great"], return_tensors="pt")
    assert imported.model(batch["input_ids"], batch["attention_mask"])[0].shape == (1, 2)


def test_a_student_sliced_from_the_teacher_starts_as_the_teacher(teacher_dir, task_file, cache_dir, tmp_path):
    """Sliced to the teacher's own shape and (almost) not trained, the student scores what the teacher does."""
    task = resolve_task(task_file)
    teacher_spec = load_teacher(teacher_dir, task).encoder.spec
    result = distill_on_task(
        teacher_spec,
        teacher_dir,
        task,
        losses=LossConfig(labels=1, logits=0),
        config=TrainConfig(steps=1, lr=1e-12, batch_size=16),
        init_from_teacher=True,
        run_dir=tmp_path / "run",
        max_length=16,
        cache_dir=cache_dir,
        progress=False,
    )
    assert result.metrics == json.loads((teacher_dir / INFO).read_text())["metrics"]
    assert json.loads((tmp_path / "run" / "result.json").read_text())["init"] == "teacher-slice"
    with pytest.raises(SpecError, match=r"layers\[0\].ffn.size: 200 is larger"):
        distill_on_task(
            teacher_spec.replace(layers=[{"attention": {"heads": 4, "qk_dim": 12, "v_dim": 12}, "ffn": {"size": 200}}]),
            teacher_dir,
            task,
            losses=LossConfig(),
            config=STUDENT,
            init_from_teacher=True,
            run_dir=tmp_path / "bad",
            max_length=16,
            cache_dir=cache_dir,
            progress=False,
        )
    assert not (tmp_path / "bad").exists()


def test_augmented_distillation_trains_on_the_copies(teacher_dir, task_file, cache_dir, tmp_path):
    """Three copies: an epoch is four times as many batches, and the settings are part of the run."""
    task = resolve_task(task_file)
    config = TrainConfig(epochs=1, lr=3e-3, batch_size=16)
    plain = distill_on_task(
        SPEC,
        teacher_dir,
        task,
        losses=LossConfig.from_terms("logits"),
        config=config,
        run_dir=tmp_path / "plain",
        max_length=16,
        cache_dir=cache_dir,
        progress=False,
    )
    augmented = distill_on_task(
        SPEC,
        teacher_dir,
        task,
        losses=LossConfig.from_terms("logits"),
        config=config,
        augment=3,
        augment_rate=0.2,
        run_dir=tmp_path / "aug",
        max_length=16,
        cache_dir=cache_dir,
        progress=False,
    )
    assert augmented.steps == pytest.approx(4 * plain.steps, abs=4)
    assert json.loads((tmp_path / "aug" / "result.json").read_text())["augment"] == {"copies": 3, "rate": 0.2}


def test_labels_only_training_needs_no_task_teacher(base_dir, task_file, cache_dir, tmp_path):
    """The directory gives the tokenizer only: a base checkpoint without a task head is fine."""
    result = distill_on_task(
        tiny_spec(layers=1),
        base_dir,
        resolve_task(task_file),
        losses=LossConfig(labels=1, logits=0),
        config=STUDENT,
        run_dir=tmp_path / "run",
        max_length=16,
        cache_dir=cache_dir,
        progress=False,
    )
    assert result.steps == 36


def test_a_teacher_without_a_task_head_is_refused(base_dir, task_file, cache_dir, tmp_path):
    with pytest.raises(CheckpointError, match="no sequence-classification head"):
        distill_on_task(
            tiny_spec(),
            base_dir,
            resolve_task(task_file),
            losses=LossConfig(),
            config=STUDENT,
            run_dir=tmp_path / "run",
            max_length=16,
            cache_dir=cache_dir,
            progress=False,
        )
    assert not (tmp_path / "run").exists()


def test_a_vocabulary_smaller_than_the_tokenizer_is_refused(teacher_dir, task_file, cache_dir, tmp_path):
    small = tiny_spec().replace(embeddings={"vocab_size": 1000})
    with pytest.raises(CheckpointError, match="vocab_size = 1000, but the tokenizer .* has 30522 tokens"):
        distill_on_task(
            small,
            teacher_dir,
            resolve_task(task_file),
            losses=LossConfig(),
            config=STUDENT,
            run_dir=tmp_path / "run",
            max_length=16,
            cache_dir=cache_dir,
            progress=False,
        )


def test_bad_data_stops_before_training_and_keeps_earlier_results(teacher_dir, task_file, cache_dir, tmp_path):
    run = tmp_path / "run"
    distill_on_task(
        tiny_spec(),
        teacher_dir,
        resolve_task(task_file),
        losses=LossConfig(),
        config=STUDENT.with_overrides(steps=8),
        run_dir=run,
        max_length=16,
        cache_dir=cache_dir,
        progress=False,
    )
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    bad = tmp_path / "bad"
    bad_task = bad / "task.yaml"
    from tests.tasks import write_task

    write_task(bad)
    (bad / "dev.csv").write_text("text,label\nthe film was good,1\nthe film was bad,7\n", encoding="utf-8")
    with pytest.raises(DataError, match="dev.csv, line 3, column 'label'"):
        distill_on_task(
            tiny_spec(),
            teacher_dir,
            resolve_task(bad_task),
            losses=LossConfig(),
            config=STUDENT,
            run_dir=run,
            max_length=16,
            cache_dir=cache_dir,
            resume=True,
            progress=False,
        )
    assert before == {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}


def test_corpus_packing_and_errors(tmp_path, minilm_dir):
    (tmp_path / "a.txt").write_text("first line of text\n\nsecond line\n" + "word " * 40 + "\n", encoding="utf-8")
    lines = read_lines(corpus_files([tmp_path]))
    assert len(lines) == 3
    corpus = pack(lines, load_tokenizer(minilm_dir, import_checkpoint(minilm_dir).spec, 16), max_length=16)
    assert all(len(s) <= 16 for s in corpus.sequences) and corpus.sequences[0][0] == 101
    assert sum(len(s) - 2 for s in corpus.sequences) == 4 + 2 + 40
    (tmp_path / "b.txt").write_bytes(b"fine\nbad \xff byte\n")
    with pytest.raises(DataError, match="b.txt: line 2: not UTF-8"):
        read_lines(corpus_files([tmp_path / "b.txt"]))
    with pytest.raises(DataError, match="no such corpus"):
        corpus_files([tmp_path / "missing.txt"])


@pytest.mark.parametrize(
    ("teacher", "recipe", "parts"), [("base_dir", "relations", {"hidden", "attention"}), ("mlm_dir", "bort", {"mlm"})]
)
def test_pretraining_recipes(request, teacher, recipe, parts, tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(
        "\n".join(f"the film number {i} was quite good and the plot was fine" for i in range(80)), encoding="utf-8"
    )
    teacher_dir = request.getfixturevalue(teacher)
    result = pretrain_student(
        tiny_spec(),
        teacher_dir,
        [corpus],
        overrides={"steps": 6, "batch_size": 8, "eval_every": 3},
        run_dir=tmp_path / "run",
        max_length=32,
        progress=False,
    )
    assert result.recipe == recipe and result.held_out_loss > 0
    logged = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert parts <= set(logged[-2]) or parts <= set(logged[0])
    assert import_checkpoint(result.model_dir).spec == tiny_spec()
    torch.manual_seed(0)
