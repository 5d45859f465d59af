"""A TCP proxy that adds latency spikes, run inside a namespace (``tc netem`` does not exist in
this kernel)::

    python -m tests.lab.proxy LISTEN_ADDRESS LISTEN_PORT TARGET_PORT --spike-ms 150 --rate 0.2

Each accepted connection is, with probability ``rate``, held for a random delay of up to
``spike-ms`` before it is forwarded to ``LISTEN_ADDRESS:TARGET_PORT``; then bytes flow both ways
untouched. Stops on SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import signal


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except OSError:
        pass
    finally:
        writer.close()


async def serve(address: str, port: int, target: int, spike: float, rate: float) -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if random.random() < rate:
            await asyncio.sleep(random.uniform(0, spike))
        try:
            up_reader, up_writer = await asyncio.open_connection(address, target)
        except OSError:
            writer.close()
            return
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))

    server = await asyncio.start_server(handle, address, port)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    async with server:
        await stop.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("::")[0])
    parser.add_argument("address")
    parser.add_argument("port", type=int)
    parser.add_argument("target", type=int)
    parser.add_argument("--spike-ms", type=float, default=0.0, help="longest added delay")
    parser.add_argument("--rate", type=float, default=0.0, help="share of delayed connections")
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.address, args.port, args.target, args.spike_ms / 1000, args.rate))


if __name__ == "__main__":
    main()
