"""SQuAD JSON reading (every bad input names file, question id and field) and the official metric, on hand
cases that follow evaluate-v1.1.py and evaluate-v2.0.py."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from bertsmith.data.squad import (
    best_threshold,
    f1_score,
    normalize_answer,
    question_scores,
    read_squad_file,
    records_from_items,
    squad_metrics,
)
from bertsmith.errors import DataError

CONTEXT = "Normandy is a region in France. The Normans came in the 10th century."


def qa(qid: str, question: str = "Where is Normandy?", answers=(("France", 24),), **fields) -> dict:
    return {"id": qid, "question": question, "answers": [{"text": t, "answer_start": s} for t, s in answers], **fields}


def squad_file(tmp_path: Path, questions: list[dict], context: str = CONTEXT, name: str = "train.json") -> Path:
    data = {"version": "1.1", "data": [{"title": "Normandy", "paragraphs": [{"context": context, "qas": questions}]}]}
    path = tmp_path / name
    path.write_text(json.dumps(data, indent=1), encoding="utf-8")
    return path


def read(path: Path, split: str = "dev"):
    return records_from_items(read_squad_file(path), str(path), skip_misaligned=split == "train")


def test_reads_questions_and_records(tmp_path: Path):
    path = squad_file(tmp_path, [qa("q1"), qa("q2", "When?", (("10th century", 56), ("the 10th century", 52)))])
    texts, records = read(path)
    assert texts == [("Where is Normandy?", CONTEXT)] * 1 + [("When?", CONTEXT)]
    assert records[1] == {
        "id": "q2",
        "title": "Normandy",
        "answers": ["10th century", "the 10th century"],
        "starts": [56, 52],
        "impossible": False,
    }


def test_version_2_impossible_questions_have_no_gold(tmp_path: Path):
    unanswerable = qa("q2", "Who?", (), is_impossible=True, plausible_answers=[{"text": "France", "answer_start": 24}])
    _, records = read(squad_file(tmp_path, [qa("q1", is_impossible=False), unanswerable]))
    assert [r["impossible"] for r in records] == [False, True]
    assert records[1]["answers"] == [] and records[1]["starts"] == []


def test_malformed_json_names_line_and_column(tmp_path: Path):
    path = tmp_path / "bad.json"
    path.write_text('{"data": [\n  {"title": "x",, }\n]}', encoding="utf-8")
    with pytest.raises(DataError, match=r"^.*bad\.json, line 2, column 17: not valid JSON \(.*\)$"):
        read_squad_file(path)


@pytest.mark.parametrize(
    ("question", "message"),
    [
        ({"id": "q9", "question": "Where?"}, r"question q9, field 'answers': missing"),
        (qa("q9", answers=()), r"question q9, field 'answers': empty \(and the question is not is_impossible\)"),
        (qa("q9", answers=(), is_impossible="yes"), r"question q9, field 'is_impossible': 'yes' is not"),
        (qa("q9", is_impossible=True), r"question q9, field 'answers': an impossible question has gold answers"),
        (qa("q9", question=" "), r"question q9, field 'question': empty"),
        (qa("q9", answers=(("", 3),)), r"question q9, field 'answers\[0\]\.text': missing or empty"),
        (qa("q9", answers=(("France", -1),)), r"question q9, field 'answers\[0\]\.answer_start': -1 is not"),
        (qa(""), r"question 'Where is Normandy\?', field 'id': missing or empty"),
    ],
)
def test_bad_questions_name_file_id_and_field(tmp_path: Path, question: dict, message: str):
    path = squad_file(tmp_path, [qa("q1"), question])
    with pytest.raises(DataError, match=rf"^{re.escape(str(tmp_path))}/train\.json, {message}"):
        read(path)


def test_bad_structure(tmp_path: Path):
    with pytest.raises(DataError, match=r"data\[0\]\.paragraphs\[0\], field 'context': empty$"):
        read_squad_file(squad_file(tmp_path, [qa("q1")], context=""))
    path = tmp_path / "list.json"
    path.write_text("[1, 2]", encoding="utf-8")
    with pytest.raises(DataError, match=r"list\.json: not SQuAD JSON"):
        read_squad_file(path)
    with pytest.raises(DataError, match=r"nothing\.json: file not found"):
        read_squad_file(tmp_path / "nothing.json")
    with pytest.raises(DataError, match=r"train\.json: no questions"):
        read(squad_file(tmp_path, []))


def test_misaligned_answer_start_is_skipped_in_train_only(tmp_path: Path):
    path = squad_file(tmp_path, [qa("q1"), qa("q2", answers=(("France", 3),)), qa("q3", answers=(("region", 0),))])
    with pytest.warns(UserWarning, match=r"train\.json: skipped 2 question\(s\) whose answer_start .* \(first: q2\)"):
        _, records = read(path, "train")
    assert [r["id"] for r in records] == ["q1"]
    _, records = read(path, "dev")
    assert [r["id"] for r in records] == ["q1", "q2", "q3"]


# ---- the official metric ---------------------------------------------------------------------------


def test_normalisation_follows_the_official_script():
    assert normalize_answer("The  Quick, brown-fox!") == "quick brownfox"
    assert normalize_answer("an apple a day") == "apple day"
    assert normalize_answer("Theatre anthem") == "theatre anthem"  # articles only as whole words
    assert normalize_answer("  A  ") == ""


def test_f1_counts_repeated_tokens_once_per_match():
    # pred: "the the cat" → [cat] after normalisation (articles gone); "cat cat dog" vs "cat dog dog":
    # common = {cat: 1, dog: 1} → precision 2/3, recall 2/3
    assert f1_score("cat cat dog", "cat dog dog") == pytest.approx(2 / 3)
    assert f1_score("the cat sat", "a cat") == pytest.approx(2 * (1 / 2) * 1 / (1 / 2 + 1))
    assert f1_score("dog", "cat") == 0.0
    assert f1_score("", "") == 0.0 and f1_score("", "", version_2=True) == 1.0
    assert f1_score("the", "", version_2=True) == 1.0 and f1_score("cat", "", version_2=True) == 0.0


def record(answers: list[str], impossible: bool = False) -> dict:
    return {"id": "q", "title": "t", "answers": answers, "starts": [0] * len(answers), "impossible": impossible}


def test_exact_match_and_f1_take_the_best_gold():
    records = [record(["Denver Broncos", "The Broncos"]), record(["10th century", "in the 10th century"])]
    exact, f1 = question_scores(records, ["broncos", "10th"])
    assert exact == [1.0, 0.0]  # "the broncos" normalises to "broncos"
    assert f1 == [1.0, pytest.approx(2 / 3)]  # best gold: "10th century" (precision 1, recall 1/2)
    assert squad_metrics(records, ["broncos", "10th"]) == {"exact_match": 0.5, "f1": pytest.approx(5 / 6)}


def test_version_2_metrics_score_empty_against_empty():
    records = [record(["Paris"]), record([], impossible=True), record(["a"])]  # "a" normalises to nothing
    metrics = squad_metrics(records, ["Paris", "", ""])
    # the third gold normalises to "", so only "" matches it (v2.0 drops empty golds, then scores vs "")
    assert metrics["exact_match"] == 1.0 and metrics["f1"] == 1.0
    metrics = squad_metrics(records, ["paris!", "Paris", "x"])
    assert metrics == {
        "exact_match": pytest.approx(1 / 3),
        "f1": pytest.approx(1 / 3),
        "has_ans_exact_match": 0.5,
        "has_ans_f1": 0.5,
        "no_ans_exact_match": 0.0,
        "no_ans_f1": 0.0,
    }


def test_best_threshold_follows_find_best_thresh():
    records = [record(["a1"]), record([], impossible=True), record(["c1"]), record([], impossible=True)]
    answers = ["a1", "b", "c1", "d"]
    f1 = [1.0, 0.0, 1.0, 0.0]
    # answered when null_diff <= threshold; sorted by diff: q0 (-3), q1 (-1), q2 (2), q3 (5)
    # start: none answered = 2 (the unanswerable ones); +q0 → 3; +q1 → 2; +q2 → 3 (not better); +q3 → 2
    assert best_threshold(records, answers, [-3.0, -1.0, 2.0, 5.0], f1) == (0.75, -3.0)
    # answering nothing is best: the official script records 0.0
    assert best_threshold(records, answers, [-3.0, -1.0, 2.0, 5.0], [0.0, 0.0, 0.0, 0.0]) == (0.5, 0.0)
    # an empty answer to an unanswerable question costs nothing when answered
    assert best_threshold(records, ["a1", "", "c1", ""], [-3.0, -1.0, 2.0, 5.0], f1) == (1.0, 2.0)
