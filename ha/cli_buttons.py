"""The push-button commands of ``ha``: send a command to the daemon's API and, with ``--wait``,
follow it until it ends (the runbook, the test's result, the group report). Ctrl-C stops
following, not the command: ``ApiClient.follow`` says what goes on in the daemon."""

from __future__ import annotations

import argparse
from typing import Any

from ha.cli_common import EXIT_FAILED, EXIT_OK, _load
from ha.client import ApiClient, Verdict, goes_on, group_ended, runbook_ended, test_ended
from ha.format import (
    AR_RESULTS,
    event_line,
    plan_lines,
    report_message,
    test_history,
    test_plan,
)


def cmd_push(args: argparse.Namespace) -> int:
    config = _load(args)
    if args.command == "test" and args.dry_run:
        print("\n".join(test_plan(config, args.name)))
        return EXIT_OK
    client = ApiClient(config)
    if args.command == "test":
        return _test(client, args)
    body = {
        "dry_run": args.dry_run,
        "force": getattr(args, "force", False),
        "force_promotion": getattr(args, "force_promotion", False),
    }
    if getattr(args, "active", None):
        body["active"] = args.active
    answer = client.request("POST", f"/v1/scenarios/{args.name}/{args.command}", body)
    if args.dry_run:
        print("\n".join(plan_lines(answer)))
        return EXIT_OK
    runbook = answer.get("runbook")
    print(f"accepted: {answer['message']}" + (f" (runbook {runbook})" if runbook else ""))
    if getattr(args, "wait", False) and runbook:
        going_on = goes_on(args.command, scenario=args.name)
        ok = client.follow(
            answer["command"], f"&runbook={runbook}", _printing(runbook_ended), going_on
        )
        return EXIT_OK if ok else EXIT_FAILED
    return EXIT_OK


def _test(client: ApiClient, args: argparse.Namespace) -> int:
    if args.history:
        print("\n".join(test_history(client.history(args.name, AR_RESULTS))))
        return EXIT_OK
    answer = client.request("POST", f"/v1/scenarios/{args.name}/test", {})
    print(f"accepted: {answer['message']}")
    if not args.wait:
        return EXIT_OK

    def verdict(event: dict[str, Any]) -> bool | None:
        if event["kind"].startswith("ar_"):
            print(event_line(event), flush=True)
        return test_ended(event)

    going_on = goes_on("test", scenario=args.name)
    ok = client.follow(answer["command"], f"&scenario={args.name}", verdict, going_on)
    return EXIT_OK if ok else EXIT_FAILED


def _printing(verdict: Verdict) -> Verdict:
    def printed(event: dict[str, Any]) -> bool | None:
        print(event_line(event), flush=True)
        return verdict(event)

    return printed


def cmd_group(args: argparse.Namespace) -> int:
    config = _load(args)
    client = ApiClient(config)
    body: dict[str, object] = {"dry_run": args.dry_run}
    if args.active:
        body["active"] = args.active
    answer = client.request("POST", f"/v1/groups/{args.name}/{args.action}", body)
    if args.dry_run:
        print(f"dry run: group {args.action} {args.name} would, wave by wave:")
        for row in answer["plan"]:
            print(f"  wave {row['wave']}: {row['scenario']}: {row['plan']}")
        return EXIT_OK
    print(f"accepted: {answer['message']}")
    if not args.wait or args.action in ("pause", "resume"):  # done once accepted
        return EXIT_OK
    ended = group_ended(args.name, cancelling=args.action == "cancel")
    group = config.group(args.name)
    members = set(group.scenarios) if group is not None else set()

    def verdict(event: dict[str, Any]) -> bool | None:
        if event["kind"].startswith("group_") and event["data"].get("group") == args.name:
            shown = event
            if event["kind"] == "group_report":  # summed up for a large group
                order = group.scenarios if group is not None else None
                shown = {**event, "message": report_message(event, order)}
            print(event_line(shown), flush=True)
        elif event["kind"] in AR_RESULTS and event["scenario"] in members:
            print(event_line(event), flush=True)  # a group test: each member's result
        return ended(event)

    going_on = goes_on(args.action, group=args.name)
    return EXIT_OK if client.follow(answer["command"], "", verdict, going_on) else EXIT_FAILED


def cmd_rearm(args: argparse.Namespace) -> int:
    answer = ApiClient(_load(args)).request("POST", "/v1/rearm", {})
    print(f"accepted: {answer['message']}")
    return EXIT_OK
