"""The local demo: a three-tier stack (db, app, web), each tier a small HTTP service on 127.0.0.2
(production) and one on 127.0.0.3 (replica), protected by the daemon with its embedded defaults
(SQLite state next to the config). The tiers form the group ``demo-stack``: ordered (db, then
app, then web) and ``together`` (any member dies: every member fails over, wave by wave).

Each "machine" is a ``python -m http.server`` process serving a directory; the demo's script
provider powers them on and off and snapshots their directories (``python -m ha.demo``), and a
script redirector keeps the address users of each tier should reach in ``TIER.active``.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import sys
import time
from pathlib import Path

SERVERS = {"production": "127.0.0.2", "replica": "127.0.0.3"}
TIERS = ("db", "app", "web")  # the order the stack fails over and back in
GROUP = "demo-stack"
STATE = "ha-state.db"  # next to the config
EXAMPLES = Path(__file__).resolve().parent.parent / "playbooks"
USAGE = (
    "usage: python -m ha.demo power on|off|status MACHINE DIR"
    " | python -m ha.demo snapshot|revert|delete MACHINE SNAPSHOT DIR"
)


def scenario(tier: str) -> str:
    return f"demo-{tier}"


def _free_ports(addresses: list[str], count: int = 1) -> list[int]:
    """``count`` ports between 8080 and 8179 that every one of ``addresses`` has free."""
    found: list[int] = []
    for port in range(8080, 8180):
        try:
            for address in addresses:
                with socket.socket() as sock:
                    sock.bind((address, port))
        except OSError:
            continue
        found.append(port)
        if len(found) == count:
            return found
    raise SystemExit(
        f"demo: fewer than {count} free ports between 8080 and 8180 on {', '.join(addresses)}"
    )


def _free_port(addresses: list[str]) -> int:
    return _free_ports(addresses)[0]


def add_machine(directory: Path, name: str, address: str, port: int, page: str) -> None:
    """A machine of the demo: the directory it serves (``page`` as its index) and where it
    listens. Powered off until ``power("on", ...)``."""
    (directory / name).mkdir(exist_ok=True)
    (directory / name / "index.html").write_text(page)
    (directory / f"{name}.listen").write_text(f"{address} {port}\n")


def _pid(directory: Path, name: str) -> int | None:
    """The machine's process, or None when it is off: no such process, or one that was killed
    and is a zombie now that its last thread has ended (its parent, the demo, has not waited for
    it; a killed server's other threads still hold its listening socket for a moment)."""
    try:
        pid = int((directory / f"{name}.pid").read_text())
        os.kill(pid, 0)
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, ValueError, IndexError):
        return None
    if fields[0] != "Z":
        return pid
    try:
        reaped, _ = os.waitpid(pid, os.WNOHANG)  # ours: reaped once every thread has ended
    except ChildProcessError:
        reaped = pid if int(fields[17]) <= 1 else 0  # another's: its number of threads
    return None if reaped == pid else pid


def power(action: str, name: str, directory: Path) -> int:
    """The demo's machines: on, off, status (prints on/off)."""
    pid = _pid(directory, name)
    if action == "status":
        print("on" if pid else "off")
    elif action == "on" and pid is None:
        address, port = (directory / f"{name}.listen").read_text().split()
        served = str(directory / name)
        argv = [sys.executable, "-m", "http.server", "--bind", address, "--directory", served, port]
        with (directory / f"{name}.log").open("ab") as log:
            streams = [
                (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                (os.POSIX_SPAWN_DUP2, log.fileno(), 1),
                (os.POSIX_SPAWN_DUP2, log.fileno(), 2),
            ]
            # Not a Popen: nothing here waits for a machine; one killed meanwhile is reaped
            # when _pid finds it a zombie.
            pid = os.posix_spawn(
                sys.executable, argv, os.environ, file_actions=streams, setsid=True
            )
        (directory / f"{name}.pid").write_text(str(pid))
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                socket.create_connection((address, int(port)), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
    elif action == "off" and pid is not None:
        os.kill(pid, signal.SIGKILL)
        (directory / f"{name}.pid").unlink(missing_ok=True)
    return 0


def snapshot(action: str, name: str, snap: str, directory: Path) -> int:
    """A snapshot of a machine is a copy of the directory it serves: take (prints its id),
    revert to, delete."""
    taken = directory / "snapshots" / f"{name}@{snap}"
    if action == "snapshot":
        shutil.copytree(directory / name, taken)
        print(snap)
    elif not taken.is_dir():
        print(f"demo: machine {name} has no snapshot {snap}", file=sys.stderr)
        return 1
    elif action == "revert":  # in place: a running machine keeps serving its directory
        for entry in (directory / name).iterdir():
            if entry.is_dir():
                shutil.rmtree(entry)
            else:
                entry.unlink()
        shutil.copytree(taken, directory / name, dirs_exist_ok=True)
    else:
        shutil.rmtree(taken)
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


def write_config(directory: Path, ports: dict[str, int]) -> Path:
    import yaml

    demo = [sys.executable, "-m", "ha.demo"]
    config = {
        "state": STATE,
        "api": {"port": _free_api_port(), "token_file": "ha-token"},
        "providers": {
            "demo": {
                "type": "script",
                "status": [*demo, "power", "status", "{machine}", str(directory)],
                "power_on": [*demo, "power", "on", "{machine}", str(directory)],
                "power_off": [*demo, "power", "off", "{machine}", str(directory)],
                "snapshot": [*demo, "snapshot", "{machine}", "{snapshot}", str(directory)],
                "revert": [*demo, "revert", "{machine}", "{snapshot}", str(directory)],
                "delete_snapshot": [*demo, "delete", "{machine}", "{snapshot}", str(directory)],
                "timeout": "10s",
            }
        },
        "scenarios": [
            {
                "name": scenario(tier),
                **{side: _server(tier, side) for side in SERVERS},
                "checks": [{"kind": "http", "port": ports[tier], "timeout": "500ms"}],
                "fence": True,
                "runbook": {"healthy_timeout": "20s", "step_timeout": "15s"},
                "redirect": [
                    {
                        "script": {
                            "set": ["sh", "-c", f'echo "$HA_ADDRESS" > {_active(directory, tier)}'],
                            "get": ["cat", str(_active(directory, tier))],
                        }
                    }
                ],
            }
            for tier in TIERS
        ],
        "groups": [
            {
                "name": GROUP,
                "scenarios": [scenario(tier) for tier in TIERS],
                "ordered": True,
                "failover": "together",
                "defaults": {
                    "interval": "1s",
                    "failover": {"mode": "automatic", "failures": 3, "hold_down": "1m"},
                    "assured_recovery": {},
                },
            }
        ],
    }
    path = directory / "ha.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def _server(tier: str, side: str) -> dict[str, object]:
    return {"address": SERVERS[side], "machine": {"provider": "demo", "name": f"{tier}-{side}"}}


def _active(directory: Path, tier: str) -> Path:
    """The address users of the tier are sent to (the demo's redirection)."""
    return directory / f"{tier}.active"


def _commands(ha: str, config_path: Path, directory: Path) -> str:
    """What to try in another terminal, each command with what it shows."""
    commands = [
        (f"export HA_CONFIG={config_path}", ""),
        (f"{ha} status", "the group's rollup, each member's state and checks"),
        (f"kill -9 $(cat {directory}/web-production.pid)", "web dies: the stack fails over"),
        (f"{ha} events", "the journal: every transition and step, wave by wave"),
        (f"{ha} group failback {GROUP} --wait", "production on again, back in waves"),
        (f"{ha} group switchover {GROUP} --dry-run", "what a switchover would do"),
        (f"{ha} test demo-web --wait", "rehearse recovery on the replica"),
    ]
    if EXAMPLES.is_dir():  # a source checkout: its example playbooks name the demo's group
        commands.append((f"{ha} play {EXAMPLES / 'dr-drill.yaml'} --check", "a playbook's plan"))
    width = max(len(command) for command, _ in commands)
    return "\n".join(
        f"  {command:<{width}}  # {what}" if what else f"  {command}" for command, what in commands
    )


def _machines() -> list[str]:
    return [f"{tier}-{side}" for tier in TIERS for side in SERVERS]


def run_demo(directory: Path) -> int:
    from ha.service import sole_daemon

    directory = directory.resolve()
    directory.mkdir(parents=True, exist_ok=True)
    with sole_daemon(directory / STATE):  # a demo running there already keeps its machines
        return _run_demo(directory)


def _run_demo(directory: Path) -> int:
    from ha.config import load_config
    from ha.service import run_service

    for name in _machines():
        if (directory / f"{name}.listen").exists():
            power("off", name, directory)  # left over from a demo that was killed
    ports = dict(zip(TIERS, _free_ports(list(SERVERS.values()), len(TIERS)), strict=True))
    for tier in TIERS:
        for side, address in SERVERS.items():
            page = f"<h1>{scenario(tier)} on {side}</h1>\n"
            add_machine(directory, f"{tier}-{side}", address, ports[tier], page)
        if not _active(directory, tier).exists():
            _active(directory, tier).write_text(SERVERS["production"] + "\n")
    config_path = write_config(directory, ports)
    config = load_config(config_path)
    for name in _machines():
        power("on", name, directory)
    ha = shutil.which("ha") or str(Path(sys.argv[0]).absolute())
    tiers = "\n".join(
        f"  {scenario(tier):<9} production http://{SERVERS['production']}:{ports[tier]}/"
        f"  replica http://{SERVERS['replica']}:{ports[tier]}/"
        for tier in TIERS
    )
    print(
        f"""
ha demo: group {GROUP}, each member a production and a replica (an HTTP service each)
{tiers}
  the members fail over in waves (db, then app, then web), all of them when any one dies;
  users of each are sent to the address in {directory}/TIER.active

In another terminal:
{_commands(ha, config_path, directory)}

The daemon runs below; Ctrl-C stops it and the demo's servers (run again to resume).
""",
        flush=True,
    )
    try:
        run_service(config)
    finally:
        for name in _machines():
            power("off", name, directory)
    return 0


if __name__ == "__main__":
    args = sys.argv[1:]
    if len(args) == 4 and args[0] == "power" and args[1] in ("on", "off", "status"):
        sys.exit(power(args[1], args[2], Path(args[3])))
    if len(args) == 4 and args[0] in ("snapshot", "revert", "delete"):
        sys.exit(snapshot(args[0], args[1], args[2], Path(args[3])))
    sys.exit(USAGE)
