"""The Optuna study that holds a search's trials: opened from a SQLAlchemy storage URL, tied to what it
searches, and cleaned of trials whose process was killed.

A study remembers (in its user attrs) the search space's digest, the evaluator's fingerprint, the
objectives and the budget. Reopening it for a different search is refused before anything is written,
so a resumed search never mixes scores of different searches. A trial records the host and process
that runs it; a RUNNING trial of a process on this host that no longer exists was interrupted (killed,
or stopped by Ctrl-C): it is marked FAIL and its sampler parameters are enqueued again, so the
interrupted architecture is retried first.
"""

from __future__ import annotations

import json
import os
import re
import socket
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any, Sequence

import optuna
import sqlalchemy
import sqlalchemy.exc
from optuna.exceptions import DuplicatedStudyError, UpdateFinishedTrialError
from optuna.trial import TrialState

from ..errors import ConfigError

# user attr → how an error names it
IDENTITY = {"space": "search space", "evaluator": "evaluator", "objectives": "objectives", "budget": "budget"}
HOST = socket.gethostname()


def open_study(url: str, name: str, *, space_digest: str, evaluator: dict[str, Any], objectives: Sequence[str],
               budget: dict[str, Any]) -> optuna.Study:
    """Create the study ``name`` in ``url``, or open it when it exists and searches the same space
    (``space_digest``) with the same ``evaluator`` fingerprint, ``objectives`` (the maximised metric's
    name, then the minimised costs) and ``budget``. Then fail and re-enqueue the trials of dead
    processes on this host."""
    identity = {"space": space_digest, "evaluator": evaluator, "objectives": list(objectives), "budget": budget}
    identity = json.loads(json.dumps(identity))  # as the storage gives it back
    directions = ["maximize"] + ["minimize"] * (len(objectives) - 1)
    storage = open_storage(url)
    try:
        study = optuna.create_study(storage=storage, study_name=name, directions=directions)
    except DuplicatedStudyError:
        study = optuna.load_study(storage=storage, study_name=name)
        stored, where = study.user_attrs, f"study {name!r} in {mask_password(url)}"
        for key, what in IDENTITY.items():
            if key not in stored:
                raise ConfigError(f"{where} was not created by a bertsmith search") from None
            if stored[key] != identity[key]:
                raise ConfigError(f"{where} was created with a different {what}") from None
    else:
        for key, value in identity.items():
            study.set_user_attr(key, value)
    recover_stale_trials(study, storage)
    return study


def open_storage(url: str) -> optuna.storages.RDBStorage:
    """The storage behind ``url`` (a sqlite file's directory is created); ``ConfigError`` naming the
    URL, its password masked, when it cannot be opened or reached.

    A sqlite file runs in WAL mode with ``synchronous=NORMAL``: a trial writes one row per user attr,
    and a full sync of each (milliseconds) would cost more than a small evaluation. A killed search
    loses nothing in this mode (a power loss can lose the last commits, never the file's consistency),
    and readers do not block the search. WAL needs a local file system: put a study shared between
    machines in a database server."""
    try:
        parsed = sqlalchemy.engine.make_url(url)
        sqlite = parsed.get_backend_name() == "sqlite"
        if sqlite and parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
            with closing(sqlite3.connect(parsed.database)) as connection:  # before optuna creates its tables
                connection.execute("PRAGMA journal_mode=WAL")
        storage = optuna.storages.RDBStorage(url)
    except (sqlalchemy.exc.SQLAlchemyError, sqlite3.Error, ImportError, OSError) as exc:
        cause = exc.__cause__ if isinstance(exc, ImportError) and exc.__cause__ else exc  # the missing driver
        reason = (str(cause).strip().splitlines() or [type(cause).__name__])[0]
        raise ConfigError(f"cannot open the study storage {mask_password(url)}: {mask_password(reason, url)}") from None
    if sqlite:
        sqlalchemy.event.listen(storage.engine, "connect", _sqlite_sync)
        storage.engine.dispose()  # connections made from now on sync less
    return storage


def _sqlite_sync(connection: Any, _record: Any) -> None:
    connection.execute("PRAGMA synchronous=NORMAL")


def mask_password(text: str, url: str | None = None) -> str:
    """``text`` with the password of ``url`` (default: ``text`` itself is the URL) replaced by ``***``."""
    match = re.search(r"://[^:/@]*:([^@]*)@", url or text)
    return text.replace(match[1], "***") if match and match[1] else text


def recover_stale_trials(study: optuna.Study, storage: optuna.storages.BaseStorage) -> list[int]:
    """Mark FAIL the RUNNING trials whose process on this host is gone, and enqueue their sampler
    parameters again; returns their numbers. Trials of live processes or other hosts are left alone."""
    study_id = storage.get_study_id_from_name(study.study_name)
    recovered = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        host, pid = trial.user_attrs.get("host"), trial.user_attrs.get("pid")
        if host != HOST or pid is None or _alive(pid):
            continue
        trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, trial.number)
        try:
            storage.set_trial_user_attr(trial_id, "error", f"interrupted: process {pid} on {host} ended")
            storage.set_trial_state_values(trial_id, TrialState.FAIL)
        except UpdateFinishedTrialError:  # another process recovered it first
            continue
        if trial.params:
            study.enqueue_trial(trial.params)
        recovered.append(trial.number)
    return recovered


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True
