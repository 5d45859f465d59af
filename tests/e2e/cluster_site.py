"""Three orchestrators on one etcd cluster, protecting one :class:`Site`.

Each orchestrator is a real daemon subprocess with its own directory (config, API port, token);
they share the site's servers, providers and redirection, and the state in etcd. What they wrote
is read straight from etcd with etcdctl, as an operator could.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import yaml

from tests.e2e.site import NAME, DaemonRunner, Site

if TYPE_CHECKING:
    from tests.servers.etcd import EtcdCluster

NAMES = ("a", "b", "c")


class Orchestrators:
    def __init__(self, site: Site, etcd: EtcdCluster, names: tuple[str, ...] = NAMES) -> None:
        self.site = site
        self.etcd = etcd
        self.runners: dict[str, DaemonRunner] = {}
        for name in names:
            (site.dir / name).mkdir(exist_ok=True)
            self.runners[name] = DaemonRunner(site.dir / name)

    def write_configs(
        self,
        lease_ttl: str = "3s",
        change: Callable[[str, dict[str, Any]], None] | None = None,
    ) -> None:
        """Each orchestrator's config: the site's, on etcd, under its own name and API port;
        ``change(name, config)`` may alter one."""
        for name, runner in self.runners.items():
            config = yaml.safe_load(self.site.config_path.read_text())
            config["state"] = self.etcd.url
            config["cluster"] = {"name": name, "lease_ttl": lease_ttl}
            config["api"]["port"] = runner.api_port
            if change is not None:
                change(name, config)
            runner.config_path.write_text(yaml.safe_dump(config, sort_keys=False))

    def start(self) -> None:
        """Every orchestrator, once both servers answer."""
        for side in ("production", "replica"):
            assert self.site.pid(side) is not None, f"the {side} server did not start"
        for runner in self.runners.values():
            runner.start_daemon()

    def stop(self) -> None:
        for runner in self.runners.values():
            runner.stop()

    def kill(self, name: str) -> None:
        assert self.runners[name].stop_daemon(signal.SIGKILL) == -signal.SIGKILL

    def production(self, sig: signal.Signals) -> None:
        """Signal the production server (SIGSTOP: hung, SIGKILL: dead)."""
        pid = self.site.pid("production")
        assert pid is not None, "the production server is not running"
        os.kill(pid, sig)

    def alive(self) -> list[DaemonRunner]:
        return [r for r in self.runners.values() if r.daemon is not None]

    # What etcd holds.

    def _values(self, key: str, *, prefix: bool) -> list[str]:
        args = ["get", key, "--print-value-only", *(["--prefix"] if prefix else [])]
        done = self.etcd.etcdctl(*args, check=False)
        return [line for line in done.stdout.splitlines() if line.strip()]

    def leader(self) -> str | None:
        found = self._values("/ha/leader", prefix=False)
        return found[0] if found else None

    def journal(self) -> list[dict[str, Any]]:
        events = [json.loads(v) for v in self._values("/ha/journal/events/", prefix=True)]
        return sorted(events, key=lambda e: e["id"])

    def state(self, name: str = NAME) -> tuple[str, str]:
        found = self._values(f"/ha/scenarios/{name}", prefix=False)
        if not found:
            return ("", "")
        record = json.loads(found[0])
        return (record["state"], record["active"])

    def transitions(self) -> list[str]:
        return [e["message"].split(" (")[0] for e in self.journal() if e["kind"] == "transition"]

    def steps(self, kind: str = "step_done") -> list[str]:
        return [e["step"] for e in self.journal() if e["kind"] == kind]

    def leaders(self) -> list[str]:
        """Who took charge, in order (the ``leader`` events)."""
        return [e["data"]["instance"] for e in self.journal() if e["kind"] == "leader"]

    def tenures(self) -> list[str]:
        """Who led, in order: an instance that took charge again after its lease lapsed for a
        moment (a loaded machine) without another leading in between counts once."""
        tenures: list[str] = []
        for leader in self.leaders():
            if not tenures or tenures[-1] != leader:
                tenures.append(leader)
        return tenures

    # Waiting.

    def wait_until(self, condition: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition():
                return
            for name, runner in self.runners.items():
                if runner.daemon is not None and runner.daemon.poll() is not None:
                    raise AssertionError(
                        f"daemon {name} exited while waiting until {what}:\n{runner.log()[-3000:]}"
                    )
            time.sleep(0.1)
        logs = "\n".join(f"--- {n}:\n{r.log()[-2000:]}" for n, r in self.runners.items())
        raise AssertionError(f"not within {timeout}s: {what}\n{logs}")

    def wait_leader(self, timeout: float = 30, other_than: str | None = None) -> str:
        """The instance that took charge (journaled it), once one has."""
        found: list[str] = []

        def taken() -> bool:
            leader = self.leader()
            if leader is None or leader == other_than or leader not in self.leaders():
                return False
            found.append(leader)
            return True

        what = "an instance leads" + (f" other than {other_than}" if other_than else "")
        self.wait_until(taken, timeout, what)
        return found[-1]
