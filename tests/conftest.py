"""Shared fixtures. Real servers are started by the fixtures in tests/servers/ (on loopback)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

from tests.e2e.fleet import Fleet
from tests.e2e.site import Site

pytest_plugins = [
    "tests.servers.postgres",
    "tests.servers.mariadb",
    "tests.servers.moto_aws",
    "tests.servers.moto",
    "tests.servers.bind",
    "tests.servers.vcsim",
    "tests.servers.winrm_fake",
]


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    """Two demo services on 127.0.0.2 and 127.0.0.3 with a daemon config; all stopped after."""
    site = Site(tmp_path)
    try:
        site.start_servers()
        yield site
    finally:
        site.close()


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[Fleet]:
    """Four file-backed scenarios s1..s4 (see Fleet); the daemon is stopped after."""
    fleet = Fleet(tmp_path, 4)
    try:
        yield fleet
    finally:
        fleet.stop()


@pytest.fixture(autouse=True)
def _structlog_defaults() -> Iterator[None]:
    """A test that runs the CLI in-process configures logging; the next test starts clean."""
    yield
    structlog.reset_defaults()
