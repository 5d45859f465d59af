"""The local demo: a small HTTP service on 127.0.0.2 (production) and 127.0.0.3 (replica),
protected by the daemon with its embedded defaults (SQLite state next to the config).

Each "machine" is a ``python -m http.server`` process; the demo's script provider powers them on
and off (``python -m ha.demo power on|off|status NAME DIR``), and a script redirector keeps the
address users should reach in ``active-address``.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

SERVERS = {"production": "127.0.0.2", "replica": "127.0.0.3"}
SCENARIO = "demo-web"


def _free_port(addresses: list[str]) -> int:
    for port in range(8080, 8180):
        try:
            for address in addresses:
                with socket.socket() as sock:
                    sock.bind((address, port))
        except OSError:
            continue
        return port
    raise SystemExit("demo: no free port between 8080 and 8180 on 127.0.0.2 and 127.0.0.3")


def _pid(directory: Path, name: str) -> int | None:
    try:
        pid = int((directory / f"{name}.pid").read_text())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return None
    return pid


def power(action: str, name: str, directory: Path) -> int:
    """The demo's machines: on, off, status (prints on/off)."""
    pid = _pid(directory, name)
    if action == "status":
        print("on" if pid else "off")
    elif action == "on" and pid is None:
        port = int((directory / "port").read_text())
        with (directory / f"{name}.log").open("ab") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "http.server", "--bind", SERVERS[name], str(port)],
                cwd=directory / name,
                stdout=log,
                stderr=log,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        (directory / f"{name}.pid").write_text(str(process.pid))
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                socket.create_connection((SERVERS[name], port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
    elif action == "off" and pid is not None:
        os.kill(pid, signal.SIGKILL)
        (directory / f"{name}.pid").unlink(missing_ok=True)
    return 0


def _free_api_port() -> int:
    for port in range(8470, 8570):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise SystemExit("demo: no free port between 8470 and 8570 on 127.0.0.1")


def write_config(directory: Path, port: int) -> Path:
    import yaml

    power_cmd = [sys.executable, "-m", "ha.demo", "power"]
    active = directory / "active-address"
    config = {
        "state": "ha-state.db",
        "api": {"port": _free_api_port(), "token_file": "ha-token"},
        "providers": {
            "demo": {
                "type": "script",
                "status": [*power_cmd, "status", "{machine}", str(directory)],
                "power_on": [*power_cmd, "on", "{machine}", str(directory)],
                "power_off": [*power_cmd, "off", "{machine}", str(directory)],
                "timeout": "10s",
            }
        },
        "scenarios": [
            {
                "name": SCENARIO,
                "production": {
                    "address": SERVERS["production"],
                    "machine": {"provider": "demo", "name": "production"},
                },
                "replica": {
                    "address": SERVERS["replica"],
                    "machine": {"provider": "demo", "name": "replica"},
                },
                "checks": [{"kind": "http", "port": port, "interval": "1s", "timeout": "500ms"}],
                "failover": {"mode": "automatic", "failures": 3, "hold_down": "1m"},
                "fence": True,
                "runbook": {"healthy_timeout": "20s", "step_timeout": "15s"},
                "redirect": [
                    {
                        "script": {
                            "set": ["sh", "-c", f'echo "$HA_ADDRESS" > {active}'],
                            "get": ["cat", str(active)],
                        }
                    }
                ],
            }
        ],
    }
    path = directory / "ha.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def run_demo(directory: Path) -> int:
    from ha.config import load_config
    from ha.service import serve

    directory = directory.resolve()
    directory.mkdir(parents=True, exist_ok=True)
    for name in SERVERS:
        power("off", name, directory)  # left over from a demo that was killed
    port = _free_port(list(SERVERS.values()))
    (directory / "port").write_text(str(port))
    for name in SERVERS:
        (directory / name).mkdir(exist_ok=True)
        (directory / name / "index.html").write_text(f"<h1>demo-web on {name}</h1>\n")
    active = directory / "active-address"
    if not active.exists():
        active.write_text(SERVERS["production"] + "\n")
    config_path = write_config(directory, port)
    config = load_config(config_path)
    for name in SERVERS:
        power("on", name, directory)
    ha = shutil.which("ha") or str(Path(sys.argv[0]).absolute())
    print(
        f"""
ha demo: scenario {SCENARIO}
  production  http://{SERVERS["production"]}:{port}/  (pid {_pid(directory, "production")})
  replica     http://{SERVERS["replica"]}:{port}/  (pid {_pid(directory, "replica")})
  users are sent to the address in {active}

In another terminal:
  export HA_CONFIG={config_path}
  {ha} status                      # state, active server, check results
  kill -9 $(cat {directory}/production.pid)   # production dies: watch the failover here
  {ha} events                      # the journal: every transition and step
  {ha} failback {SCENARIO}         # power production on again and return to it
  {ha} switchover {SCENARIO} --dry-run

The daemon runs below; Ctrl-C stops it and the demo's servers (run again to resume).
""",
        flush=True,
    )
    try:
        serve(config)
    finally:
        for name in SERVERS:
            power("off", name, directory)
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "power":
        sys.exit(power(sys.argv[2], sys.argv[3], Path(sys.argv[4])))
    sys.exit("usage: python -m ha.demo power on|off|status NAME DIR")
