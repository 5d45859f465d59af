"""Processes the lab starts inside its namespaces, each stopped by its own PID.

- :class:`Service`: any command run inside a namespace (``ip netns exec`` execs it, so the PID we
  hold is the server's own); :meth:`Service.stop` resumes a hung process before ending it.
- :func:`http_server`: ``python -m http.server`` serving a page that names its side.
- :class:`LabPostgres`: a PostgreSQL server on a side's address.
- :class:`LabDns`: a BIND9 primary and secondary on 127.0.0.1 of the orchestrator's namespace,
  configured like :mod:`tests.servers.bind` (same zones, key and notify), each with its own port,
  from a temp dir under /tmp that the ``bind`` user owns.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.tsig
import dns.update

from tests.lab.namespaces import LINKS, LabNetwork, NamespaceThread
from tests.servers.bind import KEY_NAME, NAMED, TSIG_KEYGEN, USER, ZONES, write_configs

STOP_TIMEOUT = 5.0
LOOPBACK = "127.0.0.1"
DNS_PORTS = {"primary": 5301, "secondary": 5302}
PG_PORT = 5432
PG_OWNER = "postgres"


class Service:
    """One process inside a namespace, its log in ``log``; :meth:`stop` is idempotent."""

    def __init__(
        self,
        network: LabNetwork,
        ns: str,
        argv: list[str],
        log: Path,
        stop_signal: signal.Signals = signal.SIGTERM,
    ) -> None:
        self.network, self.ns, self.argv, self.log = network, ns, argv, log
        self.stop_signal = stop_signal
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None, "not started"
        return self.process.pid

    def start(self, ready: Callable[[], bool], timeout: float = 15) -> None:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                self.network.argv(self.ns, self.argv),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        deadline = time.monotonic() + timeout
        while not ready():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                tail = self.log.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"{self.argv[0]} in {self.ns} did not start:\n{tail}")
            time.sleep(0.02)

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        os.kill(process.pid, signal.SIGCONT)
        os.kill(process.pid, self.stop_signal)
        try:
            process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait()


def connects(thread: NamespaceThread, address: str, port: int, timeout: float = 0.5) -> bool:
    """A client in ``thread``'s namespace opens a TCP connection to ``address:port``."""

    def attempt() -> bool:
        try:
            socket.create_connection((address, port), timeout=timeout).close()
        except OSError:
            return False
        return True

    return thread.run(attempt)


def http_server(
    network: LabNetwork, thread: NamespaceThread, side: str, port: int, root: Path
) -> Service:
    """An HTTP server on ``side``'s address answering ``GET /`` with the side's name."""
    docs = root / side
    docs.mkdir(parents=True, exist_ok=True)
    (docs / "index.html").write_text(f"{side}\n")
    address = LINKS[side].address
    argv = [sys.executable, "-m", "http.server", "--bind", address, "--directory", str(docs)]
    service = Service(network, network.ns[side], [*argv, str(port)], root / f"http-{side}.log")
    service.start(lambda: connects(thread, address, port))
    return service


class LabPostgres:
    """PostgreSQL on ``side``'s address inside its namespace: a throwaway cluster in a temp dir
    under /tmp owned by the ``postgres`` user (initdb and postgres refuse root), started through
    ``setpriv`` (which execs, so the PID held is the postmaster's own) and stopped by SIGINT, a
    fast shutdown that ends its backends too. Clients in the lab log in as ``ha`` with
    ``password``."""

    def __init__(
        self, network: LabNetwork, thread: NamespaceThread, side: str, root: Path, password: str
    ) -> None:
        self.thread, self.address, self.password = thread, LINKS[side].address, password
        self.bindir = _postgres_bindir()
        self.dir = Path(tempfile.mkdtemp(prefix=f"ha-lab-pg-{side}-", dir="/tmp"))
        shutil.chown(self.dir, PG_OWNER, PG_OWNER)
        data = self.dir / "data"
        initdb = [str(self.bindir / "initdb"), "-D", str(data), "-U", PG_OWNER, "-A", "trust"]
        _as_postgres([*initdb, "--no-sync", "-E", "UTF8", "--locale=C.UTF-8"])
        (data / "pg_hba.conf").write_text(
            f"local all all trust\nhost all all {LINKS[side].orch_address}/32 scram-sha-256\n"
        )
        argv = [
            *("setpriv", f"--reuid={PG_OWNER}", f"--regid={PG_OWNER}", "--init-groups", "--"),
            *(str(self.bindir / "postgres"), "-D", str(data), "-k", str(self.dir)),
            *("-h", self.address, "-p", str(PG_PORT), "-c", "fsync=off"),
        ]
        self.service = Service(
            network, network.ns[side], argv, root / f"postgres-{side}.log", signal.SIGINT
        )

    @property
    def pid(self) -> int:
        return self.service.pid

    def start(self) -> None:
        self.service.start(lambda: connects(self.thread, self.address, PG_PORT))
        self.sql(f"do $$ begin if not exists (select from pg_roles where rolname = 'ha') then"
                 f" create role ha login password '{self.password}'; end if; end $$")  # fmt: skip

    def sql(self, statement: str) -> None:
        """Run SQL as the superuser over the unix socket (the file system is shared)."""
        psql = [str(self.bindir / "psql"), "-h", str(self.dir), "-p", str(PG_PORT)]
        _as_postgres([*psql, "-U", PG_OWNER, "-d", "postgres", "-v", "ON_ERROR_STOP=1",
                      "-c", statement])  # fmt: skip

    def close(self) -> None:
        self.service.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def _postgres_bindir() -> Path:
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/postgres"),
        key=lambda path: int(Path(path).parents[1].name.split(".")[0]),
    )
    if not found:
        raise RuntimeError("PostgreSQL is not installed: run `./run test`, which installs it")
    return Path(found[-1]).parent


def _as_postgres(argv: list[str]) -> None:
    done = subprocess.run(
        ["runuser", "-u", PG_OWNER, "--", *argv], capture_output=True, text=True, timeout=60
    )
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {done.returncode}: {done.stderr[-2000:]}")


class LabDns:
    """Two authoritative servers for ``example.test`` (primary takes signed updates and notifies
    the secondary) on 127.0.0.1 inside the orchestrator's namespace; questions go through
    ``thread``, which lives there too."""

    def __init__(self, network: LabNetwork, thread: NamespaceThread) -> None:
        self.network, self.thread = network, thread
        # named drops to the bind user: its directory must not sit under a root-only (0700) one
        root = self.root = Path(tempfile.mkdtemp(prefix="ha-lab-bind-", dir="/tmp"))
        self.key_file = root / "ha-key.conf"
        keygen = subprocess.run(
            [TSIG_KEYGEN, "-a", "hmac-sha256", KEY_NAME], capture_output=True, check=True
        )
        self.key_file.write_bytes(keygen.stdout)
        match = re.search(r'secret "([^"]+)"', keygen.stdout.decode())
        assert match is not None
        self.secret = match.group(1)
        write_configs(root, DNS_PORTS["primary"], DNS_PORTS["secondary"], self.key_file)
        subprocess.run(["chown", "-R", f"{USER}:{USER}", str(root)], check=True)
        self.servers = {
            role: Service(
                network,
                network.orch,
                [NAMED, "-g", "-u", USER, "-n", "1", "-c", str(root / role / "named.conf")],
                root / f"named-{role}.log",
            )
            for role in DNS_PORTS
        }

    def start(self, role: str) -> None:
        self.servers[role].start(lambda: self._serves(DNS_PORTS[role]))

    def stop(self, role: str) -> None:
        self.servers[role].stop()

    def _serves(self, port: int) -> bool:
        def ask() -> bool:
            for zone in ZONES:
                query = dns.message.make_query(zone, "SOA")
                try:
                    response = dns.query.udp(query, LOOPBACK, timeout=0.2, port=port)
                except (OSError, dns.exception.DNSException):
                    return False
                if response.rcode() != dns.rcode.NOERROR or not response.answer:
                    return False
            return True

        return self.thread.run(ask)

    def write(self, name: str, address: str, ttl: int = 30) -> None:
        """A signed update at the primary: ``name.example.test`` holds ``address`` alone."""
        update = dns.update.UpdateMessage(
            "example.test", keyring=dns.tsig.Key(KEY_NAME, self.secret, dns.tsig.HMAC_SHA256)
        )
        update.replace(name, ttl, "A", address)
        port = DNS_PORTS["primary"]
        response = self.thread.run(lambda: dns.query.tcp(update, LOOPBACK, timeout=5, port=port))
        assert response.rcode() == dns.rcode.NOERROR, dns.rcode.to_text(response.rcode())

    def answers(self, name: str, timeout: float = 1.0) -> dict[str, set[str] | None]:
        """What each server answers for ``name.example.test`` A, like ``dig`` in the lab;
        ``None`` for a server that does not answer."""
        fqdn = dns.name.from_text(f"{name}.example.test")

        def ask(port: int) -> set[str] | None:
            query = dns.message.make_query(fqdn, "A")
            try:
                response = dns.query.udp(query, LOOPBACK, timeout=timeout, port=port)
            except (OSError, dns.exception.DNSException):
                return None
            rrset = response.get_rrset(response.answer, fqdn, dns.rdataclass.IN, dns.rdatatype.A)
            return set() if rrset is None else {r.to_text() for r in rrset}

        return {role: self.thread.run(partial(ask, port)) for role, port in DNS_PORTS.items()}

    def close(self) -> None:
        for role in reversed(DNS_PORTS):
            self.stop(role)
        shutil.rmtree(self.root, ignore_errors=True)
