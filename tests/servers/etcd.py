"""A real 3-member etcd cluster for tests: loopback, free ports, one temp data dir per member.

``etcd_cluster`` starts it once per session and stops every member by PID at the end (also when
starting failed half-way). ``etcd`` hands it to one test with every member running and the
keyspace empty. Members can be killed and restarted (``kill``, ``restart``), and quorum lost
(``quorum_lost``). Test modules load this plugin with ``pytest_plugins = ["tests.servers.etcd"]``.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import pytest

from tests.servers.ports import free_port

ETCD = "/usr/bin/etcd"
ETCDCTL = "/usr/bin/etcdctl"
HOST = "127.0.0.1"
FAST = ["--unsafe-no-fsync", "--heartbeat-interval=50", "--election-timeout=250"]
HEALTHY_WITHIN = 30.0
# setpriv execs etcd (same PID) with SIGKILL on parent death: no member outlives a crashed pytest.
# (A preexec_fn would do the same, but forking while gRPC's threads run can crash the child.)
# The kernel sends it when the *thread* that started the member ends: start members only from the
# main thread (never through asyncio.to_thread), which ``EtcdMember.start`` enforces.
DIE_WITH_PARENT = ["/usr/bin/setpriv", "--pdeathsig", "KILL", "--"]


@dataclass
class EtcdMember:
    name: str
    client_port: int
    peer_port: int
    metrics_port: int
    datadir: Path
    process: subprocess.Popen[bytes] | None = None
    _log: IO[bytes] | None = field(default=None, repr=False)

    @property
    def endpoint(self) -> str:
        return f"{HOST}:{self.client_port}"

    @property
    def peer_url(self) -> str:
        return f"http://{HOST}:{self.peer_port}"

    @property
    def log_path(self) -> Path:
        return self.datadir.with_suffix(".log")

    def is_running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self, initial_cluster: str) -> None:
        """Start the member, with its existing data if any (etcd then ignores the cluster flags)."""
        if threading.current_thread() is not threading.main_thread():
            pytest.fail("start etcd members from the main thread (see DIE_WITH_PARENT)")
        self.stop()  # reap an exited process, close its log
        client = f"http://{self.endpoint}"
        argv = [
            *DIE_WITH_PARENT,
            ETCD,
            f"--name={self.name}",
            f"--data-dir={self.datadir}",
            f"--listen-client-urls={client}",
            f"--advertise-client-urls={client}",
            f"--listen-peer-urls={self.peer_url}",
            f"--initial-advertise-peer-urls={self.peer_url}",
            f"--initial-cluster={initial_cluster}",
            "--initial-cluster-state=new",
            "--initial-cluster-token=ha-test",
            f"--listen-metrics-urls=http://{HOST}:{self.metrics_port}",
            *FAST,
        ]
        self._log = self.log_path.open("ab")
        self.process = subprocess.Popen(argv, stdout=self._log, stderr=subprocess.STDOUT)

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> None:
        """Signal the member's own PID and reap it; idempotent."""
        if self.process is not None:
            if self.process.poll() is None:
                os.kill(self.process.pid, sig)
                try:
                    self.process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    os.kill(self.process.pid, signal.SIGKILL)
                    self.process.wait(timeout=10)
            self.process = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def log_tail(self) -> str:
        if not self.log_path.exists():
            return ""
        return f"{self.log_path}:\n{self.log_path.read_text(errors='replace')[-1500:]}"


@dataclass
class EtcdCluster:
    members: list[EtcdMember]
    root: Path

    @property
    def endpoints(self) -> list[str]:
        return [member.endpoint for member in self.members]

    @property
    def url(self) -> str:
        """The ``state:`` value of a config that uses this cluster."""
        return "etcd://" + ",".join(self.endpoints)

    @property
    def initial_cluster(self) -> str:
        return ",".join(f"{member.name}={member.peer_url}" for member in self.members)

    def start(self) -> None:
        for member in self.members:
            if not member.is_running():
                member.start(self.initial_cluster)
        self.wait_healthy()

    def stop(self) -> None:
        """Stop every member, each on its own: one that fails to stop does not spare the others."""
        for member in self.members:
            with suppress(Exception):
                member.stop()

    def kill(self, index: int) -> None:
        """SIGKILL one member."""
        self.members[index].stop(signal.SIGKILL)

    def restart(self, index: int) -> None:
        """Start a stopped member again with its data and wait until the cluster is healthy."""
        self.members[index].start(self.initial_cluster)
        self.wait_healthy()

    @contextmanager
    def quorum_lost(self) -> Iterator[EtcdMember]:
        """Two of three members are down inside the block (it yields the survivor); up after."""
        for member in self.members[1:]:
            member.stop(signal.SIGKILL)
        try:
            yield self.members[0]
        finally:
            self.start()

    def wait_healthy(self, within: float = HEALTHY_WITHIN) -> None:
        """Every member answers a quorum read, or the test fails with the members' logs."""
        deadline = time.monotonic() + within
        while True:
            done = self.etcdctl("endpoint", "health", check=False)
            if done.returncode == 0:
                return
            dead = [m.name for m in self.members if not m.is_running()]
            if dead or time.monotonic() > deadline:
                logs = "\n".join(member.log_tail() for member in self.members)
                pytest.fail(
                    f"the etcd cluster is not healthy (exited: {dead or 'none'}):\n"
                    f"{done.stdout}{done.stderr}\n{logs}",
                    pytrace=False,
                )
            time.sleep(0.1)

    def wipe(self) -> None:
        """Every member running and healthy, and not one key left."""
        self.start()
        self.etcdctl("del", "", "--from-key=true")

    def etcdctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        argv = [ETCDCTL, f"--endpoints={','.join(self.endpoints)}", "--command-timeout=2s", *args]
        env = {**os.environ, "ETCDCTL_API": "3"}
        done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=30)
        if check and done.returncode != 0:
            pytest.fail(f"{' '.join(argv)} exited {done.returncode}: {done.stderr}", pytrace=False)
        return done


@pytest.fixture(scope="session")
def etcd_cluster() -> Iterator[EtcdCluster]:
    """One 3-member etcd cluster for the session."""
    for binary in (ETCD, ETCDCTL, DIE_WITH_PARENT[0]):
        if not Path(binary).exists():
            pytest.fail(
                f"{binary} is missing: run `./run test`, which installs etcd", pytrace=False
            )
    root = Path(tempfile.mkdtemp(prefix="ha-test-etcd-", dir="/tmp"))
    try:
        cluster = start_etcd(root)
        try:
            yield cluster
        finally:
            cluster.stop()
    finally:
        shutil.rmtree(root, ignore_errors=True)


def start_etcd(root: Path) -> EtcdCluster:
    """Three members on free loopback ports, data under ``root``, all answering; stopped again
    (by PID) if any fails to start."""
    ports: set[int] = set()
    while len(ports) < 9:
        ports.add(free_port())
    it = iter(sorted(ports))
    members = [EtcdMember(f"m{i}", next(it), next(it), next(it), root / f"m{i}") for i in range(3)]
    cluster = EtcdCluster(members, root)
    try:
        cluster.start()
    except BaseException:
        cluster.stop()
        raise
    return cluster


@pytest.fixture
def etcd(etcd_cluster: EtcdCluster) -> EtcdCluster:
    """The session's cluster with all members up and an empty keyspace."""
    etcd_cluster.wipe()
    return etcd_cluster
