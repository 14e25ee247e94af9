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
from .tokenize import Encoded


def subset(encoded: Encoded, indices: Sequence[int] | np.ndarray) -> Encoded:
    """The examples ``indices`` of ``encoded``, in that order."""
    indices = np.asarray(indices, dtype=np.int64)
    lengths = encoded.lengths[indices]
    pieces = [slice(encoded.offsets[i], encoded.offsets[i + 1]) for i in indices]
    ids = np.concatenate([encoded.input_ids[p] for p in pieces]) if len(pieces) else encoded.input_ids[:0]
    types = np.concatenate([encoded.token_type_ids[p] for p in pieces]) if len(pieces) else encoded.token_type_ids[:0]
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(encoded.offsets.dtype)
    key = hashlib.sha256(f"{encoded.key}|subset={hashlib.sha256(indices.tobytes()).hexdigest()}".encode()).hexdigest()
    return Encoded(ids, types, offsets, None if encoded.labels is None else encoded.labels[indices], key)


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
    )


def carve(train: Encoded, fraction: float, *, seed: int = 0) -> tuple[Encoded, Encoded, np.ndarray]:
    """Split ``train`` at random into (rest, validation); also returns the validation rows' indices
    in ``train``. ``fraction`` of the examples (at least one, and one left to train on) validate."""
    if not 0 < fraction < 1:
        raise ConfigError(f"validation fraction = {fraction}: expected a number in (0, 1)")
    n = len(train)
    size = min(n - 1, max(1, round(fraction * n)))
    if n < 2:
        raise ConfigError(f"the train split has {n} example(s): too few to carve a validation split from")
    order = np.random.default_rng(seed).permutation(n)
    held, kept = np.sort(order[:size]), np.sort(order[size:])
    return subset(train, kept), subset(train, held), held
