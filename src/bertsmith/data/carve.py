"""A validation split carved out of the training data, and the split arithmetic it needs.

Selection (Agora's hyperparameter sets, its mistakes) must not see the dev or test split that is
reported. ``carve`` takes only the train split and returns two disjoint parts of it; whatever uses the
parts cannot reach dev or test because it never holds them.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace
from typing import Sequence

import numpy as np

from ..errors import ConfigError
from .split import Split
from .tokenize import Encoded


def subset(encoded: Encoded, indices: Sequence[int] | np.ndarray) -> Encoded:
    """The sequences ``indices`` of ``encoded``, in that order, with their rows of ``extra`` (arrays of one
    row per token or per sequence; others are dropped) and their examples: where sequences are windows of
    examples (``extra["example_index"]``), the examples they come from, renumbered in order."""
    indices = np.asarray(indices, dtype=np.int64)
    lengths = encoded.lengths[indices]
    pieces = [slice(encoded.offsets[i], encoded.offsets[i + 1]) for i in indices]

    def tokens(array: np.ndarray) -> np.ndarray:
        return np.concatenate([array[p] for p in pieces]) if len(pieces) else array[:0]

    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(encoded.offsets.dtype)
    key = hashlib.sha256(f"{encoded.key}|subset={hashlib.sha256(indices.tobytes()).hexdigest()}".encode()).hexdigest()
    n, total = len(encoded), int(encoded.offsets[-1])
    extra = {name: tokens(a) for name, a in encoded.extra.items() if len(a) == total and total != n}
    extra |= {name: a[indices] for name, a in encoded.extra.items() if len(a) == n}
    examples = indices
    if "example_index" in extra:
        examples, extra["example_index"] = np.unique(extra["example_index"], return_inverse=True)
    return Encoded(
        tokens(encoded.input_ids),
        tokens(encoded.token_type_ids),
        offsets,
        None if encoded.labels is None else encoded.labels[indices],
        key,
        extra=extra,
        examples=None if encoded.examples is None else _examples(encoded.examples, examples, key),
    )


def _examples(split: Split, indices: np.ndarray, key: str) -> Split:
    """The examples ``indices`` of ``split``."""
    labels = None if split.labels is None else [split.labels[i] for i in indices]
    return Split([split.texts[i] for i in indices], labels, f"{split.source} [subset]", key)


def concat(first: Encoded, second: Encoded) -> Encoded:
    """``first`` followed by ``second`` (both labeled or both unlabeled)."""
    if (first.labels is None) != (second.labels is None):
        raise ConfigError("cannot join a labeled and an unlabeled split")
    offsets = np.concatenate([first.offsets[:-1], second.offsets + first.offsets[-1]]).astype(first.offsets.dtype)
    labels = None if first.labels is None else np.concatenate([first.labels, second.labels])
    return replace(
        first,
        input_ids=np.concatenate([first.input_ids, second.input_ids]),
        token_type_ids=np.concatenate([first.token_type_ids, second.token_type_ids]),
        offsets=offsets,
        labels=labels,
        key=hashlib.sha256(f"{first.key}+{second.key}".encode()).hexdigest(),
        extra={},  # per-example arrays and raw examples of the two do not join
        examples=None,
    )


def carve(train: Encoded, fraction: float, *, seed: int = 0) -> tuple[Encoded, Encoded, np.ndarray]:
    """Split ``train`` at random into (rest, validation); also returns the validation rows' indices
    in ``train``. ``fraction`` of the examples (at least one, and one left to train on) validate; the
    windows of one example (``extra["example_index"]``, extractive QA) stay together."""
    if not 0 < fraction < 1:
        raise ConfigError(f"validation fraction = {fraction}: expected a number in (0, 1)")
    groups = train.extra.get("example_index", np.arange(len(train)))
    n = int(groups.max()) + 1 if len(groups) else 0
    size = min(n - 1, max(1, round(fraction * n)))
    if n < 2:
        raise ConfigError(f"the train split has {n} example(s): too few to carve a validation split from")
    order = np.random.default_rng(seed).permutation(n)
    is_held = np.isin(groups, order[:size])
    held, kept = np.flatnonzero(is_held), np.flatnonzero(~is_held)
    return subset(train, kept), subset(train, held), held
