"""The database check against real PostgreSQL and MariaDB servers on loopback."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from checks.database import DatabaseCheck
from tests.servers.mariadb import MariaDBServer
from tests.servers.postgres import PostgresServer

PASSWORD_ENV = "HA_TEST_DB_PASSWORD"


@dataclass
class Database:
    driver: str
    server: PostgresServer | MariaDBServer

    def check(self, **settings: Any) -> DatabaseCheck:
        config = {
            "kind": "database",
            "driver": self.driver,
            "port": self.server.port,
            "user": self.server.user,
            "database": self.server.database,
            "password_env": PASSWORD_ENV,
            **settings,
        }
        return DatabaseCheck(DatabaseCheck.Config.model_validate(config), self.server.host)


@pytest.fixture(params=["postgresql", "mysql"])
def db(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Database:
    server = request.getfixturevalue("postgres" if request.param == "postgresql" else "mariadb")
    monkeypatch.setenv(PASSWORD_ENV, server.password)
    return Database(request.param, server)


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections (the kernel does) but never answers."""
    with socket.create_server(("127.0.0.1", 0)) as sock:
        port: int = sock.getsockname()[1]
        yield port


async def test_up(db: Database) -> None:
    result = await db.check().probe()

    assert (result.ok, result.detail.split(" in ")[0]) == (True, "answered '1'")
    assert result.detail.endswith("ms")
    assert result.latency > 0


async def test_expected_answer(db: Database) -> None:
    result = await db.check(query="select 40 + 2", expect="42").probe()

    assert (result.ok, result.detail.split(" in ")[0]) == (True, "answered '42'")


async def test_wrong_answer(db: Database) -> None:
    result = await db.check(expect="2").probe()

    assert (result.ok, result.detail) == (False, "expected '2', got '1'")


async def test_no_rows_when_an_answer_is_expected(db: Database) -> None:
    query = "select 1 from (select 1) as t where 1 = 0"

    result = await db.check(query=query, expect="1").probe()

    assert (result.ok, result.detail) == (False, "expected '1', got no rows")


async def test_wrong_password(db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PASSWORD_ENV, "not-the-password")

    result = await db.check().probe()

    assert (result.ok, result.detail) == (False, "authentication failed for user 'ha'")


async def test_query_error(db: Database) -> None:
    result = await db.check(query="select * from nope").probe()

    expected = {
        "postgresql": 'relation "nope" does not exist',
        "mysql": "Table 'ha.nope' doesn't exist",
    }
    assert (result.ok, result.detail) == (False, expected[db.driver])


async def test_secret_echoed_by_the_server_is_scrubbed(db: Database) -> None:
    quote = '"' if db.driver == "postgresql" else "`"
    query = f"select * from {quote}{db.server.password}{quote}"

    result = await db.check(query=query).probe()

    assert result.ok is False
    assert "********" in result.detail
    assert db.server.password not in result.detail


async def test_password_file_relative_to_base_dir(db: Database, tmp_path: Path) -> None:
    (tmp_path / "db.secret").write_text(db.server.password + "\n")
    config = DatabaseCheck.Config.model_validate(
        {
            "kind": "database",
            "driver": db.driver,
            "port": db.server.port,
            "user": db.server.user,
            "password_file": "db.secret",
        },
        context={"base_dir": tmp_path},
    )

    result = await DatabaseCheck(config, db.server.host).probe()

    assert (result.ok, result.detail.split(" in ")[0]) == (True, "answered '1'")
    assert db.server.password not in repr(config)


async def test_server_down_is_refused(db: Database) -> None:
    with db.server.stopped():
        result = await db.check().probe()

    assert (result.ok, result.detail) == (False, f"port {db.server.port}: connection refused")


async def test_server_that_never_answers_times_out(db: Database, silent_port: int) -> None:
    result = await db.check(port=silent_port, timeout="300ms").probe()

    assert (result.ok, result.detail) == (False, "timed out after 0.3s")


def test_default_port_by_driver() -> None:
    ports = {}
    for driver in ("postgresql", "mysql"):
        config = {"kind": "database", "driver": driver, "user": "ha"}
        ports[driver] = DatabaseCheck(DatabaseCheck.Config.model_validate(config), "::1").port

    assert ports == {"postgresql": 5432, "mysql": 3306}


def validation_errors(**settings: Any) -> list[tuple[tuple[str | int, ...], str]]:
    config = {"kind": "database", "driver": "postgresql", "user": "ha", **settings}
    with pytest.raises(ValidationError) as caught:
        DatabaseCheck.Config.model_validate(config)
    return [(error["loc"], error["msg"]) for error in caught.value.errors()]


def test_port_out_of_range() -> None:
    assert validation_errors(port=70000) == [
        (("port",), "Input should be less than or equal to 65535")
    ]


def test_unknown_driver() -> None:
    assert validation_errors(driver="oracle") == [
        (("driver",), "Input should be 'postgresql' or 'mysql'")
    ]


def test_unset_password_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HA_TEST_UNSET", raising=False)

    assert validation_errors(password_env="HA_TEST_UNSET") == [
        (("password_env",), "Value error, environment variable HA_TEST_UNSET is not set")
    ]


def test_missing_password_file(tmp_path: Path) -> None:
    missing = tmp_path / "missing.secret"

    assert validation_errors(password_file=str(missing)) == [
        (("password_file",), f"Value error, cannot read {missing}: No such file or directory")
    ]


def test_both_password_sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PASSWORD_ENV, "x")
    secret = tmp_path / "db.secret"
    secret.write_text("x")

    assert validation_errors(password_env=PASSWORD_ENV, password_file=str(secret)) == [
        ((), "Value error, give password_env or password_file, not both")
    ]
