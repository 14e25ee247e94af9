"""The throwaway PostgreSQL server of tests/postgres.py: it starts, authenticates, creates databases, stops."""

from __future__ import annotations

import pytest
import sqlalchemy
from sqlalchemy.exc import OperationalError

from tests.postgres import postgres_server


def select_one(url: str) -> int:
    engine = sqlalchemy.create_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(sqlalchemy.text("select 1")).scalar_one()
    finally:
        engine.dispose()


def test_server_runs_then_stops(tmp_path):
    with postgres_server(tmp_path) as server:
        assert select_one(server.url()) == 1
    assert (tmp_path / "server.log").exists()
    with pytest.raises(OperationalError, match="refused"):
        select_one(server.url())


def test_wrong_password_is_refused(tmp_path):
    with postgres_server(tmp_path) as server, pytest.raises(OperationalError, match="password authentication failed"):
        select_one(server.url(password="not-" + server.password))


def test_create_database(tmp_path):
    with postgres_server(tmp_path) as server:
        server.create_database("other")
        assert select_one(server.url("other")) == 1
