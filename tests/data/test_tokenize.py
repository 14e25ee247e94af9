"""Tokenization with the real MiniLM tokenizer, the on-disk cache, dynamic padding and length-grouped
batches."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch

from bertsmith.data import collate, default_cache_dir, encode_split, get_task, length_grouped_batches, load_split
from bertsmith.data import tokenize as tokenize_module
from bertsmith.data.sources import Split
from bertsmith.errors import ConfigError


def split(texts: list[tuple[str, ...]], labels=None) -> Split:
    return Split(
        texts=texts, labels=labels, source="test", sha256=hashlib.sha256(repr((texts, labels)).encode()).hexdigest()
    )


def test_pairs_truncation_and_cache(tokenizer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    data = split([("a short one", "and its pair"), ("a much longer first sentence than the other " * 5, "b")], [1, 0])
    encoded = encode_split(data, tokenizer, max_length=16, cache_dir=tmp_path)
    assert len(encoded) == 2 and encoded.lengths.tolist() == [9, 16]
    ids, types = encoded[0]
    assert ids.tolist() == tokenizer("a short one", "and its pair")["input_ids"]
    assert types.tolist() == [0, 0, 0, 0, 0, 1, 1, 1, 1]
    assert encoded.labels.dtype == np.int64 and list(tmp_path.iterdir()) == [tmp_path / f"{encoded.key}.npz"]

    def no_tokenizing(*args, **kwargs):
        raise AssertionError("tokenized again instead of loading the cache")

    monkeypatch.setattr(tokenize_module, "_tokenize", no_tokenizing)
    cached = encode_split(data, tokenizer, max_length=16, cache_dir=tmp_path)
    assert cached.key == encoded.key and np.array_equal(cached.input_ids, encoded.input_ids)
    assert np.array_equal(cached.offsets, encoded.offsets) and np.array_equal(cached.labels, encoded.labels)
    monkeypatch.undo()
    assert encode_split(data, tokenizer, max_length=8, cache_dir=tmp_path).key != encoded.key


def test_glue_split_and_collate(glue_dir: Path, tokenizer, tmp_path: Path):
    sts = encode_split(
        load_split(get_task("stsb"), "train", data_dir=glue_dir), tokenizer, max_length=64, cache_dir=tmp_path
    )
    batch = collate(sts, [1, 0], pad_id=tokenizer.pad_token_id)
    longest = int(sts.lengths.max())
    assert {k: tuple(v.shape) for k, v in batch.items()} == {
        "input_ids": (2, longest),
        "attention_mask": (2, longest),
        "token_type_ids": (2, longest),
        "labels": (2,),
    }
    assert batch["labels"].dtype == torch.float32 and batch["labels"].tolist() == [0.5, 5.0]
    assert batch["attention_mask"].sum(1).tolist() == sts.lengths[[1, 0]].tolist()
    short = int(np.argmin(sts.lengths[[1, 0]]))
    assert (batch["input_ids"][short, sts.lengths[[1, 0]][short] :] == tokenizer.pad_token_id).all()

    test = encode_split(
        load_split(get_task("sst2"), "test", data_dir=glue_dir), tokenizer, max_length=64, cache_dir=tmp_path
    )
    assert test.labels is None and "labels" not in collate(test, [0], pad_id=0)
    train = encode_split(
        load_split(get_task("sst2"), "train", data_dir=glue_dir), tokenizer, max_length=64, cache_dir=tmp_path
    )
    assert collate(train, np.array([0, 1]), pad_id=0)["labels"].dtype == torch.int64


def test_default_cache_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.setenv("BERTSMITH_CACHE", str(tmp_path))
    assert default_cache_dir() == tmp_path / "tokens"
    monkeypatch.delenv("BERTSMITH_CACHE")
    assert default_cache_dir() == Path.home() / ".cache" / "bertsmith" / "tokens"


LENGTHS = np.random.default_rng(1).integers(3, 128, size=1_003)


def test_length_grouped_batches_cover_every_index_once():
    for shuffle in (True, False):
        batches = length_grouped_batches(LENGTHS, 16, seed=0, epoch=0, shuffle=shuffle)
        assert sorted(i for b in batches for i in b) == list(range(len(LENGTHS)))
        assert all(len(b) == 16 for b in batches if len(b) != len(LENGTHS) % 16) and len(batches) == 63
    kept = length_grouped_batches(LENGTHS, 16, seed=0, epoch=0, drop_last=True)
    assert len(kept) == 62 and all(len(b) == 16 for b in kept)


def test_length_grouped_batches_are_deterministic_and_grouped():
    first = length_grouped_batches(LENGTHS, 16, seed=3, epoch=1)
    assert first == length_grouped_batches(LENGTHS, 16, seed=3, epoch=1)
    assert first != length_grouped_batches(LENGTHS, 16, seed=3, epoch=2)
    assert first != length_grouped_batches(LENGTHS, 16, seed=4, epoch=1)
    padded = sum(len(b) * LENGTHS[b].max() for b in first)
    random_batches = np.random.default_rng(0).permutation(len(LENGTHS))
    random_padded = sum(16 * LENGTHS[random_batches[i : i + 16]].max() for i in range(0, len(LENGTHS), 16))
    assert padded < 0.6 * random_padded
    ordered = length_grouped_batches(LENGTHS, 16, seed=0, epoch=0, shuffle=False)
    flat = [i for b in ordered for i in b]
    assert list(LENGTHS[flat]) == sorted(LENGTHS, reverse=True)
    with pytest.raises(ConfigError, match="batch_size = 0"):
        length_grouped_batches(LENGTHS, 0, seed=0, epoch=0)


def test_fingerprint_follows_the_tokenizer_files(tokenizer, tmp_path: Path):
    from transformers import AutoTokenizer

    from bertsmith.data.tokenize import tokenizer_fingerprint

    copy = tmp_path / "tok"
    copy.mkdir()
    for name in ("tokenizer.json", "vocab.txt", "tokenizer_config.json", "special_tokens_map.json"):
        (copy / name).write_bytes((Path(tokenizer.name_or_path) / name).read_bytes())
    assert tokenizer_fingerprint(AutoTokenizer.from_pretrained(copy)) == tokenizer_fingerprint(tokenizer)
    with (copy / "vocab.txt").open("a") as f:
        f.write("newword\n")
    changed = AutoTokenizer.from_pretrained(copy)
    by_files = tokenizer_fingerprint(changed)
    assert by_files != tokenizer_fingerprint(tokenizer)
    changed.name_or_path = "someone/tokenizer-on-the-hub"  # no local files: hashed by name and vocabulary
    assert tokenizer_fingerprint(changed) == tokenizer_fingerprint(changed) != by_files
