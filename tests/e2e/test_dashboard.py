"""The dashboard in a real headless Chromium (Debian's, driven by Playwright): it lists the
scenarios, a push-button failover behind its confirmation changes the state shown, the runbook
view follows the event stream, and a viewer token sees no buttons. Screenshots are kept in the
test's tmp dir."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import BrowserContext, Page, Response, expect, sync_playwright

from tests.e2e.api_site import ApiFleet
from tests.e2e.full_disk import FULL, empty, fill, small_disk, state_on

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[BrowserContext]:
    if not CHROMIUM.exists():
        pytest.fail(
            f"no Chromium at {CHROMIUM}: the dashboard tests need Debian's chromium"
            " (`apt-get install chromium`, as `./run test` does)"
        )
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            tmp_path / "chromium-profile",
            executable_path=CHROMIUM,
            headless=True,
            args=ARGS,
            viewport={"width": 1366, "height": 900},
        )
        try:
            yield context
        finally:
            context.close()


PAIR = [{"name": "pair", "scenarios": ["s1", "s2"], "ordered": True}]


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[ApiFleet]:
    fleet = ApiFleet(tmp_path, 2)
    try:
        active = f"{fleet.dir}/{{name}}.active"
        slow_redirect = {  # a second to redirect: the runbook view must follow it live
            "set": ["sh", "-c", f'sleep 1; echo "$HA_ADDRESS" > {active}'],
            "get": ["sh", "-c", f"cat {active} 2>/dev/null || true"],
        }
        fleet.write_config(
            failover={"mode": "manual"}, groups=PAIR, redirect=[{"script": slow_redirect}]
        )
        fleet.start_daemon()
        yield fleet
    finally:
        fleet.stop()


def log_in(page: Page, fleet: ApiFleet, token: str) -> None:
    page.goto(fleet.base + "/")
    page.fill("#token", token)
    page.click("#login button[type=submit]")
    expect(page.locator("#live")).to_have_text("live", timeout=10_000)


def test_a_push_button_failover_live(
    browser: BrowserContext, fleet: ApiFleet, tmp_path: Path
) -> None:
    page = browser.new_page()
    runbook_reads: list[Response] = []
    page.on("response", lambda r: runbook_reads.append(r) if "runbook=" in r.url else None)
    log_in(page, fleet, fleet.operator)
    rows = page.locator("tr[data-scenario]")
    expect(rows).to_have_count(2)
    expect(page.locator("tr[data-scenario=s1] .state")).to_have_text("running")
    expect(page.locator("tr[data-scenario=s1] .active")).to_have_text("production 127.0.0.2")
    expect(page.locator("tr[data-group=pair] .state")).to_have_text("protected")
    page.screenshot(path=tmp_path / "overview.png", full_page=True)

    fleet.kill("s1")
    fleet.wait_until(
        lambda: fleet.call("GET", "/v1/scenarios/s1").json()["production"]["dead"], 10, "dead"
    )
    page.click("a[href='#/scenario/s1']")
    expect(page.locator(".scenario .head")).to_contain_text("production dead", timeout=10_000)
    page.click("button[data-action=failover]")
    dialog = page.locator("#confirm")
    expect(dialog.locator("#confirm-title")).to_have_text("failover scenario s1?")
    expect(dialog.locator("#confirm-steps li[data-step=redirect]")).to_be_visible()
    assert "Fail over to the replica now" in (dialog.locator("#confirm-what").text_content() or "")
    page.screenshot(path=tmp_path / "confirm.png")
    page.click("#confirm-go")

    expect(page.locator(".toast, #toast")).to_contain_text("accepted: s1 is failing over")
    steps = page.locator("#runbook-panel li[data-step]")
    expect(page.locator("#runbook-panel [data-step=verify]")).to_have_attribute(
        "data-status", "done", timeout=15_000
    )
    expect(page.locator("#runbook-panel .runbook")).to_have_attribute("data-outcome", "finished")
    assert [s.get_attribute("data-status") for s in steps.all()] == ["done"] * steps.count()
    # The runbook's history was read at most once, before it redirected (whether the status or
    # the stream told the page first): every step after came from the stream.
    assert len(runbook_reads) <= 1
    for read in runbook_reads:
        done = [e["step"] for e in read.json()["events"] if e["kind"] == "step_done"]
        assert "redirect" not in done
    expect(page.locator(".scenario .head .badge").first).to_have_text("switched")
    expect(page.locator("svg.machine .node.now")).to_have_attribute("data-state", "switched")
    expect(page.locator(".journal li.kind-transition").first).to_contain_text("-> switched")
    page.screenshot(path=tmp_path / "scenario.png", full_page=True)

    page.click("header h1 a")
    expect(page.locator("tr[data-scenario=s1] .state")).to_have_text("switched")
    expect(page.locator("tr[data-scenario=s1] .active")).to_have_text("replica 127.0.0.3")
    assert fleet.state("s1") == ("switched", "replica")
    command = next(e for e in fleet.journal() if e["kind"] == "command")
    assert command["actor"] == "api:alice:dashboard"


def test_a_viewer_sees_no_buttons(browser: BrowserContext, fleet: ApiFleet) -> None:
    page = browser.new_page()
    log_in(page, fleet, fleet.viewer)
    expect(page.locator("#who")).to_have_text("grafana (viewer)")
    expect(page.locator("tr[data-group=pair] button")).to_have_count(0)
    page.click("a[href='#/scenario/s2']")
    expect(page.locator(".scenario .head")).to_contain_text("viewer token: read only")
    expect(page.locator("button[data-action]")).to_have_count(0)
    expect(page.locator("#login")).to_be_hidden()


def test_a_group_command_shows_a_member_it_would_refuse_before_it_is_sent(
    browser: BrowserContext, fleet: ApiFleet, tmp_path: Path
) -> None:
    fleet.alive("s2", "127.0.0.3", False)  # s2 has no replica to fail over to
    page = browser.new_page()
    log_in(page, fleet, fleet.operator)
    expect(page.locator("tr[data-group=pair] .state")).to_have_text("degraded", timeout=10_000)
    page.click("tr[data-group=pair] button[data-action=failover]")
    dialog = page.locator("#confirm")
    expect(dialog.locator("#confirm-title")).to_have_text("failover group pair?")
    expect(dialog.locator("#confirm-steps li[data-scenario=s1]")).to_have_text(
        "wave 1: s1 failover"
    )
    refused = dialog.locator("#confirm-steps li[data-scenario=s2]")
    expect(refused).to_contain_text("wave 2: s2 refused: replica fails its checks (script)")
    expect(refused).to_have_class("error")
    expect(dialog.locator("#confirm-error")).to_have_text(
        "s2 would be refused: the command would fail there, and no later wave would start."
    )
    page.screenshot(path=tmp_path / "confirm-group.png")
    assert fleet.state("s1") == ("running", "production")


def test_a_group_command_in_progress_is_cancelled_from_its_row(
    browser: BrowserContext, fleet: ApiFleet, tmp_path: Path
) -> None:
    fleet.stop_daemon()
    fleet.write_config(failover={"mode": "manual"}, groups=PAIR, hooks=fleet.gate("s1"))
    fleet.start_daemon()
    page = browser.new_page()
    log_in(page, fleet, fleet.operator)
    row = page.locator("tr[data-group=pair]")
    expect(row.locator(".state")).to_have_text("protected")
    expect(row.locator("button[data-action=cancel]")).to_have_count(0)  # nothing to cancel
    assert fleet.call("POST", "/v1/groups/pair/failover", {}).status == 202
    fleet.wait_runbook("s1")
    expect(row.locator(".state")).to_have_text("failover in progress", timeout=10_000)
    row.locator("button[data-action=cancel]").click()
    dialog = page.locator("#confirm")
    expect(dialog.locator("#confirm-title")).to_have_text("cancel group pair?")
    expect(dialog.locator("#confirm-steps li[data-scenario=s1]")).to_have_text(
        "wave 1: s1 finishes its failover runbook"
    )
    expect(dialog.locator("#confirm-steps li[data-scenario=s2]")).to_have_text(
        "wave 2: s2 not started (cancelled)"
    )
    page.screenshot(path=tmp_path / "confirm-cancel.png")
    page.click("#confirm-go")
    expect(page.locator(".toast, #toast")).to_contain_text(
        "accepted: group pair: failover cancelled: no other member starts; s1 finishes its failover"
    )
    expect(row.locator(".report")).to_have_text(
        "cancelled by api:alice:dashboard: no other member starts; those in flight finish"
    )
    expect(row.locator("button[data-action=cancel]")).to_have_count(0)  # cancelled already
    fleet.open_gate()
    expect(row.locator(".state")).to_have_text("degraded", timeout=10_000)
    expect(row.locator(".report")).to_contain_text("failover cancelled: s1: switched")
    expect(row.locator("button[data-action=cancel]")).to_have_count(0)
    assert fleet.state("s2") == ("running", "production")


def test_a_group_is_paused_and_resumed_from_its_row(
    browser: BrowserContext, fleet: ApiFleet, tmp_path: Path
) -> None:
    fleet.stop_daemon()
    fleet.write_config(groups=PAIR)
    fleet.start_daemon()
    page = browser.new_page()
    log_in(page, fleet, fleet.operator)
    row = page.locator("tr[data-group=pair]")
    expect(row.locator(".state")).to_have_text("protected")
    expect(row.locator("button[data-action=resume]")).to_have_count(0)  # nothing paused
    row.locator("button[data-action=pause]").click()
    dialog = page.locator("#confirm")
    expect(dialog.locator("#confirm-title")).to_have_text("pause group pair?")
    expect(dialog.locator("#confirm-steps li[data-scenario=s2]")).to_have_text(
        "wave 2: s2 keep checking and reporting; take no automatic action"
    )
    page.click("#confirm-go")
    expect(page.locator(".toast, #toast")).to_contain_text("accepted: group pair: s1, s2 paused")
    expect(row.locator(".member .tag")).to_have_text(["paused", "paused"])
    expect(row.locator("button[data-action=pause]")).to_have_count(0)  # every member is
    assert [fleet.api("GET", f"/v1/scenarios/{n}")[1]["paused"] for n in ("s1", "s2")] == [
        True,
        True,
    ]
    row.locator("button[data-action=resume]").click()
    page.click("#confirm-go")
    expect(page.locator(".toast, #toast")).to_contain_text("accepted: group pair: s1, s2 resumed")
    expect(row.locator(".member .tag")).to_have_count(0)
    expect(row.locator("button[data-action=resume]")).to_have_count(0)


def test_a_large_group_is_summed_up_in_its_row(browser: BrowserContext, tmp_path: Path) -> None:
    """Eight members (more than six): the row counts their states and shows the exceptions (a
    dead replica, a paused member); every member is behind "all 8 members", which stays open
    across the overview's refreshes."""
    (tmp_path / "big").mkdir()
    fleet = ApiFleet(tmp_path / "big", 8)
    try:
        fleet.write_config(
            failover={"mode": "manual"}, groups=[{"name": "big", "scenarios": fleet.names}]
        )
        fleet.start_daemon()
        assert fleet.ha("pause", "s3").returncode == 0
        fleet.alive("s5", "127.0.0.3", False)
        page = browser.new_page()
        log_in(page, fleet, fleet.operator)
        row = page.locator("tr[data-group=big]")
        expect(row.locator(".counts")).to_have_text("8 members: 8 running")
        shown = row.locator("td > span.member")
        expect(shown).to_have_text(["s3 runningpaused", "s5 runningreplica dead"], timeout=10_000)
        everyone = row.locator("details.all-members span.member")
        expect(everyone).to_have_count(8)
        expect(everyone.first).to_be_hidden()
        row.locator("details.all-members summary").click()
        expect(everyone.first).to_be_visible()
        fleet.alive("s5", "127.0.0.3", True)  # the overview refreshes: the list stays open
        expect(shown).to_have_text(["s3 runningpaused"], timeout=10_000)
        expect(everyone.nth(7)).to_be_visible()
        page.screenshot(path=tmp_path / "big-group.png")
    finally:
        fleet.stop()


def test_a_failing_state_store_is_shown_until_it_takes_writes_again(
    browser: BrowserContext, tmp_path: Path
) -> None:
    """The disk under the state fills up (tests/e2e/full_disk.py): the header says that nothing
    is acted on, and why, until the disk has room again."""
    with small_disk(tmp_path / "disk") as disk:
        (tmp_path / "site").mkdir()
        fleet = ApiFleet(tmp_path / "site", 1)
        try:
            fleet.write_config(failover={"mode": "manual"})
            state_on(fleet, disk)
            fleet.start_daemon()
            page = browser.new_page()
            log_in(page, fleet, fleet.operator)
            banner = page.locator("#store-error")
            expect(banner).to_be_hidden()
            fill(disk)
            fleet.kill("s1")  # what the daemon then journals is refused
            expect(banner).to_have_text(
                f"the state store fails, nothing is acted on: {FULL}", timeout=15_000
            )
            page.screenshot(path=tmp_path / "store-failing.png")
            empty(disk)
            expect(banner).to_be_hidden(timeout=15_000)
        finally:
            fleet.stop()
