"""Database check: log in to PostgreSQL (asyncpg) or MySQL/MariaDB (aiomysql), run one query, and
optionally compare the first column of the first row with the expected answer.

Each probe opens a new connection and always closes it. The password is only ever given by
reference (``password_env`` or ``password_file``): the reference is checked when the config is
loaded, the secret is read on each probe, held as a ``SecretStr`` and scrubbed from every detail.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Annotated, ClassVar, Literal, Self

from pydantic import AfterValidator, Field, SecretStr, ValidationInfo, model_validator

from checks.base import Check, CheckConfig, CheckFailed, describe_error
from checks.tcp import socket_error_detail

DEFAULT_PORTS = {"postgresql": 5432, "mysql": 3306}
MYSQL_LOGIN_DENIED = frozenset({1045, 1698})  # wrong user or password; refused by the auth plugin
NO_ROWS = "no rows"


def _env_is_set(name: str) -> str:
    if name not in os.environ:
        raise ValueError(f"environment variable {name} is not set")
    return name


def _readable_file(path: Path, info: ValidationInfo) -> Path:
    base_dir = (info.context or {}).get("base_dir")
    if base_dir is not None and not path.is_absolute():
        path = Path(base_dir) / path
    try:
        with path.open("rb"):
            pass
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror}") from None
    return path


EnvVarName = Annotated[str, Field(min_length=1), AfterValidator(_env_is_set)]
"""The name of an environment variable that must be set when the config is loaded."""

SecretFilePath = Annotated[Path, AfterValidator(_readable_file)]
"""A readable file; relative to the validation context's ``base_dir`` when there is one."""


def read_secret(password_env: str | None, password_file: Path | None) -> SecretStr | None:
    """The secret behind a reference, read now (a trailing newline in the file is dropped)."""
    if password_env is not None:
        value = os.environ.get(password_env)
        if value is None:
            raise CheckFailed(f"environment variable {password_env} is not set")
        return SecretStr(value)
    if password_file is not None:
        try:
            return SecretStr(password_file.read_text().rstrip("\r\n"))
        except OSError as exc:
            raise CheckFailed(f"cannot read {password_file}: {exc.strerror}") from None
    return None


class DatabaseConfig(CheckConfig):
    kind: Literal["database"]
    driver: Literal["postgresql", "mysql"] = Field(description="mysql also serves MariaDB")
    port: int | None = Field(None, ge=1, le=65535, description="default 5432 or 3306 by driver")
    user: str = Field(min_length=1)
    database: str | None = Field(None, description="default: the user's name on PostgreSQL")
    password_env: EnvVarName | None = Field(None, description="variable holding the password")
    password_file: SecretFilePath | None = Field(None, description="file holding the password")
    query: str = Field("select 1", min_length=1)
    expect: str | None = Field(None, description="the first column of the first row, as text")

    @model_validator(mode="after")
    def _one_password_source(self) -> Self:
        if self.password_env is not None and self.password_file is not None:
            raise ValueError("give password_env or password_file, not both")
        return self


Row = tuple[object, ...]


class DatabaseCheck(Check):
    kind: ClassVar[str] = "database"
    Config: ClassVar[type[CheckConfig]] = DatabaseConfig
    config: DatabaseConfig

    @property
    def port(self) -> int:
        return self.config.port or DEFAULT_PORTS[self.config.driver]

    async def attempt(self) -> str:
        secret = read_secret(self.config.password_env, self.config.password_file)
        password = secret.get_secret_value() if secret is not None else None
        started = time.monotonic()
        try:
            if self.config.driver == "postgresql":
                row = await self._ask_postgresql(password)
            else:
                row = await self._ask_mysql(password)
        except Exception as exc:
            raise CheckFailed(_scrub(self._describe(exc), password)) from exc
        answer = str(row[0]) if row else None
        shown = NO_ROWS if answer is None else repr(answer)
        if self.config.expect is not None and answer != self.config.expect:
            raise CheckFailed(_scrub(f"expected {self.config.expect!r}, got {shown}", password))
        elapsed = (time.monotonic() - started) * 1000
        return _scrub(f"answered {shown} in {elapsed:.1f}ms", password)

    async def _ask_postgresql(self, password: str | None) -> Row | None:
        import asyncpg  # drivers load when a probe runs, not when a config is validated

        connection = await asyncpg.connect(
            host=self.target,
            port=self.port,
            user=self.config.user,
            password=password,
            database=self.config.database,
        )
        try:
            row = await connection.fetchrow(self.config.query)
        finally:
            await connection.close()
        return None if row is None else tuple(row)

    async def _ask_mysql(self, password: str | None) -> Row | None:
        import aiomysql

        connection = await aiomysql.connect(
            host=self.target,
            port=self.port,
            user=self.config.user,
            password=password or "",
            db=self.config.database,
            autocommit=True,
        )
        try:
            async with connection.cursor() as cursor:
                await cursor.execute(self.config.query)
                row = await cursor.fetchone()
        finally:
            try:
                await connection.ensure_closed()
            except BaseException:
                connection.close()
                raise
        return None if row is None else tuple(row)

    def _describe(self, exc: Exception) -> str:
        """The one place where driver errors become details."""
        if (detail := socket_error_detail(exc, self.port)) is not None:
            return detail
        import aiomysql
        import asyncpg

        user = self.config.user
        if isinstance(exc, asyncpg.InvalidPasswordError):
            return f"authentication failed for user {user!r}"
        if isinstance(exc, asyncpg.InvalidAuthorizationSpecificationError):
            return f"authentication failed: {exc}"
        if isinstance(exc, aiomysql.Error) and len(exc.args) == 2:
            code, message = exc.args
            if code in MYSQL_LOGIN_DENIED:
                return f"authentication failed for user {user!r}"
            return str(message)
        return describe_error(exc)


def _scrub(text: str, secret: str | None) -> str:
    return text.replace(secret, "********") if secret else text
