"""The tcp check against real listeners on loopback (IPv4 and IPv6)."""

from __future__ import annotations

import asyncio
import gc
import os
import socket
from collections.abc import Iterator

import pytest
from pydantic import ValidationError

from checks.tcp import TcpCheck
from tests.servers.ports import free_port


def tcp_check(target: str, port: int, timeout: str = "1s") -> TcpCheck:
    config = TcpCheck.Config.model_validate({"kind": "tcp", "port": port, "timeout": timeout})
    return TcpCheck(config, target)


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    with socket.create_server(("127.0.0.1", 0)) as sock:
        yield sock


@pytest.fixture
def full_listener() -> Iterator[int]:
    """A listener whose accept queue is full and that never accepts: connects hang."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(0)
        port: int = sock.getsockname()[1]
        queued = socket.create_connection(("127.0.0.1", port), timeout=1)
        with queued:
            yield port


async def test_open_port_is_up(listener: socket.socket) -> None:
    port = listener.getsockname()[1]

    result = await tcp_check("127.0.0.1", port).probe()

    assert (result.ok, result.detail) == (True, f"port {port} open")
    assert result.latency > 0


async def test_ipv6_target() -> None:
    with socket.create_server(("::1", 0), family=socket.AF_INET6) as sock:
        port = sock.getsockname()[1]

        result = await tcp_check("::1", port).probe()

    assert (result.ok, result.detail) == (True, f"port {port} open")


async def test_host_name_target_is_resolved(listener: socket.socket) -> None:
    port = listener.getsockname()[1]

    result = await tcp_check("localhost", port).probe()

    assert (result.ok, result.detail) == (True, f"port {port} open")


async def test_closed_port_is_refused() -> None:
    port = free_port()

    result = await tcp_check("127.0.0.1", port).probe()

    assert (result.ok, result.detail) == (False, f"port {port}: connection refused")


async def test_listener_that_never_accepts_times_out(full_listener: int) -> None:
    result = await tcp_check("127.0.0.1", full_listener, timeout="200ms").probe()

    assert (result.ok, result.detail) == (False, "timed out after 0.2s")
    assert 0.2 <= result.latency < 1


async def test_connection_is_closed_after_the_probe(listener: socket.socket) -> None:
    await tcp_check("127.0.0.1", listener.getsockname()[1]).probe()

    accepted, _ = listener.accept()
    with accepted:
        assert accepted.recv(1) == b""


def test_each_event_loop_gets_its_own_set_of_connecting_sockets_and_it_ends_with_the_loop(
    listener: socket.socket,
) -> None:
    port = listener.getsockname()[1]
    check = tcp_check("127.0.0.1", port)

    async def probe_many() -> list[bool]:
        return [(await check.probe()).ok for _ in range(3)] + [
            (await tcp_check("127.0.0.1", free_port()).probe()).ok
        ]

    assert asyncio.run(probe_many()) == [True, True, True, False]
    gc.collect()
    open_fds = len(os.listdir("/proc/self/fd"))
    for _ in range(20):
        assert asyncio.run(probe_many()) == [True, True, True, False]
    gc.collect()

    assert len(os.listdir("/proc/self/fd")) <= open_fds  # no epoll set left behind per loop


@pytest.mark.parametrize("port", [0, 70000])
def test_port_out_of_range_is_refused(port: int) -> None:
    with pytest.raises(ValidationError) as caught:
        TcpCheck.Config.model_validate({"kind": "tcp", "port": port})

    assert [error["loc"] for error in caught.value.errors()] == [("port",)]


def test_port_is_required() -> None:
    with pytest.raises(ValidationError) as caught:
        TcpCheck.Config.model_validate({"kind": "tcp"})

    assert [(e["loc"], e["type"]) for e in caught.value.errors()] == [(("port",), "missing")]
