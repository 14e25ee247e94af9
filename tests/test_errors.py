"""``differences``: what a refused resume says about the settings that changed."""

from __future__ import annotations

from bertsmith.errors import differences


def test_differences_name_dotted_keys_with_old_and_new_values():
    before = {"train": {"lr": 5e-05, "seed": 0}, "task": "sst2", "init": None}
    after = {"train": {"lr": 0.001, "seed": 0}, "task": "sst2", "augment": {"copies": 2}}
    assert (
        differences(before, after) == 'augment: (none) -> {"copies": 2}, init: null -> (none), train.lr: 5e-05 -> 0.001'
    )


def test_differences_are_cut_to_a_few_short_values():
    before = {f"k{i}": "a" * 64 for i in range(5)}
    after = {f"k{i}": "b" * 64 for i in range(5)}
    text = differences(before, after, limit=2, width=10)
    assert text == 'k0: "aaaaaaaa… -> "bbbbbbbb…, k1: "aaaaaaaa… -> "bbbbbbbb… (and 3 more)'
    assert differences({"a": [1, 2]}, {"a": [1, 3]}) == "a: [1, 2] -> [1, 3]" and differences({}, {}) == ""
