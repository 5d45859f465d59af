"""DNS redirect benchmark: N scenarios in one zone, redirected on a real BIND9, batched and not.

    .venv/bin/python -m bench.dns_redirect                  # N = 1, 100, 1,000
    .venv/bin/python -m bench.dns_redirect --scenarios 1000 --rounds 3

Starts its own primary and secondary ``named`` on 127.0.0.1 (free ports, a temp dir owned by the
``bind`` user, ``notify-delay 0``, the secondary following by NOTIFY/IXFR), with a zone of N
records pointing at production. For each N and mode it builds N DnsRedirectors (the real path:
compare-and-set UPDATE signed with TSIG, verification) that share one hub, and times
``asyncio.gather`` of every ``point_to(replica)`` (a call returns once both servers serve the
change: their zone serials reached the primary's), then of every ``current()``, the runbook's
verify step, which reads each record back at both servers: the time is "redirected and verified
at every authoritative server". Then it points them all back (failback), timed the same way.
Each timed run starts QUIET seconds after the zone last changed, as a failover starts on a quiet
zone: BIND holds back a NOTIFY that follows the previous one closely (up to ~0.6 s here, even with
notify-delay 0), which would otherwise be measured instead of the redirector.

Modes:
- batched: as the daemon runs, ``prepare()`` has read each record while production ran
  (untimed), so the changes go out at once and share UPDATE messages (the default hub);
- cold: batched, but nothing was read before: each call reads its record first;
- unbatched: as batched, with ``DnsHub(window=0, max_changes=1)``: one UPDATE per record.

Target: 1,000 records batched in under 1 s. Not a test: CI never runs it. Every named it starts
is stopped by PID at the end, also on failure or Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import socket
import statistics
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import dns.message
import dns.query
import dns.rcode

from bench.summary import Figure, add_option, write
from ha.redirect import Target
from ha.redirect.dns import DnsRedirector
from ha.redirect.dns_config import DnsRedirectConfig, DnsServerConfig, TsigConfig
from ha.redirect.dns_hub import DnsHub

HOST = "127.0.0.1"
ZONE = "bench.test"
PRODUCTION = "192.0.2.10"
REPLICA = "192.0.2.20"
TARGET_SECONDS = 1.0
TARGET_RECORDS = 1000
QUIET = 1.5  # seconds without a change to the zone before each timed run
START_TIMEOUT = 15.0

OPTIONS = """\
options {{
    directory "{home}"; pid-file "{home}/named.pid"; lock-file "{home}/named.lock";
    session-keyfile "{home}/session.key"; managed-keys-directory "{home}";
    listen-on port {port} {{ {host}; }}; listen-on-v6 {{ none; }};
    recursion no; dnssec-validation no; notify-delay 0;
}};
controls {{ }};
include "{key_file}";
"""
PRIMARY = """zone "{zone}" {{ type primary; file "{zone}.db"; allow-update {{ key "bench"; }};
    allow-transfer {{ key "bench"; }}; notify explicit; also-notify {{ {host} port {peer}; }}; }};
"""
SECONDARY = """zone "{zone}" {{ type secondary; file "{zone}.db";
    primaries {{ {host} port {peer} key "bench"; }}; }};
"""


HEADER = (
    f"{'records':>7}  {'mode':<9}  {'messages':>8}  {'failover s':>10}  {'records/s':>9}"
    f"  {'failback s':>10}"
)


@dataclass
class Row:
    records: int
    mode: str
    messages: int
    failover: float  # seconds until every server answers the replica, for all N, read back
    failback: float

    def show(self) -> str:
        rate = self.records / self.failover
        return (
            f"{self.records:>7,}  {self.mode:<9}  {self.messages:>8,}  {self.failover:>10.3f}"
            f"  {rate:>9,.0f}  {self.failback:>10.3f}"
        )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def bind_pair(
    root: Path, records: int, address: str = PRODUCTION
) -> Iterator[tuple[int, int, Path]]:
    """A primary and a secondary serving ZONE with ``records`` A records (r00000, ...) holding
    ``address``; stopped by PID after."""
    key_file = root / "bench.key"
    key_file.write_bytes(
        subprocess.run(["/usr/sbin/tsig-keygen", "bench"], capture_output=True, check=True).stdout
    )
    ports = {"primary": free_port(), "secondary": free_port()}
    peers = {"primary": ports["secondary"], "secondary": ports["primary"]}
    zone = [f"$TTL 300\n@ SOA ns1 hostmaster 1 3600 600 86400 60\n@ NS ns1\nns1 A {HOST}\n"]
    zone += [f"r{i:05} A {address}\n" for i in range(records)]
    for role, port in ports.items():
        home = root / role
        home.mkdir()
        conf = OPTIONS.format(home=home, port=port, host=HOST, key_file=key_file)
        template = PRIMARY if role == "primary" else SECONDARY
        conf += template.format(zone=ZONE, host=HOST, peer=peers[role])
        (home / "named.conf").write_text(conf)
        if role == "primary":
            (home / f"{ZONE}.db").write_text("".join(zone))
    subprocess.run(["chown", "-R", "bind:bind", str(root)], check=True)
    processes: list[subprocess.Popen[bytes]] = []
    try:
        for role in ("primary", "secondary"):
            log = (root / role / "named.log").open("wb")
            argv = [
                "/usr/sbin/named",
                "-g",
                "-u",
                "bind",
                "-n",
                "1",
                "-c",
                str(root / role / "named.conf"),
            ]
            processes.append(subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT))
            wait_serving(ports[role], processes[-1], root / role / "named.log")
        yield ports["primary"], ports["secondary"], key_file
    finally:
        for process in processes:
            if process.poll() is None:
                os.kill(process.pid, signal.SIGTERM)
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    os.kill(process.pid, signal.SIGKILL)
                    process.wait()


def wait_serving(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline and process.poll() is None:
        try:
            response = dns.query.udp(
                dns.message.make_query(ZONE, "SOA"), HOST, timeout=0.2, port=port
            )
            if response.rcode() == dns.rcode.NOERROR and response.answer:
                return
        except (OSError, dns.exception.DNSException):
            pass
        time.sleep(0.02)
    raise SystemExit(f"named on port {port} did not start:\n{log.read_text()[-2000:]}")


MODES = ("batched", "cold", "unbatched")


async def measure(records: int, mode: str, servers: dict[str, DnsServerConfig]) -> Row:
    hub = DnsHub(window=0, max_changes=1) if mode == "unbatched" else DnsHub()
    config = {
        "server": "primary",
        "zone": ZONE,
        "ttl": 30,
        "verify": {"servers": ["primary", "secondary"], "deadline": "60s"},
    }
    redirectors = [
        DnsRedirector(
            Target(f"s{i}", PRODUCTION, REPLICA),
            DnsRedirectConfig.model_validate({**config, "name": f"r{i:05}"}),
            servers,
            hub=hub,
        )
        for i in range(records)
    ]
    if mode != "cold":
        await asyncio.gather(*(r.prepare() for r in redirectors))
    timings = []
    for address in (REPLICA, PRODUCTION):
        await asyncio.sleep(QUIET)
        started = time.perf_counter()
        await asyncio.gather(*(r.point_to(address) for r in redirectors))
        read_back = await asyncio.gather(*(r.current() for r in redirectors))  # the verify step
        timings.append(time.perf_counter() - started)
        assert set(read_back) == {address}, set(read_back)
    return Row(records, mode, hub.messages, *timings)


async def run(
    sizes: list[int], rounds: int, primary: int, secondary: int, key_file: Path
) -> list[Row]:
    servers = {
        "primary": DnsServerConfig(
            address=HOST, port=primary, tsig=TsigConfig(secret_file=key_file), timeout=5
        ),
        "secondary": DnsServerConfig(address=HOST, port=secondary, timeout=5),
    }
    rows = []
    for records in sizes:
        for mode in MODES:
            for _ in range(rounds):
                rows.append(await measure(records, mode, servers))
                print(rows[-1].show(), flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--scenarios", type=int, nargs="+", default=[1, 100, 1000])
    parser.add_argument("--rounds", type=int, default=1)
    add_option(parser)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="ha-bench-bind-", dir="/tmp"))
    try:
        with bind_pair(root, max(args.scenarios)) as (primary, secondary, key_file):
            print(f"named primary {HOST}:{primary}, secondary {HOST}:{secondary}")
            print(f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at start")
            print(HEADER)
            rows = asyncio.run(run(args.scenarios, args.rounds, primary, secondary, key_file))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    runs = sorted(
        t
        for r in rows
        if r.records == TARGET_RECORDS and r.mode == "batched"
        for t in (r.failover, r.failback)
    )
    if runs:
        median = statistics.median(runs)
        verdict = "met" if median < TARGET_SECONDS else "MISSED"
        print(
            f"target: {TARGET_RECORDS:,} records batched, redirected and verified everywhere in"
            f" under {TARGET_SECONDS:g}s: {verdict} (median {median:.3f}s of {len(runs)} runs,"
            f" best {runs[0]:.3f}s, worst {runs[-1]:.3f}s)"
        )
        write(
            args.summary,
            Figure(
                f"DNS: {TARGET_RECORDS:,} records batched and verified (median of {len(runs)})",
                f"{median:.3f} s",
                f"< {TARGET_SECONDS:g} s",
                median < TARGET_SECONDS,
            ),
        )


if __name__ == "__main__":
    main()
