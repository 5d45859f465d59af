"""The ``ha`` command: validate a config, run the daemon, and drive it through its local API."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ha.cli_buttons import cmd_group, cmd_push, cmd_rearm
from ha.cli_common import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_UNAVAILABLE,
    EXIT_USAGE,
    _config_path,
    _load,
)
from ha.cli_tools import (
    cmd_cluster,
    cmd_demo,
    cmd_diagram,
    cmd_discover,
    cmd_dns,
    cmd_play,
    cmd_reports,
    cmd_schema,
    cmd_token,
    cmd_vm,
)
from ha.client import ApiClient, ApiError, ApiUnavailable, Interrupted
from ha.config import load_config
from ha.errors import ConfigError, HAError, PlaybookError
from ha.format import event_line, proposal_lines, status_of, status_table
from ha.groups_config import GROUP_BUTTONS
from ha.logs import configure_logging

PUSH_BUTTONS = {
    "run": "start protecting a scenario (checks on, automatic failover as configured)",
    "stop": "stop protecting a scenario (checks off, no action)",
    "failover": "fail over to the replica now (production is down)",
    "switchover": "planned, graceful move to the replica (both sides may be up)",
    "failback": "make production active again after a failover or switchover",
    "pause": "maintenance: keep checking and reporting, take no automatic action",
    "resume": "end maintenance: automatic actions again",
    "abort": "give up a blocked runbook; the active side stays as it is",
    "recover": "split or blocked: keep one side active, fence the other, redirect, verify",
    "test": "Assured Recovery: rehearse recovery on the replica now, without touching production",
}


def cmd_validate(args: argparse.Namespace) -> int:
    path = args.file or _config_path(args)
    config = load_config(path)
    counts = ", ".join(
        f"{len(items)} {noun if len(items) == 1 else noun + 's'}"
        for noun, items in (
            ("scenario", config.scenarios),
            ("group", config.groups),
            ("provider", config.providers),
        )
    )
    print(f"{path}: valid ({counts})")
    return EXIT_OK


def cmd_daemon(args: argparse.Namespace) -> int:
    from ha.service import serve

    serve(_load(args))
    return EXIT_OK


def cmd_status(args: argparse.Namespace) -> int:
    data = ApiClient(_load(args)).request("GET", "/v1/status")
    if args.names:
        data = status_of(data, args.names)
    print(json.dumps(data, indent=2) if args.json else status_table(data))
    return EXIT_OK


def cmd_events(args: argparse.Namespace) -> int:
    client = ApiClient(_load(args))
    query = "".join(
        f"&{key}={value}" for key in ("scenario", "group") if (value := getattr(args, key))
    )
    if args.follow:  # the event stream: the journal after --after, then each event as it comes
        events = client.stream(args.after, query)
    else:
        events = _journal(client, args.after, query)
    for event in events:
        print(json.dumps(event) if args.json else event_line(event), flush=True)
    return EXIT_OK


def _journal(client: ApiClient, after: int, query: str) -> Iterator[dict[str, Any]]:
    while True:
        found = client.request("GET", f"/v1/events?after={after}&limit=1000{query}")
        yield from found["events"]
        if len(found["events"]) < 1000:
            return
        after = found["events"][-1]["id"]


def cmd_proposals(args: argparse.Namespace) -> int:
    query = f"?scenario={args.name}" if args.name else ""
    data = ApiClient(_load(args)).request("GET", f"/v1/proposals{query}")
    print(json.dumps(data, indent=2) if args.json else "\n".join(proposal_lines(data)))
    return EXIT_OK


def _name_value(text: str) -> tuple[str, str]:
    name, equals, value = text.partition("=")
    if not equals or not name.isidentifier():
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    return name, value


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-c", "--config", help="config file (default: $HA_CONFIG, else ./ha.yaml)")
    parser = argparse.ArgumentParser(
        prog="ha", description="High-availability failover orchestrator."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser(
        "validate", parents=[common], help="check a config file; print every error with its path"
    )
    p.add_argument("file", type=Path, nargs="?", help="the config file (same as -c)")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser(
        "daemon", parents=[common], help="run the monitoring daemon (SIGTERM stops it)"
    )
    p.set_defaults(func=cmd_daemon)

    p = sub.add_parser("status", parents=[common], help="scenarios: state, active server, checks")
    p.add_argument(
        "names", nargs="*", metavar="NAME", help="only these scenarios (a group: with its members)"
    )
    p.add_argument("--json", action="store_true", help="print the API's JSON answer")
    p.set_defaults(func=cmd_status)

    for name, help_text in PUSH_BUTTONS.items():
        p = sub.add_parser(name, parents=[common], help=help_text)
        p.add_argument("name", help="scenario name")
        p.add_argument("--dry-run", action="store_true", help="print the steps it would take")
        if name == "recover":
            p.add_argument("--active", required=True, choices=["production", "replica"])
        if name == "test":
            p.add_argument("--history", action="store_true", help="past tests and their times")
            p.add_argument("--wait", action="store_true", help="follow the test until it ends")
        if name in ("failover", "switchover", "failback", "recover"):
            p.add_argument(
                "--force-promotion",
                action="store_true",
                help="databases: promote even above the lag bound (the journal records the lag)",
            )
            p.add_argument(
                "--force", action="store_true", help="even if the target side fails its checks"
            )
            p.add_argument("--wait", action="store_true", help="follow the runbook until it ends")
        p.set_defaults(func=cmd_push)

    p = sub.add_parser(
        "events", parents=[common], help="the journal: transitions, steps, checks, commands"
    )
    p.add_argument("--follow", "-f", action="store_true", help="keep printing new events")
    p.add_argument("--scenario", help="only this scenario")
    p.add_argument("--group", help="only this group's members and group events")
    p.add_argument("--after", type=int, default=0, help="only events after this id")
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.set_defaults(func=cmd_events)

    p = sub.add_parser(
        "reports", parents=[common], help="export the journal or the test history: CSV, JSON"
    )
    p.add_argument("--format", choices=["csv", "json"], default="json")
    p.add_argument("--tests", action="store_true", help="Assured Recovery test history")
    p.add_argument("--scenario", help="only this scenario")
    p.add_argument("--group", help="only this group's members and group events")
    p.add_argument("--since", help="from: ISO 8601 (2024-05-01T08:00), epoch, or ago (24h, 7d)")
    p.add_argument("--until", help="to: same forms")
    p.add_argument("--output", "-o", help="write to this file instead of stdout")
    p.set_defaults(func=cmd_reports)

    p = sub.add_parser("token", help="make an API token; print it and its config entry")
    p.add_argument("name", help="the token's name, journaled with each command it sends")
    p.add_argument("--role", choices=["viewer", "operator"], required=True)
    p.set_defaults(func=cmd_token)

    p = sub.add_parser(
        "group",
        parents=[common],
        help="run, stop, fail over, recover, pause a whole group; cancel its command in progress",
        description="Each member's command, wave by wave in dependency order (stop: in reverse);"
        " a member that fails stops the later waves, and the group report says member by"
        " member what happened. --dry-run shows each member's command, or why it needs none or"
        " would be refused.",
        epilog="actions: run, stop (protection on or off); failover, switchover (to the"
        " replicas); failback (to production); recover --active SIDE (keep that side active"
        " for every member: split or blocked members recover, the others move); test (Assured"
        " Recovery of every member at once); cancel (the command in progress starts no other"
        " member: those in flight finish their runbooks; --dry-run shows what it leaves);"
        " pause, resume (every member's automatic actions off for maintenance, or on again:"
        " nothing moves)",
    )
    p.add_argument("action", choices=GROUP_BUTTONS)
    p.add_argument("name", help="group name")
    p.add_argument("--active", choices=["production", "replica"], help="recover: the side to keep")
    p.add_argument("--dry-run", action="store_true", help="print the waves it would take")
    p.add_argument("--wait", action="store_true", help="follow until the group report")
    p.set_defaults(func=cmd_group)

    p = sub.add_parser(
        "proposals", parents=[common], help="what the daemon proposed or would have done, and why"
    )
    p.add_argument("name", nargs="?", help="only this scenario")
    p.add_argument("--json", action="store_true", help="print the API's JSON answer")
    p.set_defaults(func=cmd_proposals)

    p = sub.add_parser("play", parents=[common], help="run a playbook through the daemon's API")
    p.add_argument("file", type=Path, help="the playbook: YAML, a list of plays (playbooks/)")
    p.add_argument("--check", action="store_true", help="dry run: print every step, change nothing")
    p.add_argument("--yes", action="store_true", help="answer yes to every pause task")
    p.add_argument(
        "--start-at-task",
        metavar="NAME",
        help="begin at the task of this name (the tasks before it do not run)",
    )
    p.add_argument(
        "--list-tasks",
        action="store_true",
        help="print each play's tasks (and rollback), one line each; run nothing",
    )
    p.add_argument(
        "-e",
        "--extra",
        action="append",
        default=[],
        type=_name_value,
        metavar="NAME=VALUE",
        help="set a variable over the plays' vars (repeatable)",
    )
    p.set_defaults(func=cmd_play)

    p = sub.add_parser(
        "cluster", parents=[common], help="orchestrators on etcd: leader, lease, members, views"
    )
    p.add_argument("action", choices=["status"])
    p.add_argument("--json", action="store_true", help="print the API's JSON answer")
    p.set_defaults(func=cmd_cluster)

    p = sub.add_parser("rearm", parents=[common], help="re-arm a spent fleet-wide failover budget")
    p.set_defaults(func=cmd_rearm)

    p = sub.add_parser("vm", parents=[common], help="what a provider sees: list VMs, power")
    p.add_argument("provider", help="name of an entry under providers")
    p.add_argument("action", choices=["list", "state", "on", "off"])
    p.add_argument("machine", nargs="?", help="VM name, inventory path or id")
    p.add_argument("--host", help="list: only the VMs of this host or cluster")
    p.add_argument("--hard", action="store_true", help="off: cut the power (else a guest shutdown)")
    p.add_argument(
        "--force", action="store_true", help="on/off: even a machine that a scenario protects"
    )
    p.set_defaults(func=cmd_vm)

    p = sub.add_parser(
        "discover", parents=[common], help="print scenario YAML for machines not yet protected"
    )
    p.add_argument("provider", help="name of an entry under providers")
    p.add_argument("--host", help="vSphere/Hyper-V: only this host or cluster (one group for it)")
    p.add_argument(
        "--tag", action="append", default=[], metavar="KEY[=VALUE]", help="aws: instance tags"
    )
    p.set_defaults(func=cmd_discover)

    p = sub.add_parser("dns", parents=[common], help="what each DNS server answers for a scenario")
    p.add_argument("action", choices=["show"])
    p.add_argument("name", help="scenario name")
    p.set_defaults(func=cmd_dns)

    p = sub.add_parser("schema", help="print the config file's JSON Schema (for editors)")
    p.set_defaults(func=cmd_schema)

    p = sub.add_parser("diagram", help="print the scenario state machine (mermaid)")
    p.set_defaults(func=cmd_diagram)

    p = sub.add_parser(
        "demo",
        help="run the daemon on a local demo (127.0.0.2 and 127.0.0.3)",
        description="Run the daemon in the foreground protecting a local three-tier stack"
        " (demo-db, demo-app, demo-web: HTTP services on 127.0.0.2 with replicas on 127.0.0.3)"
        " as the group demo-stack (ordered, together). It prints what to try in another"
        " terminal; Ctrl-C stops it and its services. One demo per directory.",
    )
    p.add_argument(
        "--dir", default="ha-demo", help="working directory of the demo (default ./ha-demo)"
    )
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging("warning", "auto")  # on stderr: stdout is the command's answer
    try:
        code: int = args.func(args)
    except ConfigError as exc:
        playbook = isinstance(exc, PlaybookError)
        mine = playbook or args.command == "validate"  # its FILE is the config
        where = (getattr(args, "file", None) if mine else None) or _config_path(args)
        what = "playbook" if playbook else "configuration"
        print(f"{where}: invalid {what}", file=sys.stderr)
        for path, message in exc.errors:
            print(f"  {path}: {message}" if path else f"  {message}", file=sys.stderr)
        return EXIT_USAGE
    except ApiUnavailable as exc:
        print(f"ha: {exc}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    except Interrupted as exc:
        print(f"\nha: interrupted: {exc}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except ApiError as exc:
        print(f"ha: refused ({exc.status}): {exc.reason}", file=sys.stderr)
        return EXIT_FAILED
    except HAError as exc:
        print(f"ha: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader of stdout went away (`ha events | head`): stop quietly, as a shell tool
        # killed by SIGPIPE would, and keep the interpreter's last flush from failing again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 128 + signal.SIGPIPE
    return code
