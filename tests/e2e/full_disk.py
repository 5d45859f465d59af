"""A disk that fills up, for the tests of a full state store: a real tmpfs of 32 MB, mounted by
the test (the tests run as root, as the README's test command does), filled with a file and
emptied again. (SQLite's WAL grows to ~4 MB before it is checkpointed: a smaller disk fills up
by itself in a slow run.)"""

from __future__ import annotations

import errno
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml

from tests.e2e.fleet import Fleet

FULL = "cannot append to the journal: database or disk is full"


@contextmanager
def small_disk(mount: Path) -> Iterator[Path]:
    """A 32 MB tmpfs at ``mount`` (made), unmounted after."""
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=32m", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.fail(f"cannot mount a tmpfs (the tests run as root): {done.stderr}", pytrace=False)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(disk: Path) -> None:
    """Write to a file on ``disk`` until the disk has no room left."""
    block = b"\0" * (1 << 20)
    with (disk / "filler").open("wb") as filler:
        try:
            while True:
                filler.write(block)
                filler.flush()
        except OSError as exc:
            if exc.errno != errno.ENOSPC:
                raise


def empty(disk: Path) -> None:
    (disk / "filler").unlink()


def state_on(fleet: Fleet, disk: Path) -> None:
    """Keep the fleet's state on ``disk`` (after its write_config)."""
    fleet.state_path = disk / "ha-state.db"
    config = yaml.safe_load(fleet.config_path.read_text())
    config["state"] = str(fleet.state_path)
    fleet.config_path.write_text(yaml.safe_dump(config, sort_keys=False))


def store_error(fleet: Fleet) -> str | None:
    error: str | None = fleet.api("GET", "/v1/status")[1]["store_error"]
    return error
