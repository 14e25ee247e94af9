"""Typed errors of bertsmith. The CLI prints their message on one line and exits with code 2."""


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
