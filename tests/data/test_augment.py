"""Perturbed copies for distillation: counts, untouched special tokens, the replacement rate, determinism."""

from __future__ import annotations

import numpy as np
import pytest

from bertsmith.data.augment import perturbed_copies
from bertsmith.data.tokenize import Encoded
from bertsmith.errors import ConfigError

CLS, SEP, PAD = 101, 102, 0


def encoded(n: int = 200, seed: int = 0) -> Encoded:
    rng = np.random.default_rng(seed)
    ids, types, offsets = [], [], [0]
    for _ in range(n):
        a, b = rng.integers(1000, 1100, rng.integers(3, 12)), rng.integers(1000, 1100, rng.integers(3, 12))
        ids += [CLS, *a, SEP, *b, SEP]
        types += [0] * (len(a) + 2) + [1] * (len(b) + 1)
        offsets.append(len(ids))
    return Encoded(
        np.array(ids, dtype=np.int64),
        np.array(types, dtype=np.int64),
        np.array(offsets, dtype=np.int64),
        rng.integers(0, 2, n),
        key="k",
    )


def test_copies_keep_shapes_labels_and_special_tokens():
    data = encoded()
    out = perturbed_copies(data, 3, rate=0.2, special_ids={CLS, SEP, PAD})
    assert len(out) == 4 * len(data) and out.lengths.tolist() == data.lengths.tolist() * 4
    assert out.labels.tolist() == data.labels.tolist() * 4 and out.key != data.key
    for i in (0, 17, len(data) - 1):
        ids, types = data[i]
        assert out[i][0].tolist() == ids.tolist()  # the originals come first, unchanged
        for k in (1, 2, 3):
            copy, copy_types = out[i + k * len(data)]
            assert copy_types.tolist() == types.tolist()
            special = np.isin(ids, [CLS, SEP])
            assert copy[special].tolist() == ids[special].tolist()
            assert set(copy[~special].tolist()) <= set(data.input_ids[~np.isin(data.input_ids, [CLS, SEP])].tolist())


def test_the_replacement_rate_and_determinism():
    data = encoded(2000)
    out = perturbed_copies(data, 1, rate=0.3, special_ids={CLS, SEP})
    n = len(data.input_ids)
    words = ~np.isin(data.input_ids, [CLS, SEP])
    changed = (out.input_ids[n:] != data.input_ids)[words].mean()
    assert changed == pytest.approx(0.3 * 0.99, abs=0.01)  # 1 draw in 100 is the same token (100 word ids)
    again = perturbed_copies(data, 1, rate=0.3, special_ids={CLS, SEP})
    assert np.array_equal(again.input_ids, out.input_ids)
    other = perturbed_copies(data, 1, rate=0.3, special_ids={CLS, SEP}, seed=1)
    assert not np.array_equal(other.input_ids, out.input_ids) and other.key != out.key


def test_no_copies_is_the_split_itself_and_bad_values_are_refused():
    data = encoded(5)
    assert perturbed_copies(data, 0, rate=0.1, special_ids={CLS}) is data
    with pytest.raises(ConfigError, match="augment = -1"):
        perturbed_copies(data, -1, rate=0.1, special_ids={CLS})
    with pytest.raises(ConfigError, match="augment rate = 1.5"):
        perturbed_copies(data, 1, rate=1.5, special_ids={CLS})
