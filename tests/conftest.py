"""Shared fixtures. Real servers are started by the fixtures in tests/servers/ (on loopback)."""

pytest_plugins = [
    "tests.servers.postgres",
    "tests.servers.mariadb",
]
