"""Tokenizing a split once, caching it on disk, and batching it with dynamic padding.

``encode_split`` stores the token ids of all examples in one flat int32 array with offsets, as an
``.npz`` file (no pickle) named by a key that hashes the split's rows, the tokenizer's files and
``max_length``: a second call with the same inputs loads the file instead of tokenizing. Files are
written to a temporary name and renamed, so a cache file is never half written.
``length_grouped_batches`` puts examples of similar length together so that padding costs little.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ..errors import ConfigError
from ..files import publish
from .split import Split

if TYPE_CHECKING:
    from .tasks import Task

CACHE_VERSION = "bertsmith-tokens-1"
TOKENIZER_FILES = (
    "tokenizer.json",
    "vocab.txt",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
)
CHUNK = 10_000  # examples per tokenizer call: bounds the memory of the tokenizer's Python lists
MEGA_BATCHES = 50  # batches per length-sorted chunk in length_grouped_batches
PAD_LOGIT = -1e4  # token-level logits beyond a sequence's end (masked out of any argmax or softmax)


@dataclass(frozen=True)
class Encoded:
    """A tokenized split: sequence i is ``input_ids[offsets[i]:offsets[i + 1]]`` (and the same for
    ``token_type_ids``); ``labels`` are int64 classes, float32 values, one row per sequence of another
    type's labels (QA: start and end token), or None. A sequence is one example, except for a type
    whose ``encode`` splits an example into several. ``extra``: further arrays of such an ``encode``;
    ``examples``: the split it was made from, when its type's ``evaluate`` needs the raw examples."""

    input_ids: np.ndarray
    token_type_ids: np.ndarray
    offsets: np.ndarray
    labels: np.ndarray | None
    key: str
    extra: dict[str, np.ndarray] = field(default_factory=dict)
    examples: Split | None = None

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """Example ``i``: its token ids and token type ids."""
        start, end = self.offsets[i], self.offsets[i + 1]
        return self.input_ids[start:end], self.token_type_ids[start:end]

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    @property
    def gold(self) -> np.ndarray | list | None:
        """The split's gold labels per example (a QA question's answers, not its windows' token positions)."""
        return self.examples.labels if self.examples is not None else self.labels


def cache_root() -> Path:
    """bertsmith's cache (tokenized data, task teachers): ``$BERTSMITH_CACHE``, by default
    ``~/.cache/bertsmith``."""
    return Path(os.environ.get("BERTSMITH_CACHE") or Path.home() / ".cache" / "bertsmith")


def default_cache_dir() -> Path:
    """``$BERTSMITH_CACHE/tokens``, by default ``~/.cache/bertsmith/tokens``."""
    return cache_root() / "tokens"


def tokenizer_fingerprint(tokenizer: Any) -> str:
    """A hash of the tokenizer's class and of its files in ``name_or_path``; a tokenizer without local
    files (loaded from the hub cache) is hashed by its name and vocabulary instead."""
    digest = hashlib.sha256(type(tokenizer).__name__.encode())
    names = dict.fromkeys((*TOKENIZER_FILES, *getattr(tokenizer, "vocab_files_names", {}).values()))
    folder = Path(tokenizer.name_or_path)
    files = [folder / name for name in names if tokenizer.name_or_path and (folder / name).is_file()]
    for path in files:
        digest.update(f"\n{path.name}\n".encode() + path.read_bytes())
    if not files:
        vocab = sorted(tokenizer.get_vocab().items())
        digest.update(f"\n{tokenizer.name_or_path}\n{vocab}\n{tokenizer.all_special_tokens}".encode())
    return digest.hexdigest()


def encode_split(
    split: Split,
    tokenizer: Any,
    *,
    max_length: int,
    cache_dir: str | os.PathLike | None = None,
    task: Task | None = None,
) -> Encoded:
    """Tokenize a split (pairs as pairs, truncated to ``max_length``, unpadded, or as ``task``'s type
    encodes it), cached in ``cache_dir``."""
    if max_length < 2:
        raise ConfigError(f"max_length = {max_length}: must be at least 2")
    own = task.task_type.encode_key(task) if task is not None else ""
    key = hashlib.sha256(
        f"{CACHE_VERSION}\n{split.sha256}\n{tokenizer_fingerprint(tokenizer)}\n{max_length}{own}".encode()
    ).hexdigest()
    path = Path(cache_dir or default_cache_dir()) / f"{key}.npz"
    if path.is_file():
        with np.load(path, allow_pickle=False) as stored:
            arrays = {name: stored[name] for name in stored.files}
    else:
        arrays = task.task_type.encode(task, split, tokenizer, max_length) if task is not None else None
        if arrays is None:
            arrays = _tokenize(split, tokenizer, max_length)
        _save(path, arrays)
    labels = arrays.pop("labels", None)
    plain = {name: arrays.pop(name) for name in ("input_ids", "token_type_ids", "offsets")}
    return Encoded(**plain, labels=labels, key=key, extra=arrays, examples=split)


def _tokenize(split: Split, tokenizer: Any, max_length: int) -> dict[str, np.ndarray]:
    ids, types, lengths = [], [], []
    for start in range(0, len(split), CHUNK):
        columns = [list(column) for column in zip(*split.texts[start : start + CHUNK])]
        out = tokenizer(
            *columns,
            truncation=True,
            max_length=max_length,
            padding=False,
            return_token_type_ids=True,
            return_attention_mask=False,
        )
        ids.append(np.concatenate(out["input_ids"]).astype(np.int32))
        types.append(np.concatenate(out["token_type_ids"]).astype(np.int32))
        lengths += [len(seq) for seq in out["input_ids"]]
    arrays = {
        "input_ids": np.concatenate(ids),
        "token_type_ids": np.concatenate(types),
        "offsets": np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
    }
    if split.labels is not None:
        is_float = isinstance(split.labels[0], float)
        arrays["labels"] = np.asarray(split.labels, dtype=np.float32 if is_float else np.int64)
    return arrays


def _save(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write an .npz through a temporary file in the same directory and rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
        publish(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def collate(encoded: Encoded, indices: list[int] | np.ndarray, pad_id: int) -> dict[str, torch.Tensor]:
    """A batch of the given examples, padded to the longest of them."""
    indices = np.asarray(indices)
    lengths = encoded.offsets[indices + 1] - encoded.offsets[indices]
    input_ids = np.full((len(indices), int(lengths.max())), pad_id, dtype=np.int64)
    token_type_ids = np.zeros_like(input_ids)
    attention_mask = np.zeros_like(input_ids)
    for row, i in enumerate(indices):
        ids, types = encoded[i]
        input_ids[row, : len(ids)] = ids
        token_type_ids[row, : len(ids)] = types
        attention_mask[row, : len(ids)] = 1
    batch = {
        "input_ids": torch.from_numpy(input_ids),
        "attention_mask": torch.from_numpy(attention_mask),
        "token_type_ids": torch.from_numpy(token_type_ids),
    }
    if encoded.labels is not None:
        batch["labels"] = torch.from_numpy(encoded.labels[indices])  # int64 classes or float32 values
    return batch


def length_grouped_batches(
    lengths: np.ndarray, batch_size: int, *, seed: int, epoch: int, shuffle: bool = True, drop_last: bool = False
) -> list[list[int]]:
    """Batches of example indices, each of similar lengths.

    With ``shuffle`` (training): a permutation seeded by (seed, epoch), cut into chunks of
    ``MEGA_BATCHES`` batches, each chunk sorted by length (longest first) and cut into batches, then
    the batch order shuffled. Without (evaluation): all examples sorted by length, longest first.
    ``drop_last`` drops a final batch smaller than ``batch_size``.
    """
    if batch_size < 1:
        raise ConfigError(f"batch_size = {batch_size}: must be at least 1")
    lengths = np.asarray(lengths)
    rng = np.random.default_rng([seed, epoch])
    if shuffle:
        order = rng.permutation(len(lengths))
        chunk = MEGA_BATCHES * batch_size
        parts = [order[i : i + chunk] for i in range(0, len(order), chunk)]
        sorted_parts = [part[np.argsort(-lengths[part], kind="stable")] for part in parts]
        order = np.concatenate(sorted_parts or [order])  # no parts when there are no examples
    else:
        order = np.argsort(-lengths, kind="stable")
    batches = [order[i : i + batch_size].tolist() for i in range(0, len(order), batch_size)]
    if drop_last and batches and len(batches[-1]) < batch_size:
        batches.pop()
    if shuffle:
        batches = [batches[i] for i in rng.permutation(len(batches))]
    return batches
