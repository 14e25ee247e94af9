"""Digest values are keys: studies, caches and run directories find earlier work by them, so the
values computed here must never change (computed before the digests moved to bertsmith.files)."""

from __future__ import annotations

import types

import numpy as np
import torch

from bertsmith import pipeline, rundir
from bertsmith.data.split import split_digest as examples_digest
from bertsmith.distill.teacher_cache import tokens_digest, weights_digest
from bertsmith.files import digest, files_digest, path_digest
from bertsmith.search.space import SearchSpace


def _directory(tmp_path):
    (tmp_path / "a.txt").write_bytes(b"alpha\n")
    (tmp_path / "b.bin").write_bytes(bytes(range(256)))
    (tmp_path / "sub").mkdir()  # directories are not part of a directory's digest
    return tmp_path


def test_value_digests_are_pinned():
    assert digest({"b": [1, 2.5, "x"], "a": None}) == "05147f4c034266888060ee06fae0abe784ce883eb3b125b981d3fd9d4db2c568"
    assert rundir.digest(["identity", {"trials": 3}]) == "db1ce7bf2785c56d"
    space = SearchSpace.from_dict(
        {
            "depth": [1, 2],
            "hidden": [32, 48],
            "layer": {"heads": [2, 4], "qk_dim": [8], "v_dim": [8, 12], "ffn": {"min": 32, "max": 96, "step": 32}},
            "embeddings": {"vocab_size": 97, "max_positions": 40},
        }
    )
    assert space.digest() == "6cc6fa86130bd6bdcef2529fa581a5a03dc47c3895d5190c945d55fb90a82f76"


def test_file_digests_are_pinned(tmp_path):
    directory = _directory(tmp_path)
    whole = "f7baf5514ec8912cf725f6b1e51db00c8da013012e0e8329f6e971f174003439"
    assert files_digest(directory) == whole
    assert files_digest(directory, ("b.bin",)) == "3b3e3def4df34ca171cc86ca29e1c704e6e87ea7a411b36d19ca9542b6dd7991"
    assert pipeline._files(directory, "teacher.finetuned") == whole
    assert pipeline._files(directory / "a.txt", "search.space") == (
        "b6a98d9ce9a2d9149288fa3df42d377c3e42737afdcdaf714e33c0a100b51060"
    )
    assert path_digest(directory) == whole and path_digest(directory / "a.txt") == pipeline._files(
        directory / "a.txt", "search.space"
    )


def test_data_and_weight_digests_are_pinned():
    assert examples_digest([("a good film",), ("a", "pair")], [1, 0]) == (
        "5203a591bbdc4ef2193a45ccc19ad2579fb962117a5244dd743b7e3c18e2e87d"
    )
    assert examples_digest([("x",)], None) == "e5394409c6e5d58624808aaada72f6b3b1a7ea0ffe589604ea3bde42b9dcffe8"
    linear = torch.nn.Linear(2, 3)
    with torch.no_grad():
        linear.weight.copy_(torch.arange(6.0).reshape(3, 2))
        linear.bias.copy_(torch.tensor([0.5, -1.0, 2.0]))
    assert weights_digest(linear) == "96117801a3cc9fa3b84864214b6c65278a1903b96b2b742be08b24c923cac78f"
    encoded = types.SimpleNamespace(
        input_ids=np.array([101, 7, 102, 101, 9, 9, 102]),
        token_type_ids=np.zeros(7, dtype=np.int64),
        offsets=np.array([0, 3, 7]),
    )
    assert tokens_digest(encoded) == "978b57e135bcb00234471d4d702b0378efbfd8d9d32b7abcaf8ad4503ec2f347"
