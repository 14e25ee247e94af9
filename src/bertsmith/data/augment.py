"""More training inputs for distillation: ``perturbed_copies`` of a tokenized split.

A small task (MRPC: 3,668 pairs) shows the student too few inputs to learn the teacher's function
from. TinyBERT therefore distils on augmented data, with words replaced by GloVe or BERT-MLM
neighbours. bertsmith's own, simpler scheme needs no extra model: each copy of an example replaces
every non-special token, with probability ``rate``, by a token drawn from the split's own unigram
distribution. The teacher's outputs on the perturbed input are the targets, so a copy whose meaning
changed is still labelled correctly by the logit loss; a copy keeps the gold label of its original,
which the ``labels`` loss reads as it is.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace

import numpy as np

from ..errors import ConfigError
from .tokenize import Encoded


def perturbed_copies(
    encoded: Encoded, copies: int, *, rate: float, special_ids: list[int] | set[int], seed: int = 0
) -> Encoded:
    """The split followed by ``copies`` perturbed copies of every example (same lengths, token
    types and labels; special tokens such as [CLS], [SEP] and [PAD] never change)."""
    if copies < 0:
        raise ConfigError(f"augment = {copies}: the number of copies must be 0 or more")
    if not 0 < rate <= 1:
        raise ConfigError(f"augment rate = {rate}: must be in (0, 1]")
    if copies == 0:
        return encoded
    rng = np.random.default_rng(seed)
    special = np.isin(encoded.input_ids, np.fromiter(special_ids, dtype=np.int64))
    words = encoded.input_ids[~special]
    ids = [encoded.input_ids]
    for _ in range(copies):
        change = ~special & (rng.random(len(encoded.input_ids)) < rate)
        copy = encoded.input_ids.copy()
        copy[change] = words[rng.integers(0, len(words), int(change.sum()))]
        ids.append(copy)
    n_tokens = len(encoded.input_ids)
    offsets = np.concatenate(
        [encoded.offsets[:-1] + k * n_tokens for k in range(copies + 1)] + [[n_tokens * (copies + 1)]]
    )
    key = hashlib.sha256(f"{encoded.key}|augment={copies},{rate},{seed}".encode()).hexdigest()
    return replace(
        encoded,
        input_ids=np.concatenate(ids),
        token_type_ids=np.tile(encoded.token_type_ids, copies + 1),
        offsets=offsets.astype(encoded.offsets.dtype),
        labels=None if encoded.labels is None else np.tile(encoded.labels, copies + 1),
        key=key,
        extra={},  # the copies are not the split's examples: no per-example arrays, no raw examples
        examples=None,
    )
