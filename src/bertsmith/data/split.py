"""A task's split as read from its files: texts and labels, with the digest that keys what is made of it.

A module of its own, importing nothing else of bertsmith, so that readers (``sources``) and task types
that read their own files (``tasktypes``) both build splits without importing each other.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass


@dataclass(frozen=True)
class Split:
    """One split of a task: texts (one or two per example) and labels as its task type reads them
    (class indices, regression values, a QA type's answers)."""

    texts: list[tuple[str, ...]]
    labels: list | None
    source: str
    sha256: str

    def __len__(self) -> int:
        return len(self.texts)


def split_digest(texts: list[tuple[str, ...]], labels: list | None) -> str:
    """sha256 of the canonical rows (texts and labels), whatever the file's encoding or column order."""
    digest = hashlib.sha256()
    for i, example in enumerate(texts):
        digest.update(json.dumps([example, None if labels is None else labels[i]]).encode() + b"\n")
    return digest.hexdigest()
