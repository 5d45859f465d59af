"""Where a shared state lives: ``etcd://host:port,host:port/optional/prefix`` (no etcd client here,
so that reading a config does not load one)."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

DEFAULT_PREFIX = "/ha/"


@dataclass(frozen=True, slots=True)
class EtcdTarget:
    """Where the state lives: ``etcd://host:port,host:port/optional/prefix``."""

    endpoints: tuple[tuple[str, int], ...]
    prefix: str = DEFAULT_PREFIX

    @classmethod
    def parse(cls, url: str) -> EtcdTarget:
        """Read a ``state:`` URL; ValueError says what is wrong with it."""
        parts = urlsplit(url)
        if parts.scheme != "etcd":
            raise ValueError(f"{url!r} is not an etcd:// URL")
        endpoints: list[tuple[str, int]] = []
        for item in parts.netloc.split(","):
            host, sep, port = item.rpartition(":")
            if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise ValueError(f"{item!r} in {url!r} is not host:port (port 1..65535)")
            endpoints.append((host, int(port)))
        path = parts.path.strip("/")
        return cls(tuple(endpoints), f"/{path}/" if path else DEFAULT_PREFIX)

    def __str__(self) -> str:
        return "etcd://" + ",".join(f"{h}:{p}" for h, p in self.endpoints) + self.prefix
