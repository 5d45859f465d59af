"""Real BIND9 servers for tests: a primary and a secondary on 127.0.0.1, each on its own free port.

Both run as the ``bind`` user (``named -g -u bind``: started as root, it drops privileges) from a
temp dir under /tmp that the user owns, with ``recursion no``, no rndc (``controls { }``) and a
TSIG key made by ``tsig-keygen``. BIND binds only addresses of an interface, and loopback holds
127.0.0.1 alone here, so the two servers differ by port, not address. Zones on both:

- ``example.test``: updates signed with the key are allowed; the primary notifies the secondary
  at once (``notify-delay 0``), which fetches the change by IXFR.
- ``lag.test``: updates allowed, but the primary never notifies: the secondary keeps its old copy
  (refresh 1 h) until :meth:`BindLab.notify` sends it a real NOTIFY from 127.0.0.1, which it takes
  as from its primary.
- ``locked.test``: no updates allowed (the primary answers REFUSED); ``www`` holds 192.0.2.10.

Every server is stopped by its PID (SIGTERM, then SIGKILL), also when a test fails; a server that
cannot start fails the test with its log.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import dns.asyncquery
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.query
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.tsig
import dns.update
import pytest

from tests.servers.ports import free_port

NAMED = "/usr/sbin/named"
TSIG_KEYGEN = "/usr/sbin/tsig-keygen"
USER = "bind"
KEY_NAME = "ha-key"
HOST = "127.0.0.1"
ZONES = ("example.test", "lag.test", "locked.test")
START_TIMEOUT = 15.0
STOP_TIMEOUT = 10.0

ZONE_FILE = """\
$TTL 300
@ IN SOA ns1 hostmaster 1 3600 600 86400 60
@ IN NS ns1
ns1 IN A 127.0.0.1
"""
LOCKED_RECORDS = "www IN A 192.0.2.10\n"

OPTIONS = """\
options {{
    directory "{root}";
    pid-file "{root}/named.pid";
    lock-file "{root}/named.lock";
    session-keyfile "{root}/session.key";
    managed-keys-directory "{root}";
    listen-on port {port} {{ {host}; }};
    listen-on-v6 {{ none; }};
    recursion no;
    dnssec-validation no;
    notify-delay 0;
}};
controls {{ }};
include "{key_file}";
"""

PRIMARY_ZONES = """\
zone "example.test" {{ type primary; file "example.test.db"; allow-update {{ key "{key}"; }};
    allow-transfer {{ key "{key}"; }}; notify explicit; also-notify {{ {host} port {peer}; }}; }};
zone "lag.test" {{ type primary; file "lag.test.db"; allow-update {{ key "{key}"; }};
    allow-transfer {{ key "{key}"; }}; notify no; }};
zone "locked.test" {{ type primary; file "locked.test.db"; allow-transfer {{ key "{key}"; }};
    notify no; }};
"""

SECONDARY_ZONE = """\
zone "{zone}" {{ type secondary; file "{zone}.db"; masterfile-format text;
    primaries {{ {host} port {peer} key "{key}"; }}; }};
"""


@dataclass
class Named:
    """One named process: start, stop (by PID), and a block during which it is down."""

    name: str
    port: int
    root: Path
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def conf(self) -> Path:
        return self.root / "named.conf"

    @property
    def log(self) -> Path:
        return self.root / "named.log"

    def start(self) -> None:
        with self.log.open("ab") as log:
            argv = [NAMED, "-g", "-u", USER, "-n", "1", "-c", str(self.conf)]
            self.process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + START_TIMEOUT
        while not self._serves_all_zones():
            if self.process.poll() is not None:
                self._fail(f"named exited with {self.process.returncode}")
            if time.monotonic() > deadline:
                self.stop()
                self._fail(f"named did not serve {', '.join(ZONES)} within {START_TIMEOUT:g}s")
            time.sleep(0.02)

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait()
            pytest.fail(f"named {self.name} did not stop within {STOP_TIMEOUT:g}s", pytrace=False)

    @contextmanager
    def stopped(self) -> Iterator[None]:
        """The server is down inside the block, and up again after it."""
        self.stop()
        try:
            yield
        finally:
            self.start()

    def _serves_all_zones(self) -> bool:
        for zone in ZONES:
            query = dns.message.make_query(zone, "SOA")
            try:
                response = dns.query.udp(query, HOST, timeout=0.2, port=self.port)
            except (OSError, dns.exception.DNSException):
                return False
            if response.rcode() != dns.rcode.NOERROR or not response.answer:
                return False
        return True

    def _fail(self, reason: str) -> None:
        text = self.log.read_text(errors="replace")[-3000:] if self.log.exists() else "(no log)"
        pytest.fail(
            f"cannot start BIND ({self.name}): {reason}\n{self.log}:\n{text}", pytrace=False
        )


@dataclass
class BindLab:
    """A primary and a secondary, the key file they share, and helpers that act as a user would
    (someone else's update, a dig-style question, a NOTIFY)."""

    primary: Named
    secondary: Named
    key_file: Path  # tsig-keygen output, included by both named.conf
    secret_file: Path  # the same key's base64 secret alone
    root: Path

    @property
    def secret(self) -> str:
        match = re.search(r'secret "([^"]+)"', self.key_file.read_text())
        assert match is not None
        return match.group(1)

    def key_file_for(self, name: str, path: Path) -> Path:
        """A new key (another secret) under ``name``, written by tsig-keygen to ``path``."""
        keygen = subprocess.run([TSIG_KEYGEN, "-a", "hmac-sha256", name], capture_output=True)
        if keygen.returncode != 0:
            pytest.fail(f"tsig-keygen failed: {keygen.stderr.decode()}", pytrace=False)
        path.write_bytes(keygen.stdout)
        return path

    async def write(self, zone: str, name: str, rdtype: str, value: str, ttl: int = 300) -> None:
        """Someone else's signed update at the primary: ``name`` holds ``value`` alone."""
        update = dns.update.UpdateMessage(
            zone, keyring=dns.tsig.Key(KEY_NAME, self.secret, dns.tsig.HMAC_SHA256)
        )
        update.replace(name, ttl, rdtype, value)
        response = await dns.asyncquery.tcp(update, HOST, timeout=5, port=self.primary.port)
        assert response.rcode() == dns.rcode.NOERROR, dns.rcode.to_text(response.rcode())

    async def ask(self, server: Named, fqdn: str, rdtype: str) -> tuple[set[str], int | None]:
        """What ``server`` answers (like ``dig @server fqdn rdtype``): values and TTL."""
        query = dns.message.make_query(fqdn, rdtype)
        response = await dns.asyncquery.udp(query, HOST, timeout=2, port=server.port)
        rrset = response.get_rrset(
            response.answer,
            dns.name.from_text(fqdn),
            dns.rdataclass.IN,
            dns.rdatatype.from_text(rdtype),
        )
        if rrset is None:
            return set(), None
        return {r.to_text() for r in rrset}, rrset.ttl

    async def notify(self, zone: str) -> None:
        """Tell the secondary that ``zone`` changed, as its primary would."""
        message = dns.message.make_query(zone, "SOA")
        message.flags = dns.flags.AA  # and no RD; the opcode lives in the flags too: set it after
        message.set_opcode(dns.opcode.NOTIFY)
        response = await dns.asyncquery.udp(message, HOST, timeout=2, port=self.secondary.port)
        assert response.rcode() == dns.rcode.NOERROR, dns.rcode.to_text(response.rcode())


def write_configs(root: Path, primary_port: int, secondary_port: int, key_file: Path) -> None:
    for role, port, peer in (
        ("primary", primary_port, secondary_port),
        ("secondary", secondary_port, primary_port),
    ):
        home = root / role
        home.mkdir()
        conf = OPTIONS.format(root=home, port=port, host=HOST, key_file=key_file)
        if role == "primary":
            conf += PRIMARY_ZONES.format(key=KEY_NAME, host=HOST, peer=peer)
            for zone in ZONES:
                extra = LOCKED_RECORDS if zone == "locked.test" else ""
                (home / f"{zone}.db").write_text(ZONE_FILE + extra)
        else:
            for zone in ZONES:
                conf += SECONDARY_ZONE.format(zone=zone, key=KEY_NAME, host=HOST, peer=peer)
        (home / "named.conf").write_text(conf)
        check = subprocess.run(["named-checkconf", str(home / "named.conf")], capture_output=True)
        if check.returncode != 0:
            pytest.fail(f"named-checkconf ({role}): {check.stdout.decode()}", pytrace=False)


@pytest.fixture(scope="session", name="bind")
def bind_lab() -> Iterator[BindLab]:
    """``bind``: a primary and a secondary BIND9 for the session (see the module docstring)."""
    if not os.access(NAMED, os.X_OK):
        pytest.fail(
            f"BIND9 is not installed ({NAMED}): run `./run test`, which installs bind9",
            pytrace=False,
        )
    root = Path(tempfile.mkdtemp(prefix="ha-test-bind-", dir="/tmp"))
    primary = Named("primary", free_port(), root / "primary")
    secondary = Named("secondary", free_port(), root / "secondary")
    try:
        key_file = root / "ha-key.conf"
        lab = BindLab(primary, secondary, key_file, root / "ha-key.secret", root)
        lab.key_file_for(KEY_NAME, key_file)
        lab.secret_file.write_text(lab.secret + "\n")
        write_configs(root, primary.port, secondary.port, key_file)
        subprocess.run(["chown", "-R", f"{USER}:{USER}", str(root)], check=True)
        primary.start()
        secondary.start()
        yield lab
    finally:
        secondary.stop()
        primary.stop()
        shutil.rmtree(root, ignore_errors=True)
