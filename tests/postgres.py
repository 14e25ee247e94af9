"""A throwaway PostgreSQL server on 127.0.0.1 for tests and benchmarks.

PostgreSQL refuses to run as root, so when the tests run as root the server runs as the ``postgres``
system user (``runuser``) and its files belong to that user.
"""

from __future__ import annotations

import glob
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import psycopg2
from psycopg2 import sql

SUPERUSER = "bertsmith"
SYSTEM_USER = "postgres"  # runs the server when we are root; created by Debian's postgresql package
NOT_INSTALLED = (
    "PostgreSQL's server is not installed (Debian: apt-get install postgresql); the distributed-search tests need it"
)


@dataclass
class Server:
    """A running server: superuser ``user`` with ``password``, listening on 127.0.0.1:``port``."""

    port: int
    user: str
    password: str

    def url(self, database: str = "bertsmith", *, password: str | None = None, port: int | None = None) -> str:
        """SQLAlchemy URL of ``database``; ``password`` and ``port`` override the real ones (to test failures)."""
        secret = quote(self.password if password is None else password, safe="")
        return f"postgresql+psycopg2://{self.user}:{secret}@127.0.0.1:{port or self.port}/{database}"

    def create_database(self, name: str) -> None:
        """Create database ``name`` (CREATE DATABASE cannot run in a transaction, hence autocommit)."""
        conn = psycopg2.connect(
            host="127.0.0.1", port=self.port, user=self.user, password=self.password, dbname="postgres"
        )
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        finally:
            conn.close()


def server_bin() -> Path:
    """Directory of initdb/pg_ctl: the one on PATH, else the newest /usr/lib/postgresql/*/bin."""
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent  # /usr/local/bin/initdb links into the versioned directory
    versions = [Path(p) for p in glob.glob("/usr/lib/postgresql/*/bin") if (Path(p) / "initdb").exists()]
    if not versions:
        raise RuntimeError(NOT_INSTALLED)
    return max(versions, key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else -1)


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (another process could take it before the server does)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def as_server_user(argv: list[str]) -> list[str]:
    """``argv`` run as the postgres system user when we are root, else as is."""
    return ["runuser", "-u", SYSTEM_USER, "--", *argv] if os.geteuid() == 0 else argv


def give_to_server_user(path: Path) -> None:
    """Let the server user own ``path`` (only needed, and only possible, as root)."""
    if os.geteuid() == 0:
        shutil.chown(path, SYSTEM_USER, SYSTEM_USER)


def server_workdir(directory: Path) -> tuple[Path, bool]:
    """A directory the server user can write: ``directory/postgres``, or as root, when the server user cannot
    reach it (pytest's /tmp/pytest-of-root is mode 0700), a fresh ``tempfile.mkdtemp()`` under /tmp.
    Returns it and whether it is such a temporary one (to remove afterwards)."""
    workdir = directory / "postgres"
    workdir.mkdir(parents=True)
    give_to_server_user(workdir)
    if subprocess.run(as_server_user(["test", "-w", str(workdir)]), check=False).returncode == 0:
        return workdir, False
    workdir.rmdir()
    workdir = Path(tempfile.mkdtemp(prefix="bertsmith-postgres-", dir="/tmp"))
    give_to_server_user(workdir)
    return workdir, True


@contextmanager
def postgres_server(directory: Path) -> Iterator[Server]:
    """Run a fresh server while the context is open and yield it, with database ``bertsmith`` created.

    The cluster lives in ``directory/postgres`` (data directory and unix socket), or, as root when the
    postgres user cannot reach ``directory``, in a temporary directory under /tmp that is removed afterwards.
    The server log goes to ``directory/server.log``; its tail is in the error when the server does not start.
    Only 127.0.0.1 is listened on, with scram-sha-256 password authentication, and fsync is off: the data
    is disposable. The server is stopped (immediate mode) on exit, error or not.
    """
    bin_dir = server_bin()
    directory.mkdir(parents=True, exist_ok=True)
    workdir, temporary = server_workdir(directory)
    data, log_path = workdir / "data", directory / "server.log"
    server = Server(port=free_port(), user=SUPERUSER, password=secrets.token_urlsafe(16))

    def pg(program: str, *args: str, **kwargs) -> subprocess.CompletedProcess:
        # cwd=workdir: the server user may not be able to enter our current directory.
        return subprocess.run(as_server_user([str(bin_dir / program), *args]), check=False, cwd=workdir, **kwargs)

    started = False
    try:
        pwfile = workdir / "password"
        pwfile.write_text(server.password)
        give_to_server_user(pwfile)
        init = pg(
            "initdb",
            "-D",
            str(data),
            "-U",
            SUPERUSER,
            f"--pwfile={pwfile}",
            "--auth=scram-sha-256",
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",
            capture_output=True,
            text=True,
        )
        pwfile.unlink()
        if init.returncode != 0:
            raise RuntimeError(f"initdb failed:\n{init.stdout}{init.stderr}")
        with open(data / "postgresql.conf", "a") as conf:
            conf.write(
                f"\nport = {server.port}\nlisten_addresses = '127.0.0.1'\n"
                f"unix_socket_directories = '{workdir}'\nfsync = off\n"
            )
        # The log file is opened here, not by pg_ctl -l, so it can live where the server user cannot write.
        with open(log_path, "ab") as log:
            started = pg("pg_ctl", "-D", str(data), "-w", "-t", "60", "start", stdout=log, stderr=log).returncode == 0
        if not started:
            tail = "".join(log_path.read_text(errors="replace").splitlines(keepends=True)[-30:])
            raise RuntimeError(f"PostgreSQL did not start on port {server.port}; end of {log_path}:\n{tail}")
        server.create_database("bertsmith")
        yield server
    finally:
        if started or (data / "postmaster.pid").exists():
            pg("pg_ctl", "-D", str(data), "-w", "stop", "-m", "immediate", capture_output=True)
        if temporary:
            shutil.rmtree(workdir, ignore_errors=True)
