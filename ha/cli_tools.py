"""``ha`` commands beside the daemon's push-buttons: machines and discovery, DNS, playbooks,
reports and tokens, the schema, the state diagram, the demo."""

from __future__ import annotations

import argparse
import asyncio
import json
import shlex
import sys
from pathlib import Path

from ha.cli_common import EXIT_FAILED, EXIT_OK, _load
from ha.client import ApiClient
from ha.config import Config
from ha.errors import PlaybookError, RequestError


def cmd_reports(args: argparse.Namespace) -> int:
    from urllib.parse import urlencode

    filters = {
        "report": "tests" if args.tests else "journal",
        "format": args.format,
        "scenario": args.scenario,
        "group": args.group,
        "since": args.since,
        "until": args.until,
    }
    query = urlencode({key: value for key, value in filters.items() if value})
    answer = ApiClient(_load(args)).request("GET", f"/v1/reports?{query}", timeout=120)
    text = answer if isinstance(answer, str) else json.dumps(answer, indent=2) + "\n"
    if args.output:
        Path(args.output).write_text(text)
    else:
        sys.stdout.write(text)
    return EXIT_OK


def cmd_cluster(args: argparse.Namespace) -> int:
    from ha.format import cluster_lines

    answer = ApiClient(_load(args)).request("GET", "/v1/cluster")
    if args.json:
        print(json.dumps(answer, indent=2))
    else:
        print("\n".join(cluster_lines(answer)))
    return EXIT_OK


def cmd_token(args: argparse.Namespace) -> int:
    from ha.token import new_token, token_digest

    token = new_token()
    print(token)
    print(
        "# api.tokens entry (the daemon keeps only the hash): "
        f"{{name: {args.name}, role: {args.role}, sha256: {token_digest(token)}}}"
    )
    return EXIT_OK


def cmd_play(args: argparse.Namespace) -> int:
    from ha.playbook import preflight
    from ha.playbook.model import load_playbook, with_lines
    from ha.playbook.run import Runner

    playbook = load_playbook(args.file)
    if args.list_tasks:
        print("\n".join(playbook.task_lines()))
        return EXIT_OK
    start = playbook.start_of(args.start_at_task) if args.start_at_task is not None else (0, 0)
    extra = dict(args.extra)
    client = ApiClient(_load(args))
    unknown = preflight.problems(playbook, extra, client.request("GET", "/v1/status"), start)
    if unknown:
        raise PlaybookError(with_lines(args.file, unknown))
    runner = Runner(
        client,
        check=args.check,
        yes=args.yes,
        say=lambda line: print(line, flush=True),
        ask=_confirm,
    )
    if runner.run(playbook, extra, start):
        return EXIT_OK
    stopped = runner.stopped_at
    if stopped is not None and not args.check:
        again = f"ha play {shlex.quote(str(args.file))} --start-at-task {shlex.quote(stopped.name)}"
        print(f"to go on from the failed task once its cause is fixed: {again}", flush=True)
    return EXIT_FAILED


def _confirm(prompt: str) -> bool:
    if not sys.stdin.isatty():
        print(f"  {prompt} cannot ask: no terminal (use --yes)", flush=True)
        return False
    return input(f"  {prompt} [y/N] ").strip().lower() in ("y", "yes")


def cmd_vm(args: argparse.Namespace) -> int:
    from ha.machines import vm_command

    return asyncio.run(vm_command(_load(args), args))


def cmd_discover(args: argparse.Namespace) -> int:
    import yaml

    from ha.machines import discover_command

    tags = dict(item.split("=", 1) if "=" in item else (item, "*") for item in args.tag)
    drafts = asyncio.run(discover_command(_load(args), args.provider, args.host, tags))
    print(yaml.safe_dump(drafts, sort_keys=False), end="")
    return EXIT_OK


def cmd_dns(args: argparse.Namespace) -> int:
    from ha.redirect import Target
    from ha.redirect.dns import show

    config = _load(args)
    scenario = next((s for s in config.scenarios if s.name == args.name), None)
    if scenario is None:
        raise RequestError(f"no scenario named {args.name!r}")
    target = Target(scenario.name, scenario.production.address, scenario.replica.address)
    entries = [e.dns for e in scenario.redirect if e.dns is not None]

    async def lines() -> list[str]:
        found: list[str] = []
        for entry in entries:
            found += await show(target, entry, config.dns_servers)
        return found

    print("\n".join(asyncio.run(lines())) or f"{args.name}: no dns redirection configured")
    return EXIT_OK


def cmd_schema(args: argparse.Namespace) -> int:

    print(json.dumps(Config.model_json_schema(), indent=2))
    return EXIT_OK


def cmd_diagram(args: argparse.Namespace) -> int:
    from ha.machine import diagram

    print(diagram())
    return EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    from ha.demo import run_demo

    return run_demo(Path(args.dir))
