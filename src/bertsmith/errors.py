"""Typed errors of bertsmith. The CLI prints their message on one line and exits with code 2 (3 for a
model that fails the quality gate)."""

import json
import os
from typing import Any


class BertsmithError(Exception):
    """Base class: an error caused by the user's input, not by a bug."""


class SpecError(BertsmithError, ValueError):
    """An ArchSpec (or a spec file) that is invalid: names the field and the value."""


class CheckpointError(BertsmithError):
    """A checkpoint directory or file that is missing, corrupt or does not fit its spec."""


class ConfigError(BertsmithError, ValueError):
    """A command-line option or configuration value that is invalid."""


class DataError(BertsmithError, ValueError):
    """Task data that is missing or malformed: names the file, line and column."""


class OutputError(BertsmithError, OSError):
    """An output path that cannot be written: under a regular file, without write permission, on a
    full disk or a read-only file system. Its message names the path and the OS error; as an OSError
    it keeps ``errno``, ``strerror`` and ``filename`` for code that handles those."""

    def __init__(self, message: str, code: int, path: str):
        super().__init__(code, os.strerror(code), path)
        self.message = message

    def __str__(self) -> str:
        return self.message


class CacheError(BertsmithError):
    """A cache directory that cannot be created or written (full, read-only) or holds another run's data."""


EXIT_WEAK = 3  # the exit code of a run whose model fails the quality gate (input errors exit 2)


class WeakModelError(BertsmithError):
    """A model that fails the quality gate (e.g. a teacher no better than a constant predictor);
    the CLI exits with code 3."""


def differences(before: Any, after: Any, *, limit: int = 3, width: int = 32) -> str:
    """What differs between two JSON-like settings, for a one-line error: the dotted keys whose values
    differ with ``old -> new`` (``(none)`` for a key on one side only), the first ``limit`` in key order,
    each value cut to ``width`` characters (two values that are not mappings: just ``old -> new``); e.g. ``train.lr: 5e-05 -> 0.001, seed: 0 -> 1 (and 2 more)``."""
    changed = _differing(before, after, "")
    shown = ", ".join(
        f"{key + ': ' if key else ''}{_short(old, width)} -> {_short(new, width)}" for key, old, new in changed[:limit]
    )
    return shown + (f" (and {len(changed) - limit} more)" if len(changed) > limit else "")


_MISSING = object()


def _differing(before: Any, after: Any, prefix: str) -> list[tuple[str, Any, Any]]:
    if isinstance(before, dict) and isinstance(after, dict):
        found = []
        for key in sorted(set(before) | set(after), key=str):
            found += _differing(before.get(key, _MISSING), after.get(key, _MISSING), f"{prefix}{key}.")
        return found
    return [] if before == after else [(prefix.rstrip("."), before, after)]


def _short(value: Any, width: int) -> str:
    text = "(none)" if value is _MISSING else json.dumps(value, default=str, ensure_ascii=False)
    return text if len(text) <= width else text[: width - 1] + "…"
