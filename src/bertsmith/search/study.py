"""The Optuna study that holds a search's trials: opened from a SQLAlchemy storage URL, tied to what it
searches, and cleaned of trials whose process was killed.

A study remembers (in its user attrs) the search space's digest, the teacher's digest, the
evaluator's fingerprint, the objectives and the budget. Reopening it for a different search (another
worker's space or teacher) is refused before anything is written, so a study never mixes scores of
different searches.

Many workers (processes, on one or many machines) may share a study in a database server. Each
records a heartbeat for its running trials every ``heartbeat`` seconds (``Heartbeat``); a RUNNING
trial whose heartbeat stopped for ``GRACE`` heartbeats (its worker was killed, or lost its machine)
is marked FAIL by whichever worker notices, and its sampler parameters are enqueued again (``retry``,
at most ``MAX_RETRIES`` times in a row), so the interrupted architecture is retried first. A
RUNNING trial of a process on this host that no longer exists is failed and retried at once, without
waiting for the grace period.

Each worker also claims its worker number (``WorkerClaim``): the study user attr ``worker:N`` holds a
random token, the host, the process and the time the claim was last renewed (every heartbeat). A
worker whose number another worker holds is refused before it writes anything; a claim lapses when it
is released at the end of a search, when its process on this host is gone, or after ``GRACE``
heartbeats without renewal (a worker on another machine that died). Two workers that start at the
same moment may both find the number free and both write a claim: the token left in the study is the
last writer's, and the other worker finds another token at its next renewal and stops before its
next trial.
"""

from __future__ import annotations

import json
import os
import re
import socket
import sqlite3
import threading
import time
import uuid
import warnings
from contextlib import closing
from pathlib import Path
from typing import Any, Sequence

import optuna
import sqlalchemy
import sqlalchemy.exc
from optuna.exceptions import DuplicatedStudyError, ExperimentalWarning, UpdateFinishedTrialError
from optuna.storages import fail_stale_trials
from optuna.trial import FrozenTrial, TrialState

from ..errors import ConfigError, differences
from ..lock import alive

# user attr → how an error names it
IDENTITY = {
    "space": "search space",
    "teacher": "teacher",
    "evaluator": "evaluator",
    "objectives": "objectives",
    "budget": "budget",
}
HOST = socket.gethostname()
HEARTBEAT = 10  # seconds between a worker's heartbeats
GRACE = 6  # heartbeats missed before a trial counts as abandoned
MAX_RETRIES = 2  # retries of a trial whose worker died (one that kills every worker is not retried forever)
CONNECT_TIMEOUT = 10  # seconds to reach a database server
CREATION_WAIT = 5  # seconds a new study's creator gets to write its identity
CREATE_ATTEMPTS = 3  # tries to open a new database whose tables workers create at once


def open_study(
    url: str,
    name: str,
    *,
    space_digest: str,
    teacher: str,
    evaluator: dict[str, Any],
    objectives: Sequence[str],
    budget: dict[str, Any],
    heartbeat: int = HEARTBEAT,
) -> optuna.Study:
    """Create the study ``name`` in ``url``, or open it when it exists and searches the same space
    (``space_digest``) from the same ``teacher`` (its files' digest) with the same ``evaluator``
    fingerprint, ``objectives`` (the maximised metric's name, then the minimised costs) and
    ``budget``. Then fail and re-enqueue the trials of dead workers."""
    identity = {
        "space": space_digest,
        "teacher": teacher,
        "evaluator": evaluator,
        "objectives": list(objectives),
        "budget": budget,
    }
    identity = json.loads(json.dumps(identity))  # as the storage gives it back
    directions = ["maximize"] + ["minimize"] * (len(objectives) - 1)
    storage = open_storage(url, heartbeat=heartbeat)
    try:
        study = optuna.create_study(storage=storage, study_name=name, directions=directions)
    except DuplicatedStudyError:
        study = optuna.load_study(storage=storage, study_name=name)
        stored, where = _identity_of(study), f"study {name!r} in {mask_password(url)}"
        for key, what in IDENTITY.items():
            if key not in stored:
                raise ConfigError(
                    f"{where} has no {what} record: it was not created by this version of "
                    "bertsmith search; give another --study-name"
                ) from None
            if stored[key] != identity[key]:
                raise ConfigError(
                    f"{where} was created with a different {what}; this worker's differs "
                    f"({differences(stored[key], identity[key])}), so it would mix scores of two "
                    "searches (give another --study-name)"
                ) from None
    else:
        for key, value in identity.items():
            study.set_user_attr(key, value)
    recover_stale_trials(study)
    return study


def _identity_of(study: optuna.Study) -> dict[str, Any]:
    """The study's user attrs once its identity is complete: a worker that created it a moment ago
    writes the identity's records one by one, so a study missing some is read again for up to
    ``CREATION_WAIT`` seconds before it counts as not made by this version of bertsmith search."""
    deadline = time.monotonic() + CREATION_WAIT
    stored = study.user_attrs
    while not IDENTITY.keys() <= stored.keys() and time.monotonic() < deadline:
        time.sleep(0.1)
        stored = study.user_attrs
    return stored


def open_storage(url: str, *, heartbeat: int = HEARTBEAT) -> optuna.storages.RDBStorage:
    """The storage behind ``url`` (a sqlite file's directory is created), with trial heartbeats every
    ``heartbeat`` seconds; ``ConfigError`` naming the URL, its password masked, when it cannot be
    opened or reached (a server gets ``CONNECT_TIMEOUT`` seconds), or is in memory (``check_storage``).

    A sqlite file runs in WAL mode with ``synchronous=NORMAL``: a trial writes one row per user attr,
    and a full sync of each (milliseconds) would cost more than a small evaluation. A killed search
    loses nothing in this mode (a power loss can lose the last commits, never the file's consistency),
    and readers do not block the search. WAL needs a local file system: put a study shared between
    machines in a database server."""
    try:
        parsed = sqlalchemy.engine.make_url(url)
        sqlite = parsed.get_backend_name() == "sqlite"
        check_storage(url)
        if sqlite:
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
            with closing(sqlite3.connect(parsed.database)) as connection:  # before optuna creates its tables
                connection.execute("PRAGMA journal_mode=WAL")
        engine = (
            {"connect_args": {"connect_timeout": CONNECT_TIMEOUT}}
            if parsed.get_backend_name() == "postgresql"
            else None
        )
        for attempt in range(CREATE_ATTEMPTS):
            try:
                with warnings.catch_warnings():  # heartbeats are experimental in Optuna, and what workers need
                    warnings.simplefilter("ignore", ExperimentalWarning)
                    storage = optuna.storages.RDBStorage(
                        url,
                        engine_kwargs=engine,
                        heartbeat_interval=heartbeat,
                        grace_period=GRACE * heartbeat,
                        heartbeat_stale_trial_callback=retry,
                    )
                break
            except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.ProgrammingError) as exc:
                # another worker created the tables at the same moment (PostgreSQL: a unique violation, or
                # DuplicateTable "relation ... already exists" for alembic's version table)
                if attempt == CREATE_ATTEMPTS - 1 or (
                    isinstance(exc, sqlalchemy.exc.ProgrammingError) and "already exists" not in str(exc)
                ):
                    raise
                time.sleep(0.5)
    except (sqlalchemy.exc.SQLAlchemyError, sqlite3.Error, ImportError, OSError) as exc:
        cause = exc.__cause__ if isinstance(exc, ImportError) and exc.__cause__ else exc  # the missing driver
        reason = (str(cause).strip().splitlines() or [type(cause).__name__])[0]
        raise ConfigError(f"cannot open the study storage {mask_password(url)}: {mask_password(reason, url)}") from None
    if sqlite:
        sqlalchemy.event.listen(storage.engine, "connect", _sqlite_sync)
        storage.engine.dispose()  # connections made from now on sync less
    return storage


def check_storage(url: str) -> None:
    """Refuse an in-memory SQLite URL: every connection would see its own empty database, so workers
    could not share the study and a rerun could not resume it."""
    try:
        parsed = sqlalchemy.engine.make_url(url)
    except sqlalchemy.exc.ArgumentError:
        return  # open_storage names the malformed URL
    if parsed.get_backend_name() == "sqlite" and parsed.database in (None, "", ":memory:"):
        raise ConfigError(
            f"--storage {url}: an in-memory database cannot be shared by workers or resumed; use "
            "a file such as sqlite:///study.db, or omit --storage"
        )


def _sqlite_sync(connection: Any, _record: Any) -> None:
    connection.execute("PRAGMA synchronous=NORMAL")


def mask_password(text: str, url: str | None = None) -> str:
    """``text`` with the password of ``url`` (default: ``text`` itself is the URL) replaced by ``***``."""
    match = re.search(r"://[^:/@]*:([^@]*)@", url or text)
    return text.replace(match[1], "***") if match and match[1] else text


def recover_stale_trials(study: optuna.Study) -> list[int]:
    """Fail the RUNNING trials of dead workers and enqueue their retries: at once for a process on
    this host that is gone, after the grace period for a heartbeat that stopped. Returns the numbers
    of the trials that were running and are failed now."""
    storage = study._storage  # Optuna's own fail_stale_trials reads it the same way
    running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    for trial in running:
        host, pid = trial.user_attrs.get("host"), trial.user_attrs.get("pid")
        if host != HOST or pid is None or alive(pid):
            continue
        try:
            storage.set_trial_user_attr(trial._trial_id, "error", f"interrupted: process {pid} on {host} ended")
            storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
        except UpdateFinishedTrialError:  # another process recovered it first
            continue
        retry(study, storage.get_trial(trial._trial_id))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)
        fail_stale_trials(study)
    return [t.number for t in running if storage.get_trial(t._trial_id).state == TrialState.FAIL]


def retry(study: optuna.Study, trial: FrozenTrial) -> None:
    """Enqueue the sampler parameters of ``trial``, whose worker died, as a new trial that names it
    (``retry_of``). A trial without parameters (a strategy's own proposal) is proposed again by its
    strategy instead; a trial already retried ``MAX_RETRIES`` times in a row is not."""
    retries = trial.user_attrs.get("retries", 0)
    if trial.params and retries < MAX_RETRIES:
        study.enqueue_trial(trial.params, user_attrs={"retry_of": trial.number, "retries": retries + 1})


class WorkerClaim:
    """This process's claim on worker number ``worker`` of ``study`` (see the module's docstring):
    ``ConfigError`` when another live worker holds it. ``renew`` (every heartbeat) keeps it live, or
    finds it taken by a worker that started at the same moment: then ``check`` raises."""

    def __init__(self, study: optuna.Study, worker: int, interval: float):
        self.study, self.worker, self.interval = study, worker, interval
        self.key, self.token, self.lost = f"worker:{worker}", uuid.uuid4().hex, None
        held = study.user_attrs.get(self.key)
        if held is not None and _live(held):
            raise ConfigError(self._taken(held, "is already running this study"))
        self._write(released=False)

    def renew(self) -> None:
        """Renew the claim, unless another worker holds it now."""
        held = self.study.user_attrs.get(self.key)
        if held is not None and held.get("token") != self.token:
            self.lost = self._taken(held, "also started on this study")
        else:
            self._write(released=False)

    def check(self) -> None:
        """Raise ``ConfigError`` once another worker took this worker number."""
        if self.lost is not None:
            raise ConfigError(self.lost)

    def release(self) -> None:
        """Give the number up (at the end of a search), unless another worker holds it now."""
        if self.study.user_attrs.get(self.key, {}).get("token") == self.token:
            self._write(released=True)

    def _write(self, *, released: bool) -> None:
        self.study.set_user_attr(
            self.key,
            {
                "token": self.token,
                "host": HOST,
                "pid": os.getpid(),
                "seen": time.time(),
                "heartbeat": self.interval,
                "released": released,
            },
        )

    def _taken(self, held: dict[str, Any], what: str) -> str:
        ago = max(0.0, time.time() - held.get("seen", 0))
        return (
            f"worker {self.worker} {what} (process {held.get('pid')} on {held.get('host')}, seen {ago:.0f} s "
            f"ago): give each worker its own --worker; a worker that died frees its number after "
            f"{GRACE * held.get('heartbeat', HEARTBEAT):g} s"
        )


def _live(claim: dict[str, Any]) -> bool:
    """A claim not released, renewed within ``GRACE`` of its heartbeats, whose process on this host exists."""
    if claim.get("released") or time.time() - claim.get("seen", 0) > GRACE * claim.get("heartbeat", HEARTBEAT):
        return False
    return claim.get("host") != HOST or alive(claim.get("pid", 0))


class Heartbeat:
    """Records a heartbeat, every ``interval`` seconds from a thread, for each trial this process is
    running, so that other workers can tell a live trial from an abandoned one; renews ``claim``, if
    any, at the same pace, and releases it on ``close``."""

    def __init__(self, study: optuna.Study, interval: float, claim: WorkerClaim | None = None):
        self.storage, self.interval, self.claim = study._storage, interval, claim
        self._trials: set[int] = set()
        self._guard = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="bertsmith-heartbeat")
        self._thread.start()

    def start(self, trial_id: int) -> None:
        """Beat for ``trial_id`` from now on (the first beat at once: a trial without one is never failed)."""
        self.storage.record_heartbeat(trial_id)
        with self._guard:
            self._trials.add(trial_id)

    def stop(self, trial_id: int) -> None:
        with self._guard:
            self._trials.discard(trial_id)

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        if self.claim is not None:
            try:
                self.claim.release()
            except sqlalchemy.exc.SQLAlchemyError:  # a lost connection: the claim lapses after GRACE heartbeats
                pass

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            with self._guard:
                trials = sorted(self._trials)
            try:
                for trial_id in trials:
                    self.storage.record_heartbeat(trial_id)
                if self.claim is not None:
                    self.claim.renew()
            except sqlalchemy.exc.SQLAlchemyError:  # a lost connection: the next beat tries again
                pass
