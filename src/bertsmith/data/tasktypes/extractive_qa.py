"""Extractive question answering (SQuAD v1.1 and v2.0): the answer is a span of the context, the head gives
a start and an end logit per token, a question's answer is the best span over the windows of its context.

- Reading: SQuAD JSON files (``files``), the official files in a data directory (the named tasks
  ``squad`` and ``squad_v2``), or the hub's SQuAD rows (``data.squad``); one text pair
  ``(question, context)`` and one record per question (``data.squad``'s module docstring).
- Features (``encode``): ``[CLS] question [SEP] context-window [SEP]``, the context cut into windows of
  at most ``max_length`` tokens that overlap by the doc stride (the task's ``doc_stride``, else
  ``DOC_STRIDE``, or half the room left when ``max_length`` is too small for it), so no context token is
  lost; a question is cut to ``MAX_QUERY_LENGTH`` tokens. The
  label of a window is the start and end token of the question's first gold answer, or ``(0, 0)`` (the
  [CLS] token) when the window does not hold it or the question is unanswerable, as the reference
  scripts (BERT's ``run_squad.py``, transformers' ``run_qa.py``) label them.
- Answers (``answers_from_logits``) and the official metric (``evaluate``).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

from ...distill import losses as L
from ...errors import ConfigError, DataError
from .. import squad
from ..split import Split, split_digest
from ..tokenize import PAD_LOGIT, Encoded, collate
from .base import TaskType

if TYPE_CHECKING:
    from ..tasks import Task

DOC_STRIDE = 128  # tokens shared by consecutive windows of a context (the reference scripts' default)
MAX_QUERY_LENGTH = 64  # question tokens kept (the reference scripts' default); longer questions are cut
N_BEST = 20  # start and end candidates per window (the reference scripts' n_best_size)
MAX_ANSWER_LENGTH = 30  # tokens of the longest answer span (the reference scripts' default)
NULL_THRESHOLD = 0.0  # v2.0: no answer when null score - best span score > this (transformers' default)


class Answer(NamedTuple):
    """A question's best span: its text and character offsets ``[start, end)`` in the context (``""``,
    -1, -1 for no answer), its score (start + end logit), and the no-answer score (the [CLS] token's start
    + end logit, the minimum over the question's windows)."""

    text: str
    start: int
    end: int
    score: float
    null_score: float


def answers_from_logits(
    start_logits: np.ndarray,
    end_logits: np.ndarray,
    offset_mapping: np.ndarray,
    offsets: np.ndarray,
    contexts: Sequence[str],
    example_index: np.ndarray,
    *,
    n_best: int = N_BEST,
    max_answer_length: int = MAX_ANSWER_LENGTH,
    null_threshold: float | None = None,
) -> list[Answer]:
    """Each question's answer from the logits of its windows.

    ``start_logits``/``end_logits``: ``[F, T]`` per window (positions beyond a window's length are
    ignored); ``offset_mapping``: ``[tokens, 2]`` character offsets of every window's tokens in the
    context, -1 for tokens outside it, window ``f`` being rows ``offsets[f]:offsets[f + 1]``;
    ``example_index``: the question of each window. In each window the ``n_best`` highest start and end
    logits among its context tokens (bertsmith's choice: the reference scripts take them among all tokens
    and then drop the ones outside the context) form the candidate spans with start <= end and at most
    ``max_answer_length`` tokens; the best-scoring candidate over the question's windows is its span.
    With ``null_threshold`` (v2.0), the answer is empty when ``null_score - score > null_threshold``;
    without, it is always the best span.
    """
    best: list[Answer | None] = [None] * len(contexts)
    null = np.full(len(contexts), np.inf)
    for f in range(len(example_index)):
        q = int(example_index[f])
        chars = offset_mapping[offsets[f] : offsets[f + 1]]
        null[q] = min(null[q], float(start_logits[f, 0] + end_logits[f, 0]))
        context_tokens = np.flatnonzero(chars[:, 0] >= 0)
        if not len(context_tokens):
            continue
        starts, ends = start_logits[f, context_tokens], end_logits[f, context_tokens]
        top_s = np.argsort(-starts, kind="stable")[:n_best]
        top_e = np.argsort(-ends, kind="stable")[:n_best]
        scores = starts[top_s][:, None] + ends[top_e][None, :]
        length = context_tokens[top_e][None, :] - context_tokens[top_s][:, None]
        scores = np.where((length >= 0) & (length < max_answer_length), scores, -np.inf)
        i, j = np.unravel_index(int(np.argmax(scores)), scores.shape)
        score = float(scores[i, j])
        if score == -np.inf or (best[q] is not None and best[q].score >= score):
            continue
        begin, end = int(chars[context_tokens[top_s[i]], 0]), int(chars[context_tokens[top_e[j]], 1])
        best[q] = Answer(contexts[q][begin:end], begin, end, score, 0.0)
    answers = []
    for q, answer in enumerate(best):
        answer = answer or Answer("", -1, -1, -np.inf, 0.0)
        answer = answer._replace(null_score=float(null[q]))
        if null_threshold is not None and answer.null_score - answer.score > null_threshold:
            answer = answer._replace(text="", start=-1, end=-1)
        answers.append(answer)
    return answers


def _not_per_example(labels: np.ndarray, predictions: np.ndarray) -> float:
    raise DataError(
        "extractive QA metrics are not computed per example from predicted labels: use the task type's "
        "evaluate(task, logits, encoded)"
    )


def windows(
    split: Split, tokenizer, max_length: int, *, name: str, doc_stride: int | None = None
) -> dict[str, np.ndarray]:
    """``ExtractiveQA.encode``'s arrays for ``split`` (``name`` and ``doc_stride``: the task's, or the
    predicting command's with the default stride)."""
    if not getattr(tokenizer, "is_fast", False):
        raise ConfigError(
            f"extractive QA needs a fast tokenizer (offset mappings); {type(tokenizer).__name__} is not one"
        )
    questions, truncated = _cut_questions(tokenizer, [q for q, _ in split.texts])
    longest = max(len(q) for q in tokenizer(questions, add_special_tokens=False)["input_ids"])
    stride = _doc_stride(name, doc_stride, max_length, longest)
    if truncated:
        first = split.labels[truncated[0]]["id"] if split.labels else truncated[0]
        warnings.warn(
            f"{split.source}: {len(truncated)} question(s) longer than {MAX_QUERY_LENGTH} tokens cut to "
            f"{MAX_QUERY_LENGTH} (first: {first})",
            stacklevel=2,
        )
    contexts = [c for _, c in split.texts]
    ids, types, chars, lengths, labels, example_index = [], [], [], [], [], []
    for begin in range(0, len(questions), 1000):
        out = tokenizer(
            questions[begin : begin + 1000],
            contexts[begin : begin + 1000],
            truncation="only_second",
            max_length=max_length,
            stride=stride,
            return_overflowing_tokens=True,
            return_offsets_mapping=True,
            return_token_type_ids=True,
            return_attention_mask=False,
            padding=False,
        )
        for f, window in enumerate(out["input_ids"]):
            q = begin + out["overflow_to_sample_mapping"][f]
            in_context = np.array([s == 1 for s in out.sequence_ids(f)])
            mapping = np.asarray(out["offset_mapping"][f], dtype=np.int32).reshape(-1, 2)
            mapping[~in_context] = -1
            ids.append(np.asarray(window, dtype=np.int32))
            types.append(np.asarray(out["token_type_ids"][f], dtype=np.int32))
            chars.append(mapping)
            lengths.append(len(window))
            labels.append(_span_label(mapping, split.labels[q] if split.labels else None, contexts[q]))
            example_index.append(q)
    return {
        "input_ids": np.concatenate(ids),
        "token_type_ids": np.concatenate(types),
        "offsets": np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
        "labels": np.asarray(labels, dtype=np.int64).reshape(-1, 2),
        "example_index": np.asarray(example_index, dtype=np.int64),
        "offset_mapping": np.concatenate(chars),
        "truncated_questions": np.asarray(truncated, dtype=np.int64),
    }


def _doc_stride(name: str, doc_stride: int | None, max_length: int, longest: int) -> int:
    """The doc stride (a task's ``doc_stride``, or None), named by ``name`` in messages,, which must be below the context tokens a window holds after the longest
    question (``longest`` tokens, at most ``MAX_QUERY_LENGTH``); without one, ``DOC_STRIDE`` or, when
    ``max_length`` leaves no more room than that, half the room (bertsmith's choice, with a warning)."""
    room = max_length - 3 - longest  # context tokens per window after the longest question
    if room < 2:
        raise ConfigError(
            f"max_length = {max_length} is too small for extractive QA: a window holds [CLS], the split's "
            f"longest question ({longest} tokens), two [SEP] and at least 2 context tokens"
        )
    if doc_stride is not None and doc_stride >= room:
        raise ConfigError(
            f"{name}: doc_stride {doc_stride} must be below the {room} context tokens a window of "
            f"max_length {max_length} holds after the split's longest question ({longest} tokens)"
        )
    if doc_stride is None and DOC_STRIDE >= room:
        warnings.warn(
            f"{name}: max_length {max_length} leaves {room} context tokens per window; doc stride "
            f"{room // 2} instead of {DOC_STRIDE} (set the task's doc_stride to choose)",
            stacklevel=3,
        )
        return room // 2
    return doc_stride or DOC_STRIDE


class ExtractiveQA(TaskType):
    """Mean start/end cross-entropy on gold spans; temperature KL or soft cross-entropy against the
    teacher's start and end distributions over positions; SQuAD's exact match and F1."""

    name = "extractive_qa"
    named_labels = False
    label_dtype = np.int64
    metrics = {"f1": _not_per_example, "exact_match": _not_per_example}
    default_metrics = ("f1", "exact_match")
    default_max_length = 384
    own_columns = (("question", "context"), "answers")
    generated_data = False

    # --- data ---------------------------------------------------------------------------------------------

    def read_split(self, task: Task, split: str, data_dir: str | None) -> Split:
        """The split's questions from its SQuAD JSON file (a task's ``files``, or the named task's official
        file in ``data_dir``) or from the hub; questions whose answer_start misses the answer are skipped
        (with a warning) in ``train`` only."""

        if task.origin == "files" or (task.origin == "squad" and data_dir is not None):
            path = Path(task.splits[split]) if task.origin == "files" else _official_file(task, split, Path(data_dir))
            source, items = str(path), squad.read_squad_file(path)
        else:
            source, items = _hub_items(task, split)
        texts, records = squad.records_from_items(items, source, skip_misaligned=split == "train")
        return Split(texts=texts, labels=records, source=source, sha256=split_digest(texts, records))

    def encode(self, task: Task, split: Split, tokenizer, max_length: int) -> dict[str, np.ndarray]:
        """Windows of each question's context (module docstring). Arrays: ``input_ids``,
        ``token_type_ids``, ``offsets``, ``labels`` [F, 2], ``example_index`` [F] (the question of each
        window), ``offset_mapping`` [tokens, 2] (character offsets in the context, -1 outside it) and
        ``truncated_questions`` (the indices of the questions cut to ``MAX_QUERY_LENGTH`` tokens, also
        reported by a warning)."""
        return windows(split, tokenizer, max_length, name=task.name, doc_stride=task.doc_stride)

    def encode_key(self, task: Task) -> str:
        """The doc stride (the default one stands for its reduced value too: ``max_length`` is in the key)
        and the question limit."""
        return f"\nextractive_qa doc_stride={task.doc_stride or DOC_STRIDE} max_query_length={MAX_QUERY_LENGTH}"

    # --- model and losses ---------------------------------------------------------------------------------

    def build_model(self, spec, num_outputs: int) -> torch.nn.Module:
        """A QA model of ``spec`` without its pooler, which the QA head never reads (as transformers' QA
        models have none)."""
        from ...modeling import BertsmithForQuestionAnswering

        return BertsmithForQuestionAnswering(spec.replace(pooler=False) if spec.pooler else spec, num_outputs)

    def is_task_model(self, model: torch.nn.Module) -> bool:
        from ...modeling import BertsmithForQuestionAnswering

        return isinstance(model, BertsmithForQuestionAnswering)

    def num_outputs(self, task: Task) -> int:
        return 2

    def label_loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """The mean of the start and the end cross-entropy over positions (as BertForQuestionAnswering)."""
        logits = logits.float()
        return (F.cross_entropy(logits[..., 0], labels[:, 0]) + F.cross_entropy(logits[..., 1], labels[:, 1])) / 2

    def teacher_loss(
        self, student: torch.Tensor, teacher: torch.Tensor, *, logit_loss: str, temperature: float
    ) -> torch.Tensor:
        """``losses.kl_div`` (T²-scaled) or ``losses.soft_cross_entropy`` between the start distributions
        over positions, and between the end distributions, averaged."""
        loss = L.kl_div if logit_loss == "kl" else L.soft_cross_entropy
        return (
            loss(student[..., 0], teacher[..., 0], temperature) + loss(student[..., 1], teacher[..., 1], temperature)
        ) / 2

    # --- scoring ------------------------------------------------------------------------------------------

    def evaluate(
        self, task: Task, logits: np.ndarray, encoded: Encoded, *, dev: Mapping[str, float] | None = None
    ) -> dict[str, float]:
        """SQuAD's metrics (0..1) of the best spans. v1.1: ``f1``, ``exact_match``. v2.0 (some question
        unanswerable): the answer is empty when its null score exceeds its best span score by more than the
        null threshold, giving ``f1``, ``exact_match``, ``has_ans_*`` and ``no_ans_*``; and the official
        best threshold chosen on this split (``best_f1``, ``best_exact_match``, ``best_threshold`` of the
        F1 choice, in logit units). The null threshold is ``dev``'s ``best_threshold`` where given (test
        scored with the threshold chosen on dev), else ``NULL_THRESHOLD``; it is recorded as
        ``null_threshold``."""
        if encoded.examples is None or encoded.examples.labels is None:
            raise DataError(f"{task.name}: evaluate needs the split's questions (Encoded.examples)")
        records = encoded.examples.labels
        logits = np.asarray(logits, dtype=np.float32)
        if logits.ndim != 3 or logits.shape[0] != len(encoded) or logits.shape[2] != 2:
            raise DataError(f"{task.name}: QA logits must be [{len(encoded)}, T, 2], got shape {logits.shape}")
        spans = answers_from_logits(
            logits[..., 0],
            logits[..., 1],
            encoded.extra["offset_mapping"],
            encoded.offsets,
            [c for _, c in encoded.examples.texts],
            encoded.extra["example_index"],
        )
        if not squad.is_version_2(records):
            return answer_metrics(records, spans)
        threshold = dev["best_threshold"] if dev and "best_threshold" in dev else NULL_THRESHOLD
        return answer_metrics(records, spans, null_threshold=threshold) | {"null_threshold": threshold}

    def constant_level(self, task: Task, metric: str, labels: np.ndarray) -> float:
        """The empty answer for every question (the best constant answer: any text is wrong nearly
        everywhere): 0 on v1.1; on v2.0 the unanswerable share of the questions for ``f1`` and
        ``exact_match`` (1 for ``no_ans_*``, 0 for ``has_ans_*``)."""
        records = list(labels)
        if not squad.is_version_2(records):
            return 0.0
        if metric.startswith("has_ans"):
            return 0.0
        if metric.startswith("no_ans"):
            return 1.0
        return float(np.mean([r["impossible"] for r in records]))

    def parse_label(self, task: Task, value: str, where: str) -> int:
        raise DataError(f"{where}: an extractive QA task reads SQuAD JSON, not a label column")

    def metric_inputs(self, task: Task, predictions: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        raise DataError(f"{task.name}: extractive QA is scored by evaluate(task, logits, encoded), not per label")

    def predictions(self, logits: np.ndarray) -> np.ndarray:
        raise ConfigError("extractive QA has no per-example predicted label: answers come from answers_from_logits")

    def mistakes(self, logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
        raise ConfigError("agora's data generation does not support extractive QA (no per-example mistakes)")

    # --- bertsmith predict --------------------------------------------------------------------------------

    def outputs(self, logits: torch.Tensor, names: list[str] | None) -> list[dict]:
        raise ConfigError(
            "extractive QA answers need each window's context offsets: use predict_texts, or answers_from_logits "
            "and prediction_rows"
        )

    def predict_texts(
        self, model: torch.nn.Module, tokenizer, texts: list[str], pairs: list[str] | None, *, max_length: int, names
    ) -> list[dict]:
        """The best answer span per question (``texts``) in its context (``pairs``), over every window of a
        long context: ``{"answer", "score", "start", "end"}`` (character offsets in the context)."""
        if pairs is None:
            raise DataError(
                "extractive QA answers a question from a context: give one context per question (--text-pair, "
                "or a context column)"
            )
        arrays = windows(Split(list(zip(texts, pairs)), None, "predict", ""), tokenizer, max_length, name="predict")
        encoded = Encoded(arrays["input_ids"], arrays["token_type_ids"], arrays["offsets"], None, "predict")
        batch = collate(encoded, np.arange(len(encoded)), tokenizer.pad_token_id or 0)
        logits, _ = model(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"])
        logits = logits.float().detach().numpy()
        logits[batch["attention_mask"].numpy() == 0] = PAD_LOGIT
        answers = answers_from_logits(
            logits[..., 0], logits[..., 1], arrays["offset_mapping"], arrays["offsets"], pairs, arrays["example_index"]
        )
        return prediction_rows(answers)

    def output_fields(self, names: list[str] | None) -> list[str]:
        return ["answer", "score", "start", "end"]

    def csv_row(self, result: dict, names: list[str] | None) -> list:
        return [result["answer"], result["score"], result["start"], result["end"]]

    def label_summary(self, task: Task, labels: list) -> str:
        """Articles, questions, answerable and unanswerable questions."""
        articles = len({r["title"] for r in labels})
        unanswerable = sum(r["impossible"] for r in labels)
        return (
            f"{articles} articles, {len(labels)} questions: {len(labels) - unanswerable} answerable, "
            f"{unanswerable} unanswerable"
        )

    def describe_labels(self, task: Task) -> str:
        return "answer spans"

    def export_labels(self, task: Task) -> tuple[str, ...] | None:
        return None


def answer_metrics(
    records: Sequence[dict], answers: Sequence[Answer], *, null_threshold: float = NULL_THRESHOLD
) -> dict[str, float]:
    """SQuAD's metrics (0..1) of ``answers_from_logits``' answers (without a threshold) against the
    questions' records; for v2.0 a question is left unanswered when its null score exceeds its span's
    score by more than ``null_threshold`` (e.g. a ``best_threshold`` chosen on dev, for test), and the
    best threshold on these questions is reported too (as ``ExtractiveQA.evaluate`` says)."""
    texts = [a.text for a in answers]
    if not squad.is_version_2(records):
        return squad.squad_metrics(records, texts)
    diffs = [a.null_score - a.score for a in answers]
    out = squad.squad_metrics(records, ["" if d > null_threshold else t for t, d in zip(texts, diffs)])
    exact, f1 = squad.question_scores(records, texts)
    out["best_exact_match"], _ = squad.best_threshold(records, texts, diffs, exact)
    out["best_f1"], out["best_threshold"] = squad.best_threshold(records, texts, diffs, f1)
    return out


def prediction_rows(answers: Sequence[Answer]) -> list[dict]:
    """``bertsmith predict``'s result per question: ``{"answer", "score", "start", "end"}`` (character
    offsets in the context, -1 for no answer), as ``csv_row`` writes them."""
    return [{"answer": a.text, "score": a.score, "start": a.start, "end": a.end} for a in answers]


def _cut_questions(tokenizer, questions: list[str]) -> tuple[list[str], list[int]]:
    """The questions, each cut after its ``MAX_QUERY_LENGTH``-th token, and the indices of those cut."""
    out = tokenizer(questions, add_special_tokens=False, return_offsets_mapping=True, return_attention_mask=False)
    cut, truncated = list(questions), []
    for i, mapping in enumerate(out["offset_mapping"]):
        if len(mapping) > MAX_QUERY_LENGTH:
            cut[i] = questions[i][: mapping[MAX_QUERY_LENGTH - 1][1]]
            truncated.append(i)
    return cut, truncated


def _span_label(mapping: np.ndarray, record: dict | None, context: str) -> tuple[int, int]:
    """The first and last token of the first gold answer in a window (``mapping``: its tokens' character
    offsets, -1 outside the context), or (0, 0) when the window does not hold all of it. An answer whose
    start does not point at its text (kept on dev/test only) labels (0, 0): only its text is scored."""
    if record is None or not record["answers"]:
        return 0, 0
    text, start = record["answers"][0], record["starts"][0]
    if context[start : start + len(text)] != text:
        return 0, 0
    end = start + len(text)
    tokens = np.flatnonzero(mapping[:, 0] >= 0)
    if not len(tokens) or mapping[tokens[0], 0] > start or mapping[tokens[-1], 1] < end:
        return 0, 0
    first = tokens[mapping[tokens, 0] <= start][-1]
    last = tokens[mapping[tokens, 1] >= end][0]
    return int(first), int(last)


def _official_file(task: Task, split: str, data_dir: Path) -> Path:
    """The named task's official file of ``split`` in ``data_dir``; DataError listing the folder if absent."""
    if not data_dir.is_dir():
        raise DataError(f"{data_dir}: SQuAD data directory not found")
    path = data_dir / task.splits[split]
    if not path.is_file():
        found = ", ".join(sorted(p.name for p in data_dir.iterdir())) or "nothing"
        raise DataError(f"{path}: {task.name} {split} file missing (found: {found})")
    return path


def _hub_items(task: Task, split: str) -> tuple[str, list[dict]]:
    """Where the hub dataset's rows of ``split`` come from, and the rows as SQuAD items; one DataError
    when it cannot be loaded."""
    import datasets  # slow to import; only the hub path needs it

    hub = task.hub
    hub_split = hub.splits[split]
    source = f"{hub.name}{'/' + hub.config if hub.config else ''} [{hub_split}]"
    try:
        data = datasets.load_dataset(hub.name, hub.config, split=hub_split)
    except Exception as exc:  # offline, unknown name or split: datasets raises many kinds
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        hint = "offline, pass --data-dir with the official SQuAD files" if task.origin == "squad" else "check the name"
        raise DataError(f"{task.name}: cannot load {source} from the Hugging Face hub ({first}); {hint}") from None
    missing = [c for c in ("id", "context", "question", "answers") if c not in data.column_names]
    if missing:
        raise DataError(f"{source}, column {missing[0]!r}: missing (found: {', '.join(data.column_names)})")
    return source, list(squad.hub_items(data))


EXTRACTIVE_QA = ExtractiveQA()
