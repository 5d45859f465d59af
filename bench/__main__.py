"""Every benchmark, one after the other, then one table of their headline figures and targets.

    .venv/bin/python -m bench                 # the issues' runs: ~18 minutes (a 10-minute soak)
    .venv/bin/python -m bench --quick         # fewer runs and a 1-minute soak: ~5 minutes
    .venv/bin/python -m bench --only failover dns_redirect

Each benchmark runs as its own process and prints its own table as it goes (see bench/README.md
for what each measures); a benchmark that fails is reported in the table and the others still
run. The failure lab (failover) needs root. Not a test: CI never runs it.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.summary import Figure, read, table

FULL: dict[str, list[str]] = {
    "failover": ["--runs", "20", "--soak", "600"],
    "monitor_scale": [],
    "dns_redirect": [],
    "group_failover": [],
    "db_failover": ["--runs", "10"],
    "takeover": [],
}
QUICK: dict[str, list[str]] = {
    "failover": ["--runs", "5", "--soak", "60"],
    "monitor_scale": ["--scenarios", "1000"],
    "dns_redirect": ["--scenarios", "1000"],
    "group_failover": ["--members", "1", "100"],
    "db_failover": ["--runs", "3"],
    "takeover": ["--runs", "3"],
}


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="fewer runs, a 1-minute soak")
    parser.add_argument("--only", nargs="+", choices=list(FULL), help="these benchmarks only")
    args = parser.parse_args()
    plan = QUICK if args.quick else FULL
    names = args.only or list(plan)
    print(f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.1f} at start", flush=True)
    with tempfile.TemporaryDirectory(prefix="ha-bench-") as scratch:
        summary = Path(scratch) / "figures.jsonl"
        failed: list[Figure] = []
        for name in names:
            print(f"\n== bench.{name} {' '.join(plan[name])}", flush=True)
            start = time.monotonic()
            argv = [sys.executable, "-m", f"bench.{name}", *plan[name], "--summary", str(summary)]
            code = subprocess.call(argv)
            print(f"== bench.{name}: {time.monotonic() - start:.0f} s, exit {code}", flush=True)
            if code != 0:
                failed.append(Figure(f"bench.{name}", f"exit {code}", "exit 0", False))
        print(f"\n{table(read(summary) + failed)}")


if __name__ == "__main__":
    main()
