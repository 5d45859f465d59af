"""From SIGKILL of the leading orchestrator to the new leader's first action.

Three daemons share a real 3-member etcd cluster (Debian's etcd, loopback, started here) and
protect one demo site (two HTTP servers on 127.0.0.2 and 127.0.0.3, checked every 200 ms), with
the default lease TTL unless ``--lease-ttl``. Each run: SIGKILL the leader, then time until
another instance journals that it leads (``leader``: its first write as leader, right before it
resumes any runbook in flight); the killed one is started again as a follower for the next run.
The time comes from the journal entry's own timestamp, not from polling.

    .venv/bin/python -m bench.takeover               # median of 10 runs
    .venv/bin/python -m bench.takeover --runs 3

Not a test: CI never runs it.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from bench.summary import Figure, add_option, write
from ha.config import ClusterConfig
from tests.e2e.cluster_site import Orchestrators
from tests.e2e.site import Site
from tests.servers.etcd import start_etcd

CHECK_INTERVAL = 0.2  # the site's check interval (Site.write_config)
WITHIN = 120.0


def current_leader(trio: Orchestrators) -> str:
    """The instance that holds the leader key and journaled that it took charge."""
    found: list[str] = []

    def settled() -> bool:
        leader, leaders = trio.leader(), trio.leaders()
        if leader is None or not leaders or leaders[-1] != leader:
            return False
        found.append(leader)
        return True

    trio.wait_until(settled, WITHIN, "one instance leads")
    return found[-1]


def one_run(trio: Orchestrators) -> tuple[str, str, float]:
    """Kill the leader; (killed, new leader, seconds to the new leader's first write)."""
    killed = current_leader(trio)
    before = len(trio.leaders())
    killed_at = time.time()
    trio.kill(killed)
    trio.wait_until(lambda: len(trio.leaders()) > before, WITHIN, "another instance leads")
    event = [e for e in trio.journal() if e["kind"] == "leader"][before]
    trio.runners[killed].start_daemon()
    return killed, event["data"]["instance"], event["ts"] - killed_at


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.takeover",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument(
        "--lease-ttl", type=int, default=int(ClusterConfig().lease_ttl), help="seconds"
    )
    add_option(parser)
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="ha-bench-takeover-"))
    for part in ("etcd", "site"):
        (scratch / part).mkdir()
    try:
        etcd = start_etcd(scratch / "etcd")
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    site = Site(scratch / "site")
    trio = Orchestrators(site, etcd)
    times: list[float] = []
    try:
        site.start_servers()
        site.write_config()
        trio.write_configs(lease_ttl=f"{args.lease_ttl}s")
        trio.start()
        for run in range(1, args.runs + 1):
            killed, leader, seconds = one_run(trio)
            times.append(seconds)
            print(f"run {run}: {killed} killed, {leader} leads after {seconds:.2f} s", flush=True)
    finally:
        trio.stop()
        site.close()
        etcd.stop()
        shutil.rmtree(scratch, ignore_errors=True)
    median = statistics.median(times)
    bound = args.lease_ttl + CHECK_INTERVAL
    print(
        f"takeover, lease TTL {args.lease_ttl} s: median {median:.2f} s, min {min(times):.2f} s,"
        f" max {max(times):.2f} s over {len(times)} runs (bound: TTL + one check interval,"
        f" {bound:g} s)"
    )
    write(
        args.summary,
        Figure(
            f"takeover after SIGKILL of the leader, median of {len(times)}",
            f"{median:.2f} s",
            f"{bound:g} s",
            median <= bound,
        ),
    )


if __name__ == "__main__":
    main()
