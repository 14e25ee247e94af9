"""The extractive_qa task type: windows of real SQuAD contexts with the MiniLM tokenizer, answers from
logits, evaluate, losses and constant levels, task YAML and the named tasks squad/squad_v2, the cache."""

from __future__ import annotations

import dataclasses
import json
import os
import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from bertsmith.data import compute_metrics, encode_split, get_task, load_split, load_task_file
from bertsmith.data.sources import Split
from bertsmith.data.squad import read_squad_file, records_from_items
from bertsmith.data.tasktypes import CLASSIFICATION, EXTRACTIVE_QA, known_metrics
from bertsmith.data.tasktypes import extractive_qa as qa_module
from bertsmith.data.tasktypes.extractive_qa import Answer, answer_metrics, answers_from_logits, prediction_rows
from bertsmith.distill import losses as L
from bertsmith.errors import ConfigError, DataError

from ..conftest import tiny_spec
from .conftest import write_lines

SQUAD_DIR = Path(
    os.environ.get("BERTSMITH_SQUAD_DIR") or Path(__file__).resolve().parents[2].parent / "shared" / "data" / "squad"
)


@pytest.fixture(scope="module")
def squad_dir() -> Path:
    """The real SQuAD excerpts: $BERTSMITH_SQUAD_DIR or <repo>/../shared/data/squad."""
    if not (SQUAD_DIR / "dev.json").is_file():
        pytest.skip(f"real SQuAD data not found at {SQUAD_DIR} (set BERTSMITH_SQUAD_DIR)")
    return SQUAD_DIR


def qa_task(tmp_path: Path, train: Path, dev: Path, extra: str = "") -> object:
    path = write_lines(
        tmp_path / "qa.yaml", [f"name: q\ntype: extractive_qa\nfiles: {{train: {train}, dev: {dev}}}{extra}"]
    )
    return load_task_file(path)


def real_split(path: Path, questions: int, **record_filter) -> Split:
    """The first ``questions`` questions of a real SQuAD file as a Split."""
    texts, records = records_from_items(read_squad_file(path), str(path), skip_misaligned=False)
    chosen = [i for i, r in enumerate(records) if all(r[k] == v for k, v in record_filter.items())][:questions]
    return Split([texts[i] for i in chosen], [records[i] for i in chosen], str(path), f"{path}:{questions}")


def gold_logits(encoded) -> np.ndarray:
    """[F, T, 2] logits with the maximum exactly on each window's labelled start and end, -1e4 past a
    window's length (as the integration's predict pads)."""
    logits = np.full((len(encoded), int(encoded.lengths.max()), 2), -1e4, dtype=np.float32)
    for f, (start, end) in enumerate(encoded.labels):
        logits[f, : encoded.lengths[f]] = 0.0
        logits[f, start, 0] = logits[f, end, 1] = 5.0
    return logits


# ---- features --------------------------------------------------------------------------------------


def test_windows_label_the_answer_and_lose_no_context_token(squad_dir: Path, tokenizer, tmp_path: Path):
    task = qa_task(tmp_path, squad_dir / "train.json", squad_dir / "dev.json", "\ndoc_stride: 24")
    data = real_split(squad_dir / "dev.json", 60)
    encoded = encode_split(data, tokenizer, max_length=96, cache_dir=tmp_path, task=task)
    chars, where = encoded.extra["offset_mapping"], encoded.extra["example_index"]
    assert encoded.labels.shape == (len(encoded), 2) and where.shape == (len(encoded),)
    assert len(encoded) > len(data)  # contexts of 120+ tokens need several windows of 96
    for q, ((_, context), record) in enumerate(zip(data.texts, data.labels)):
        windows = np.flatnonzero(where == q)
        spans = [chars[encoded.offsets[f] : encoded.offsets[f + 1]] for f in windows]
        context_rows = [s[s[:, 0] >= 0] for s in spans]
        # every context token is in some window, in order; consecutive windows share the stride
        whole = tokenizer(context, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
        seen = {tuple(map(int, row)) for rows in context_rows for row in rows}
        assert seen == set(whole)
        for before, after in zip(context_rows, context_rows[1:]):
            assert np.array_equal(before[-24:], after[:24])
        # each window starts with [CLS] question [SEP]; the label spans the first gold answer
        ids, types = encoded[windows[0]]
        assert ids[0] == tokenizer.cls_token_id and types[0] == 0 and types[-1] == 1
        labelled = [(f, s) for f, s in zip(windows, encoded.labels[windows]) if tuple(s) != (0, 0)]
        assert labelled, f"question {record['id']}: no window labels its answer"
        answer, start = record["answers"][0], record["starts"][0]
        for f, (s, e) in labelled:
            rows = chars[encoded.offsets[f] : encoded.offsets[f + 1]]
            begin, end = rows[s, 0], rows[e, 1]
            assert s <= e and begin <= start and start + len(answer) <= end
            assert context[begin:end].strip() == answer.strip()  # these 60 answers fall on token boundaries


def test_long_questions_are_cut_and_reported(tokenizer, tmp_path: Path):
    question = "why " * 80 + "?"
    data = Split([(question, "Because it is so."), ("Why?", "Because.")], [_record("x"), _record("y")], "mem", "h1")
    task = dataclasses.replace(get_task("squad"), name="mem", doc_stride=16)
    with pytest.warns(UserWarning, match=r"mem: 1 question\(s\) longer than 64 tokens cut to 64 \(first: x\)"):
        encoded = encode_split(data, tokenizer, max_length=128, cache_dir=tmp_path, task=task)
    assert encoded.extra["truncated_questions"].tolist() == [0]
    ids, types = encoded[0]
    assert int((types == 0).sum()) == 64 + 2  # [CLS] 64 question tokens [SEP]
    assert encoded.labels.tolist() == [[0, 0], [0, 0]]  # the records' answers are not in these contexts


def test_encode_refuses_slow_tokenizers_and_no_room_for_the_stride(tokenizer, tmp_path: Path):
    data = Split([("Why?", "Because.")], [_record("y")], "mem", "h2")
    squad = get_task("squad")
    with pytest.raises(ConfigError, match="needs a fast tokenizer"):
        EXTRACTIVE_QA.encode(squad, data, SimpleNamespace(is_fast=False), 384)
    # "Why?" is 2 tokens: a window of max_length n holds n - 5 context tokens
    with pytest.raises(ConfigError, match=r"squad: doc_stride 187 must be below the 187 context tokens"):
        EXTRACTIVE_QA.encode(dataclasses.replace(squad, doc_stride=187), data, tokenizer, 192)
    with pytest.raises(ConfigError, match=r"max_length = 6 is too small for extractive QA"):
        EXTRACTIVE_QA.encode(squad, data, tokenizer, 6)
    with pytest.warns(UserWarning, match=r"squad: max_length 128 leaves 123 context tokens .*; doc stride 61 "):
        encoded = encode_split(data, tokenizer, max_length=128, cache_dir=tmp_path, task=squad)
    assert encoded.labels.tolist() == [[0, 0]]
    long = Split([("Why?", " ".join(f"w{i}" for i in range(300)))], [_record("z")], "mem", "h4")
    with pytest.warns(UserWarning, match=r"doc stride 45 instead of 128"):
        windows = encode_split(long, tokenizer, max_length=96, cache_dir=tmp_path, task=squad)
    chars = [windows.extra["offset_mapping"][a:b] for a, b in zip(windows.offsets, windows.offsets[1:])]
    chars = [c[c[:, 0] >= 0] for c in chars]
    assert len(chars) > 2 and all(np.array_equal(a[-45:], b[:45]) for a, b in zip(chars, chars[1:]))


def test_cache_round_trip_gives_identical_arrays(squad_dir: Path, tokenizer, tmp_path: Path, monkeypatch):
    task = load_task_file(
        write_lines(tmp_path / "t.yaml", [f"name: t\ntype: extractive_qa\nfiles: {_files(squad_dir)}\ndoc_stride: 32"])
    )
    data = real_split(squad_dir / "dev.json", 30)
    first = encode_split(data, tokenizer, max_length=128, cache_dir=tmp_path / "c", task=task)
    monkeypatch.setattr(qa_module.ExtractiveQA, "encode", lambda *a: pytest.fail("encoded again, not cached"))
    again = encode_split(data, tokenizer, max_length=128, cache_dir=tmp_path / "c", task=task)
    assert again.key == first.key and again.extra.keys() == first.extra.keys()
    for name in ("input_ids", "token_type_ids", "offsets", "labels"):
        assert np.array_equal(getattr(again, name), getattr(first, name))
    for name, array in first.extra.items():
        assert np.array_equal(again.extra[name], array) and again.extra[name].dtype == array.dtype
    other = dataclasses.replace(task, doc_stride=16)  # the stride is part of the key
    monkeypatch.undo()
    assert encode_split(data, tokenizer, max_length=128, cache_dir=tmp_path / "c", task=other).key != first.key


# ---- answers and evaluate --------------------------------------------------------------------------


def test_gold_logits_score_one_on_real_dev_questions(squad_dir: Path, tokenizer, tmp_path: Path):
    task = qa_task(tmp_path, squad_dir / "train.json", squad_dir / "dev.json")
    data = real_split(squad_dir / "dev.json", 80)
    encoded = encode_split(
        data, tokenizer, max_length=128, cache_dir=tmp_path, task=dataclasses.replace(task, doc_stride=32)
    )
    assert EXTRACTIVE_QA.evaluate(task, gold_logits(encoded), encoded) == {"exact_match": 1.0, "f1": 1.0}
    # all zero logits (a constant model): some span of each context, not the gold
    flat = EXTRACTIVE_QA.evaluate(task, np.zeros((len(encoded), int(encoded.lengths.max()), 2), np.float32), encoded)
    assert flat["exact_match"] < 0.2


def test_version_2_gold_logits_and_best_threshold(squad_dir: Path, tokenizer, tmp_path: Path):
    answerable = real_split(squad_dir / "sample-v2.0.json", 20, impossible=False)
    unanswerable = real_split(squad_dir / "sample-v2.0.json", 20, impossible=True)
    data = Split(answerable.texts + unanswerable.texts, answerable.labels + unanswerable.labels, "v2", "h3")
    task = get_task("squad_v2")
    encoded = encode_split(data, tokenizer, max_length=384, cache_dir=tmp_path, task=task)
    logits = gold_logits(encoded)  # unanswerable: the maximum on [CLS] in every window
    metrics = EXTRACTIVE_QA.evaluate(task, logits, encoded)
    assert metrics["null_threshold"] == 0.0  # no dev metrics given: the default threshold
    assert {k: v for k, v in metrics.items() if k not in ("best_threshold", "null_threshold")} == dict.fromkeys(
        ("exact_match", "f1", "has_ans_exact_match", "has_ans_f1", "no_ans_exact_match", "no_ans_f1")
        + ("best_exact_match", "best_f1"),
        1.0,
    )
    # null score - best span score: answerable 0 - 10 (the minimum null is of the window with the answer),
    # unanswerable 10 - 0; answering exactly the answerable ones is best, at their diff
    assert metrics["best_threshold"] == -10.0
    # a threshold chosen on dev applies to this split: above every diff, no question is left unanswered
    lax = EXTRACTIVE_QA.evaluate(task, logits, encoded, dev={"best_threshold": 15.0})
    assert lax["null_threshold"] == 15.0 and lax["has_ans_f1"] == 1.0 and lax["no_ans_f1"] < 1.0
    assert lax["best_f1"] == 1.0  # the split's own best is reported beside it
    # without a null score above the span's, every question is answered: an unanswerable one scores only
    # where its answer (the first context token: all logits are 0) normalises to nothing, such as "The"
    logits[:, 0, :] = -1e3
    missed = EXTRACTIVE_QA.evaluate(task, logits, encoded)
    assert missed["no_ans_f1"] < 1.0 and missed["has_ans_f1"] == 1.0
    assert missed["f1"] == pytest.approx((1.0 + missed["no_ans_f1"]) / 2)
    # a threshold chosen elsewhere (dev's best, for test): very high answers every question, very low none
    spans = answers_from_logits(
        logits[..., 0],
        logits[..., 1],
        encoded.extra["offset_mapping"],
        encoded.offsets,
        [c for _, c in data.texts],
        encoded.extra["example_index"],
    )
    assert answer_metrics(data.labels, spans, null_threshold=1e9) | {"null_threshold": 0.0} == missed
    none = answer_metrics(data.labels, spans, null_threshold=-1e9)
    assert (none["has_ans_f1"], none["no_ans_f1"], none["f1"]) == (0.0, 1.0, 0.5)
    with pytest.raises(DataError, match=r"QA logits must be \[.*, T, 2\], got shape"):
        EXTRACTIVE_QA.evaluate(task, logits[..., 0], encoded)


def test_answers_from_logits_search():
    context = "Paris is the capital of France."
    # one window: [CLS] q [SEP] Paris is the capital of France . [SEP] (offsets -1 outside the context)
    spans = [(0, 5), (6, 8), (9, 12), (13, 20), (21, 23), (24, 30), (30, 31)]
    chars = np.array([(-1, -1), (-1, -1), (-1, -1), *spans, (-1, -1)], dtype=np.int32)
    offsets = np.array([0, len(chars)])
    start = np.zeros((1, len(chars) + 2), np.float32)  # two padding positions
    end = np.zeros_like(start)
    start[0, 8], end[0, 8] = 4.0, 4.0  # "France"
    start[0, 1], end[0, 0] = 9.0, 9.0  # the question's token and [CLS]: outside the context, never a span
    start[0, 11], end[0, 11] = 50.0, 50.0  # padding beyond the window: ignored
    start[0, 0] = 1.0
    (answer,) = answers_from_logits(start, end, chars, offsets, [context], np.array([0]))
    assert answer == Answer("France", 24, 30, 8.0, 10.0)
    # the end may not precede the start, nor the span exceed max_answer_length tokens
    end[0, 8], end[0, 3], start[0, 3] = 0.0, 6.0, -5.0  # best end "Paris", before the best start "France"
    (answer,) = answers_from_logits(start, end, chars, offsets, [context], np.array([0]))
    assert answer.text == "France" and answer.score == 4.0  # France..France: 4 + 0
    start[0, 3] = 5.0  # start "Paris", end "Paris" → 11; with max_answer_length 1 still allowed
    (answer,) = answers_from_logits(start, end, chars, offsets, [context], np.array([0]), max_answer_length=1)
    assert answer.text == "Paris" and answer.score == 11.0
    end[0, 3], end[0, 6] = 0.0, 7.0  # "Paris is the capital": 4 tokens
    long = answers_from_logits(start, end, chars, offsets, [context], np.array([0]), max_answer_length=3)[0]
    assert long.text != "Paris is the capital"
    full = answers_from_logits(start, end, chars, offsets, [context], np.array([0]), max_answer_length=4)[0]
    assert full == Answer("Paris is the capital", 0, 20, 12.0, 10.0)
    # v2.0: no answer when the null score beats the span by more than the threshold
    assert answers_from_logits(start, end, chars, offsets, [context], np.array([0]), null_threshold=-3.0)[0].text == ""
    kept = answers_from_logits(start, end, chars, offsets, [context], np.array([0]), null_threshold=0.0)[0]
    assert kept.text == "Paris is the capital"
    assert prediction_rows([kept]) == [{"answer": "Paris is the capital", "score": 12.0, "start": 0, "end": 20}]
    assert EXTRACTIVE_QA.csv_row(prediction_rows([kept])[0], None) == ["Paris is the capital", 12.0, 0, 20]
    assert EXTRACTIVE_QA.output_fields(None) == ["answer", "score", "start", "end"]


def test_answers_from_logits_best_over_windows_and_min_null():
    context = "a b c d"
    # two windows of one question: [CLS] a b [SEP] and [CLS] b c d [SEP]
    chars = np.array([(-1, -1), (0, 1), (2, 3), (-1, -1), (-1, -1), (2, 3), (4, 5), (6, 7), (-1, -1)], dtype=np.int32)
    offsets = np.array([0, 4, 9])
    start, end = np.zeros((2, 5), np.float32), np.zeros((2, 5), np.float32)
    start[0, 1], end[0, 1] = 3.0, 3.0  # "a" in window 0: 6
    start[1, 2], end[1, 3] = 4.0, 4.0  # "c d" in window 1: 8
    start[0, 0], end[0, 0], start[1, 0], end[1, 0] = 5.0, 5.0, 1.0, 1.0  # null: min(10, 2)
    (answer,) = answers_from_logits(start, end, chars, offsets, [context], np.array([0, 0]))
    assert answer == Answer("c d", 4, 7, 8.0, 2.0)


# ---- the rest of the task type ---------------------------------------------------------------------


def test_losses_match_the_reference_formulas():
    torch.manual_seed(0)
    logits, teacher = torch.randn(3, 7, 2), torch.randn(3, 7, 2)
    labels = torch.tensor([[1, 2], [0, 0], [6, 6]])
    expected = (F.cross_entropy(logits[..., 0], labels[:, 0]) + F.cross_entropy(logits[..., 1], labels[:, 1])) / 2
    assert torch.allclose(EXTRACTIVE_QA.label_loss(logits, labels), expected)
    kl = EXTRACTIVE_QA.teacher_loss(logits, teacher, logit_loss="kl", temperature=2.0)
    by_hand = (
        sum(
            4.0
            * F.kl_div(
                F.log_softmax(logits[..., i] / 2, -1),
                F.log_softmax(teacher[..., i] / 2, -1),
                log_target=True,
                reduction="batchmean",
            )
            for i in (0, 1)
        )
        / 2
    )
    assert torch.allclose(kl, by_hand)
    soft = EXTRACTIVE_QA.teacher_loss(logits, teacher, logit_loss="soft_ce", temperature=1.0)
    assert torch.allclose(
        soft,
        (L.soft_cross_entropy(logits[..., 0], teacher[..., 0]) + L.soft_cross_entropy(logits[..., 1], teacher[..., 1]))
        / 2,
    )
    assert EXTRACTIVE_QA.teacher_loss(teacher, teacher, logit_loss="kl", temperature=1.0).abs() < 1e-6


def test_constant_levels_and_summary():
    task = get_task("squad_v2")
    v2 = np.asarray([_record("a"), _record("b", impossible=True), _record("c", impossible=True)], dtype=object)
    assert EXTRACTIVE_QA.constant_level(task, "f1", v2) == pytest.approx(2 / 3)
    assert EXTRACTIVE_QA.constant_level(task, "exact_match", v2) == pytest.approx(2 / 3)
    assert EXTRACTIVE_QA.constant_level(task, "has_ans_f1", v2) == 0.0
    v1 = np.asarray([_record("a"), _record("b")], dtype=object)
    assert EXTRACTIVE_QA.constant_level(get_task("squad"), "f1", v1) == 0.0
    records = [_record("a"), _record("b", impossible=True), {**_record("c"), "title": "Other"}]
    assert EXTRACTIVE_QA.label_summary(task, records) == "2 articles, 3 questions: 2 answerable, 1 unanswerable"


def test_type_interface():
    task = get_task("squad")
    assert task.num_labels == 2 and EXTRACTIVE_QA.default_max_length == 384
    assert EXTRACTIVE_QA.export_labels(task) is None and EXTRACTIVE_QA.describe_labels(task) == "answer spans"
    assert {"f1", "exact_match", "accuracy"} <= set(known_metrics())
    model = EXTRACTIVE_QA.build_model(tiny_spec("mhsa", "dense", False), task.num_labels)
    logits, _ = model(torch.randint(0, 97, (2, 9)), torch.ones(2, 9, dtype=torch.long))
    assert tuple(logits.shape) == (2, 9, 2)
    assert EXTRACTIVE_QA.is_task_model(model) and not CLASSIFICATION.is_task_model(model)
    with pytest.raises(ConfigError, match="agora's data generation does not support extractive QA"):
        EXTRACTIVE_QA.mistakes(np.zeros((1, 3, 2)), np.zeros((1, 2)))
    with pytest.raises(ConfigError, match="answers_from_logits"):
        EXTRACTIVE_QA.predictions(np.zeros((1, 3, 2)))
    with pytest.raises(ConfigError, match="answers_from_logits"):
        EXTRACTIVE_QA.outputs(torch.zeros(1, 3, 2), None)
    with pytest.raises(DataError, match=r"squad: extractive QA is scored by evaluate"):
        compute_metrics(task, np.zeros((1, 3, 2)), np.zeros((1, 2)))
    with pytest.raises(DataError, match="use the task type's evaluate"):
        EXTRACTIVE_QA.metrics["f1"](np.zeros(1), np.zeros(1))


# ---- task YAML and the named tasks -----------------------------------------------------------------


def _record(qid: str, impossible: bool = False) -> dict:
    answers = [] if impossible else ["gold"]
    return {"id": qid, "title": "T", "answers": answers, "starts": [0] * len(answers), "impossible": impossible}


def _files(squad_dir: Path) -> str:
    return f"{{train: {squad_dir / 'train.json'}, dev: {squad_dir / 'dev.json'}}}"


def _squad_json(path: Path, questions: int = 2, impossible: bool = False) -> Path:
    context = "The cat sat on the mat."
    qas = [
        {"id": f"q{i}", "question": f"Where {i}?", "answers": [{"text": "the mat", "answer_start": 15}]}
        for i in range(questions)
    ]
    if impossible:
        qas.append({"id": "qn", "question": "Why?", "answers": [], "is_impossible": True})
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        json.dumps({"version": "x", "data": [{"title": "Cats", "paragraphs": [{"context": context, "qas": qas}]}]})
    )
    return path


def test_task_yaml(tmp_path: Path):
    _squad_json(tmp_path / "d" / "train.json", 3)
    _squad_json(tmp_path / "d" / "dev.json", 1, impossible=True)
    task = load_task_file(
        write_lines(
            tmp_path / "t.yaml",
            ["name: mine\ntype: extractive_qa\nfiles: {train: d/train.json, dev: d/dev.json}\ndoc_stride: 64"],
        )
    )
    assert (task.type, task.metrics, task.main_metric, task.labels, task.doc_stride) == (
        "extractive_qa",
        ("f1", "exact_match"),
        "f1",
        None,
        64,
    )
    assert task.text_columns == ("question", "context") and task.splits["dev"] == str(tmp_path / "d" / "dev.json")
    train, dev = load_split(task, "train"), load_split(task, "dev")
    assert len(train) == 3 and train.texts[0] == ("Where 0?", "The cat sat on the mat.")
    assert dev.labels[1] == {"id": "qn", "title": "Cats", "answers": [], "starts": [], "impossible": True}
    assert train.sha256 != load_split(dataclasses.replace(task, splits={"train": task.splits["dev"]}), "train").sha256


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "type: extractive_qa\nfiles: {train: a.json, dev: b.json}\nlabels: [a, b]",
            "labels: not a field of a extractive_qa task",
        ),
        ("type: extractive_qa\nfiles: {train: a.json, dev: b.json}\ntext_columns: [q]", "text_columns: not a field"),
        ("type: extractive_qa\nfiles: {train: a.json, dev: b.json}\nlabel_column: y", "label_column: not a field"),
        (
            "type: extractive_qa\nfiles: {train: a.json, dev: b.json}\nmetrics: [accuracy]",
            "metrics: accuracy does not apply to a extractive_qa task",
        ),
        (
            "type: extractive_qa\nfiles: {train: a.json, dev: b.json}\ndoc_stride: 0",
            "doc_stride: 0: Input should be greater than 0",
        ),
        (
            "files: {train: a.json, dev: b.json}\ntext_columns: [t]\nlabels: [a, b]",
            r"files.train: .*a\.json: unknown file format .*\(SQuAD JSON is read by type: extractive_qa\)$",
        ),
        (
            "files: {train: a.csv, dev: b.csv}\ntext_columns: [t]\nlabels: [a, b]\nmetrics: [exact_match]",
            "metrics: exact_match does not apply to a classification task",
        ),
        (
            "files: {train: a.csv, dev: b.csv}\ntext_columns: [t]\nlabels: [a, b]\ndoc_stride: 9",
            "doc_stride: a classification task has no doc_stride",
        ),
        ("files: {train: a.csv, dev: b.csv}\nlabels: [a, b]", "text_columns: required"),
    ],
)
def test_task_yaml_errors(tmp_path: Path, text: str, message: str):
    path = write_lines(tmp_path / "task.yaml", [f"name: x\n{text}"])
    with pytest.raises(DataError, match=rf"^{re.escape(str(path))}: {message}"):
        load_task_file(path)


def test_named_tasks_from_a_data_dir(tmp_path: Path):
    folder = tmp_path / "squad"
    _squad_json(folder / "train-v1.1.json", 2)
    _squad_json(folder / "dev-v1.1.json", 1)
    squad = get_task("SQuAD")
    assert squad.name == "squad" and get_task("squad-v2").name == "squad_v2"
    dev = load_split(squad, "dev", data_dir=folder)
    assert dev.source == str(folder / "dev-v1.1.json") and len(dev) == 1
    assert EXTRACTIVE_QA.label_summary(squad, dev.labels) == "1 articles, 1 questions: 1 answerable, 0 unanswerable"
    with pytest.raises(
        DataError,
        match=r"train-v2\.0\.json: squad_v2 train file missing \(found: dev-v1\.1\.json, train-v1\.1\.json\)$",
    ):
        load_split(get_task("squad_v2"), "train", data_dir=folder)
    with pytest.raises(DataError, match=r"nowhere: SQuAD data directory not found"):
        load_split(squad, "train", data_dir=tmp_path / "nowhere")


def test_named_task_offline_hub_failure(tmp_path: Path, datasets_cache: Path):
    (tmp_path / "empty").mkdir()
    squad = get_task("squad")
    task = dataclasses.replace(squad, hub=dataclasses.replace(squad.hub, name=str(tmp_path / "empty")))
    with pytest.raises(
        DataError,
        match=r"^squad: cannot load .*empty \[train\] from the Hugging Face hub \(.*\); offline, pass --data-dir "
        r"with the official SQuAD files$",
    ):
        load_split(task, "train")


def test_hub_rows_convert_to_records(tmp_path: Path, datasets_cache: Path):
    from datasets import Dataset

    rows = {
        "id": ["a", "b"],
        "title": ["Cats", "Cats"],
        "context": ["The cat sat on the mat."] * 2,
        "question": ["Where?", "Why?"],
        "answers": [{"text": ["the mat"], "answer_start": [15]}, {"text": [], "answer_start": []}],
    }
    for split in ("train", "validation"):
        Dataset.from_dict(rows).to_parquet(tmp_path / "hub" / "data" / f"{split}-00000-of-00001.parquet")
    v2 = get_task("squad_v2")
    task = dataclasses.replace(v2, hub=dataclasses.replace(v2.hub, name=str(tmp_path / "hub")))
    dev = load_split(task, "dev")
    assert dev.source.endswith("hub [validation]") and dev.texts[1] == ("Why?", "The cat sat on the mat.")
    assert dev.labels == [
        {"id": "a", "title": "Cats", "answers": ["the mat"], "starts": [15], "impossible": False},
        {"id": "b", "title": "Cats", "answers": [], "starts": [], "impossible": True},
    ]
    own = load_task_file(write_lines(tmp_path / "t.yaml", [f"name: h\ntype: extractive_qa\nhub: {tmp_path / 'hub'}"]))
    assert (own.origin, own.splits) == ("hub", {"train": "train", "dev": "validation", "test": "test"})
    assert load_split(own, "train").labels == dev.labels


def test_real_splits_read(squad_dir: Path, tmp_path: Path):
    task = load_task_file(
        write_lines(tmp_path / "t.yaml", [f"name: t\ntype: extractive_qa\nfiles: {_files(squad_dir)}"])
    )
    train, dev = load_split(task, "train"), load_split(task, "dev")
    assert (len(train), len(dev)) == (7719, 1161)
    assert (
        EXTRACTIVE_QA.label_summary(task, dev.labels) == "5 articles, 1161 questions: 1161 answerable, 0 unanswerable"
    )
    assert all(r["answers"] for r in dev.labels)
    v2 = records_from_items(read_squad_file(squad_dir / "sample-v2.0.json"), "v2", skip_misaligned=False)[1]
    assert sum(r["impossible"] for r in v2) == 702 and sum(not r["impossible"] for r in v2) == 705


def test_a_carved_validation_split_keeps_each_question_s_windows_together_and_scores(
    squad_dir: Path, tokenizer, tmp_path: Path
):
    from bertsmith.data.carve import carve

    data = real_split(squad_dir / "dev.json", 60)
    task = get_task("squad")
    encoded = encode_split(data, tokenizer, max_length=96, cache_dir=tmp_path, task=task)  # several windows each
    assert len(encoded) > len(data)
    rest, validation, held = carve(encoded, 0.25, seed=0)
    assert len(rest) + len(validation) == len(encoded)
    assert len(validation.examples.texts) == 15 and len(rest.examples.texts) == 45
    questions = {tuple(data.texts[i]) for i in encoded.extra["example_index"][held]}
    assert questions == set(validation.examples.texts) and not questions & set(rest.examples.texts)
    for part in (rest, validation):  # every window's tokens, offsets and question travel together
        assert len(part.extra["offset_mapping"]) == int(part.offsets[-1])
        assert EXTRACTIVE_QA.evaluate(task, gold_logits(part), part) == {"exact_match": 1.0, "f1": 1.0}
