"""Typed errors of bertsmith. The CLI prints their message on one line and exits with code 2 (3 for a
model that fails the quality gate)."""

import os


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
