// One scenario: its buttons, checks, the runbook in flight (live from the event stream), the
// state machine, the journal, proposals and, when there is any, the Assured Recovery history.

import { api } from "./api.js";
import { confirmCommand } from "./confirm.js";
import { badge, checkCell, h, section, table, when } from "./dom.js";
import { drawing, transitionList } from "./diagram.js";

const JOURNAL_SHOWN = 60;
const KEPT = 1000; // events kept in the page (the journal list and the test history)
const RECENT = 3000; // how far back (in journal ids) the page looks for the scenario's events
const ENDS = { finish: "finished", block: "blocked", cancel: "cancelled" };

// Events from a read and from the stream, each once, in journal order (either may come first).
function merged(events, more) {
  const byId = new Map(events.map((e) => [e.id, e]));
  for (const e of more) byId.set(e.id, e);
  return [...byId.values()].sort((a, b) => a.id - b.id);
}

function eventItem(e) {
  const step = e.step ? ` ${e.step}` : "";
  const actor = e.actor !== "daemon" ? ` [${e.actor}]` : "";
  return h("li", { class: `event kind-${e.kind}`, "data-id": e.id },
    h("span", { class: "muted" }, `${when(e.ts)} #${e.id} `), h("b", {}, `${e.kind}${step}`), `: ${e.message}${actor}`);
}

// The runbook's steps from its proposal's plan, each with what its events say so far.
function runbookView(id, events) {
  const plan = events.find((e) => e.kind === "proposal")?.data.plan || [];
  const steps = new Map(plan.map((s) => [s.step, { step: s.step, plan: s.plan, status: "to do", detail: "" }]));
  let outcome = "in progress";
  let kind = "";
  for (const e of events) {
    if (e.step && !steps.has(e.step)) steps.set(e.step, { step: e.step, plan: "", status: "to do", detail: "" });
    const s = steps.get(e.step);
    if (e.kind === "step_started") Object.assign(s, { status: "running", detail: e.message });
    else if (e.kind === "step_retry") Object.assign(s, { status: "retrying", detail: e.message });
    else if (e.kind === "step_done") Object.assign(s, { status: "done", detail: `${e.message}${e.data.seconds !== undefined ? ` (${e.data.seconds}s)` : ""}` });
    else if (e.kind === "step_failed") Object.assign(s, { status: "failed", detail: e.message });
    else if (e.kind === "transition" && ENDS[e.data.trigger]) outcome = ENDS[e.data.trigger];
    else if (e.kind === "transition") kind = e.data.to.replace(/_/g, " ");
  }
  return h("div", { class: "runbook", "data-runbook": id, "data-outcome": outcome },
    h("p", {}, `runbook ${id} `, kind ? `(${kind}) ` : "", badge(outcome)),
    h("ol", { class: "steps" }, [...steps.values()].map((s) =>
      h("li", { "data-step": s.step, "data-status": s.status, class: `step ${s.status.replace(/ /g, "-")}` },
        h("b", {}, s.step), h("span", { class: "status" }, s.status), h("div", { class: "muted" }, s.detail || s.plan)))));
}

function arRows(events) {
  return events.filter((e) => e.kind.startsWith("ar_") && e.kind !== "ar_step").map((e) =>
    h("tr", {}, h("td", {}, when(e.ts)), h("td", {}, e.kind.slice(3)),
      h("td", {}, e.data.recovery_time !== undefined ? `${e.data.recovery_time.toFixed(1)} s` : "-"), h("td", {}, e.message)));
}

export function scenarioPage(ctx, name) {
  const element = h("div", { class: "scenario", "data-page": name });
  const parts = {
    head: h("section", { class: "panel head" }),
    checks: section("Checks"),
    runbook: h("section", { class: "panel", id: "runbook-panel" }, h("h2", {}, "Runbook"), h("p", { class: "muted" }, "none yet")),
    ar: h("section", { class: "panel", hidden: true }, h("h2", {}, "Assured Recovery")),
    machine: section("State machine"),
    journal: h("section", { class: "panel" }, h("h2", {}, "Journal"), h("ol", { class: "journal", reversed: true })),
    proposals: section("Proposals"),
  };
  element.append(h("div", { class: "column" }, parts.head, parts.checks, parts.runbook, parts.ar),
    h("div", { class: "column" }, parts.machine, parts.journal, parts.proposals));
  let journal = [];
  let runbook = { id: null, events: [] };

  function view() {
    return ctx.status.scenarios.find((s) => s.name === name);
  }

  function showRunbook() {
    if (!runbook.id) return;
    parts.runbook.replaceChildren(h("h2", {}, "Runbook"), runbookView(runbook.id, runbook.events));
  }

  async function loadRunbook(id) {
    if (!id || id === runbook.id) return;
    runbook = { id, events: [] };
    const found = await api("GET", `/v1/events?runbook=${encodeURIComponent(id)}&limit=1000`);
    runbook.events = merged(runbook.events, found.events);
    showRunbook();
  }

  function showJournal() {
    parts.journal.querySelector("ol").replaceChildren(...journal.slice(-JOURNAL_SHOWN).reverse().map(eventItem));
    const rows = arRows(journal);
    parts.ar.hidden = rows.length === 0;
    if (rows.length) parts.ar.replaceChildren(h("h2", {}, "Assured Recovery"), table(["when", "result", "recovery time", ""], rows.reverse()));
  }

  async function load() {
    const from = Math.max(0, ctx.status.last_event - RECENT);
    for (let after = from; ;) {
      const page = await api("GET", `/v1/events?scenario=${encodeURIComponent(name)}&after=${after}&limit=1000`);
      journal = merged(journal, page.events);
      if (page.events.length < 1000) break;
      after = page.events[page.events.length - 1].id;
    }
    showJournal();
    const latest = [...journal].reverse().find((e) => e.runbook);
    await loadRunbook(view().runbook || latest?.runbook);
    await loadProposals();
  }

  async function loadProposals() {
    const proposals = (await api("GET", `/v1/proposals?scenario=${encodeURIComponent(name)}`)).proposals.slice(-10).reverse();
    parts.proposals.replaceChildren(h("h2", {}, "Proposals"), proposals.length
      ? h("ol", { class: "journal" }, proposals.map((p) => h("li", {}, h("span", { class: "muted" }, `${when(p.ts)} #${p.id} `), p.message,
          h("div", { class: "muted" }, (p.data.plan || []).map((s) => s.step).join(" → ")))))
      : h("p", { class: "muted" }, "none"));
  }

  function buttons(s) {
    if (!ctx.canAct()) return h("p", { class: "muted" }, "viewer token: read only");
    return h("div", { class: "buttons" }, ctx.actions.map((action) =>
      h("button", {
        type: "button", class: `action action-${action}`, "data-action": action,
        onclick: () => confirmCommand({ kind: "scenario", name, action, active: s.active }, ctx.toast),
      }, action)));
  }

  function update() {
    const s = view();
    if (!s) {
      element.replaceChildren(h("p", { class: "error" }, `no scenario named ${name}`));
      return;
    }
    parts.head.replaceChildren(
      ...[
        h("h2", {}, name, " ", badge(s.state), s.paused ? h("span", { class: "tag" }, "paused") : null),
        h("p", {}, `active: ${s.active} (${s.active_address}) · mode ${s.mode} · last switch ${when(s.last_switch_at)}`),
        s.reason ? h("p", { class: "error" }, s.reason) : null,
        s.alert ? h("p", { class: "warning" }, s.alert) : null,
        buttons(s),
      ].filter(Boolean),
    );
    const rows = ["production", "replica"].flatMap((side) => s[side].checks.map((c) =>
      h("tr", {}, h("td", {}, side), h("td", {}, s[side].address), h("td", {}, checkCell(c)), h("td", {}, c.failures), h("td", { class: "muted" }, c.detail))));
    parts.checks.replaceChildren(h("h2", {}, "Checks"), table(["side", "address", "latest", "failures", "detail"], rows));
    parts.machine.replaceChildren(h("h2", {}, "State machine"), drawing(ctx.machine, s.state),
      h("p", {}, `From ${s.state.replace(/_/g, " ")}:`), transitionList(ctx.machine, s.state));
    if (s.runbook) loadRunbook(s.runbook);
  }

  function onEvent(e) {
    if (e.scenario === name) {
      journal = merged(journal, [e]).slice(-KEPT);
      showJournal();
    }
    if (e.kind === "proposal" && e.scenario === name) loadProposals();
    const acts = e.kind === "proposal" && ["act", "operator"].includes(e.data.mode);
    if (acts && e.scenario === name && e.runbook !== runbook.id) {
      runbook = { id: e.runbook, events: [] };
    }
    if (e.runbook && e.runbook === runbook.id) {
      runbook.events = merged(runbook.events, [e]);
      showRunbook();
    }
  }

  update();
  load().catch((error) => ctx.toast(`cannot load ${name}: ${error.message}`, false));
  return { element, update, onEvent };
}
