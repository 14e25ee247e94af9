"""SQuAD data and its official metric: reading SQuAD v1.1/v2.0 JSON (or the hub's rows) into per-question
records, and the official evaluation (answer normalisation, exact match, token F1, the v2.0 null threshold).

A question becomes the texts ``(question, context)`` and one record (``Split.labels``)::

    {"id": "5705e26d…", "title": "Southern_California", "answers": ["SoCal", …], "starts": [39, …],
     "impossible": false}

``answers`` are the gold texts (every annotator's, duplicates kept as in the file), ``starts`` their
character offsets in the context; an unanswerable SQuAD v2.0 question has none and ``impossible`` true
(its ``plausible_answers`` are not gold and are not kept). A split is v2.0 when any question is impossible.

The metric follows the official evaluation scripts (``evaluate-v1.1.py``, ``evaluate-v2.0.py``) but returns
values in 0..1, not 0..100.
"""

from __future__ import annotations

import json
import re
import string
import warnings
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from ..errors import DataError

Record = dict[str, Any]  # one question's gold data, as above


def read_squad_file(path: Path) -> list[dict]:
    """The questions of a SQuAD JSON file, each a dict holding the question's title,
    context, id, question, answers and is_impossible; DataError naming the file and the JSON position if
    the file is not JSON, or the place in the structure if it is not SQuAD's."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}, line {exc.lineno}, column {exc.colno}: not valid JSON ({exc.msg})") from None
    articles = data.get("data") if isinstance(data, dict) else None
    if not isinstance(articles, list):
        raise DataError(f"{path}: not SQuAD JSON (expected an object with a 'data' list of articles)")
    items: list[dict] = []
    for a, article in enumerate(articles):
        paragraphs = article.get("paragraphs") if isinstance(article, dict) else None
        if not isinstance(paragraphs, list):
            raise DataError(f"{path}, data[{a}], field 'paragraphs': missing or not a list")
        title = article.get("title", "")
        for p, paragraph in enumerate(paragraphs):
            where = f"{path}, data[{a}].paragraphs[{p}]"
            if not isinstance(paragraph, dict) or not isinstance(paragraph.get("qas"), list):
                raise DataError(f"{where}, field 'qas': missing or not a list")
            context = paragraph.get("context")
            if not isinstance(context, str) or not context.strip():
                raise DataError(f"{where}, field 'context': {'empty' if isinstance(context, str) else 'missing'}")
            for q, qa in enumerate(paragraph["qas"]):
                if not isinstance(qa, dict):
                    raise DataError(f"{where}.qas[{q}]: not an object")
                items.append({**qa, "title": title, "context": context})
    return items


def hub_items(rows: Iterable[Mapping[str, Any]]) -> Iterator[dict]:
    """The hub's SQuAD rows (``id, title, context, question, answers{text, answer_start}``, as
    ``rajpurkar/squad`` and ``rajpurkar/squad_v2`` have them) as ``read_squad_file``'s items; a row
    without answers is an unanswerable (v2.0) question."""
    for row in rows:
        answers = row.get("answers") or {}
        texts, starts = answers.get("text") or [], answers.get("answer_start") or []
        qa = {key: row.get(key) for key in ("title", "context", "id", "question")}
        qa["answers"] = [{"text": t, "answer_start": s} for t, s in zip(texts, starts)]
        qa["is_impossible"] = not texts
        yield qa


def records_from_items(
    items: Iterable[dict], source: str, *, skip_misaligned: bool
) -> tuple[list[tuple[str, str]], list[Record]]:
    """Texts ``(question, context)`` and records of checked questions (``read_squad_file``'s or
    ``hub_items``' items from ``source``); DataError naming the file, question
    id and field for a bad one. A question with an ``answer_start`` that does not point at its answer's
    text is kept, or skipped (``skip_misaligned``: the train split, where it would teach a wrong span)
    with a warning that counts them and names the first."""
    texts: list[tuple[str, str]] = []
    records: list[Record] = []
    misaligned: list[str] = []
    for qa in items:
        qid = qa.get("id")
        if not isinstance(qid, str) or not qid:
            raise DataError(f"{source}, question {qa.get('question')!r}, field 'id': missing or empty")
        where = f"{source}, question {qid}"
        question, context = qa.get("question"), qa.get("context")
        if not isinstance(question, str) or not question.strip():
            raise DataError(f"{where}, field 'question': {'empty' if isinstance(question, str) else 'missing'}")
        if not isinstance(context, str) or not context.strip():
            raise DataError(f"{where}, field 'context': {'empty' if isinstance(context, str) else 'missing'}")
        impossible = qa.get("is_impossible", False)
        if not isinstance(impossible, bool):
            raise DataError(f"{where}, field 'is_impossible': {impossible!r} is not true or false")
        answers = qa.get("answers")
        if answers is None and impossible:
            answers = []
        if not isinstance(answers, list):
            raise DataError(f"{where}, field 'answers': {'missing' if answers is None else 'not a list'}")
        if impossible and answers:
            raise DataError(f"{where}, field 'answers': an impossible question has gold answers")
        if not impossible and not answers:
            raise DataError(f"{where}, field 'answers': empty (and the question is not is_impossible)")
        golds, starts = [], []
        for i, answer in enumerate(answers):
            text = answer.get("text") if isinstance(answer, dict) else None
            start = answer.get("answer_start") if isinstance(answer, dict) else None
            if not isinstance(text, str) or not text.strip():
                raise DataError(f"{where}, field 'answers[{i}].text': missing or empty")
            if not isinstance(start, int) or isinstance(start, bool) or start < 0:
                raise DataError(f"{where}, field 'answers[{i}].answer_start': {start!r} is not a character offset")
            golds.append(text)
            starts.append(start)
        if any(context[s : s + len(t)] != t for t, s in zip(golds, starts)):
            misaligned.append(qid)
            if skip_misaligned:
                continue
        texts.append((question, context))
        records.append(
            {
                "id": qid,
                "title": str(qa.get("title") or ""),
                "answers": golds,
                "starts": starts,
                "impossible": impossible,
            }
        )
    if misaligned and skip_misaligned:
        warnings.warn(
            f"{source}: skipped {len(misaligned)} question(s) whose answer_start does not point at the answer "
            f"text (first: {misaligned[0]})",
            stacklevel=2,
        )
    if not records:
        raise DataError(f"{source}: no questions")
    return texts, records


def is_version_2(records: Sequence[Record]) -> bool:
    """Whether the questions are SQuAD v2.0's: some are unanswerable."""
    return any(record["impossible"] for record in records)


# --- the official metric ---------------------------------------------------------------------------------

_PUNCTUATION = set(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)


def normalize_answer(text: str) -> str:
    """The official normalisation: lower case, no punctuation, no articles (a, an, the), single spaces."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def exact_match_score(prediction: str, gold: str) -> float:
    """1 when the normalised answers are equal, else 0."""
    return float(normalize_answer(prediction) == normalize_answer(gold))


def f1_score(prediction: str, gold: str, *, version_2: bool = False) -> float:
    """The token-overlap F1 of the normalised answers (tokens counted with multiplicity). v2.0: when
    either is empty, 1 if both are, else 0 (v1.1: 0 whenever nothing overlaps)."""
    pred_tokens, gold_tokens = normalize_answer(prediction).split(), normalize_answer(gold).split()
    if version_2 and (not pred_tokens or not gold_tokens):
        return float(pred_tokens == gold_tokens)
    same = sum((Counter(pred_tokens) & Counter(gold_tokens)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pred_tokens), same / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def gold_answers(record: Record, *, version_2: bool) -> list[str]:
    """The answers a prediction is scored against: v2.0 drops golds that normalise to nothing and scores
    an unanswerable question against the empty answer."""
    if not version_2:
        return record["answers"]
    return [a for a in record["answers"] if normalize_answer(a)] or [""]


def question_scores(records: Sequence[Record], predictions: Sequence[str]) -> tuple[list[float], list[float]]:
    """Exact match and F1 of each question's prediction, the maximum over its gold answers."""
    if len(records) != len(predictions):
        raise DataError(f"{len(predictions)} predictions for {len(records)} questions")
    v2 = is_version_2(records)
    exact, f1 = [], []
    for record, prediction in zip(records, predictions):
        golds = gold_answers(record, version_2=v2)
        exact.append(max(exact_match_score(prediction, g) for g in golds))
        f1.append(max(f1_score(prediction, g, version_2=v2) for g in golds))
    return exact, f1


def squad_metrics(records: Sequence[Record], predictions: Sequence[str]) -> dict[str, float]:
    """``exact_match`` and ``f1`` (means over questions, 0..1); for v2.0 also ``has_ans_*`` and
    ``no_ans_*``, the same over the answerable and the unanswerable questions (0 when there are none)."""
    exact, f1 = question_scores(records, predictions)
    out = {"exact_match": _mean(exact), "f1": _mean(f1)}
    if is_version_2(records):
        for prefix, want in (("has_ans", False), ("no_ans", True)):
            chosen = [i for i, r in enumerate(records) if r["impossible"] == want]
            out[f"{prefix}_exact_match"] = _mean([exact[i] for i in chosen])
            out[f"{prefix}_f1"] = _mean([f1[i] for i in chosen])
    return out


def best_threshold(
    records: Sequence[Record], answers: Sequence[str], null_diffs: Sequence[float], scores: Sequence[float]
) -> tuple[float, float]:
    """The official ``find_best_thresh``: the best mean score over the split and the threshold that gives
    it, where a question is answered with ``answers[i]`` when ``null_diffs[i] <= threshold`` and left
    unanswered otherwise; ``scores[i]`` is ``answers[i]``'s exact match or F1. As in the official script
    the threshold is 0.0 when answering no question is best."""
    current = best = float(sum(r["impossible"] for r in records))
    threshold = 0.0
    for i in sorted(range(len(records)), key=lambda i: null_diffs[i]):
        if not records[i]["impossible"]:
            current += scores[i]
        elif answers[i]:
            current -= 1
        if current > best:
            best, threshold = current, float(null_diffs[i])
    return best / len(records), threshold


def _mean(values: Sequence[float]) -> float:
    return float(sum(values) / len(values)) if values else 0.0
