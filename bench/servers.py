"""What the benchmarks run in processes of their own: servers that accept connections and close
them at once (the checks' targets, whose work is not the orchestrator's), and stopping a child by
its PID."""

from __future__ import annotations

import asyncio
import os
import socket
import time
from multiprocessing.process import BaseProcess

BACKLOG = 4096


def listening(host: str, port: int) -> socket.socket:
    """A non-blocking listening socket on host:port (0: any free port)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(BACKLOG)
    sock.setblocking(False)
    return sock


async def accept_until_orphaned(sockets: list[socket.socket], parent: int, end: float) -> None:
    """Accept and close every connection on ``sockets`` until ``end`` (``time.monotonic()``) or
    until the process ``parent`` is gone."""
    loop = asyncio.get_running_loop()

    def drain(listener: socket.socket) -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:  # BlockingIOError: queue empty; EMFILE and friends: next time
                return
            conn.close()

    for sock in sockets:
        loop.add_reader(sock.fileno(), drain, sock)
    while os.getppid() == parent and time.monotonic() < end:  # noqa: ASYNC110 (polling on purpose)
        await asyncio.sleep(0.5)


def stop_process(process: BaseProcess, grace: float = 5) -> None:
    """Stop a child we started, by its PID: wait ``grace`` seconds, then SIGTERM, then SIGKILL."""
    if process.pid is None:
        return
    process.join(grace)
    if process.is_alive():
        process.terminate()
        process.join(5)
    if process.is_alive():
        process.kill()
        process.join(5)
