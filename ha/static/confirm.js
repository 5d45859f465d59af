// Push-buttons behind a confirmation: the dialog names what will happen (the API's dry run lists
// the steps or the waves) and sends the command only when the operator confirms.

import { api } from "./api.js";
import { h } from "./dom.js";

const RUNBOOKS = ["failover", "switchover", "failback", "recover"];
const SAYS = {
  run: "Start protecting it: checks on, automatic failover as configured.",
  stop: "Stop protecting it: checks off, no automatic action.",
  failover: "Fail over to the replica now: production is fenced when configured, users are redirected.",
  switchover: "Planned, graceful move to the replica: production is stopped, users are redirected.",
  failback: "Make production active again: resynchronise, redirect users back.",
  recover: "Keep one side active: the other is fenced, users are redirected to the kept side.",
  abort: "Give up the blocked runbook; the active side stays as it is now.",
  pause: "Maintenance: keep checking and reporting, take no automatic action.",
  resume: "End maintenance: automatic actions again.",
  test: "Assured Recovery: rehearse recovery on the replica now, without touching production.",
  cancel: "Cancel the group command in progress: no other member starts; those in flight finish their runbooks.",
};

const $ = (id) => document.getElementById(id);

function path(target) {
  return `/v1/${target.kind === "group" ? "groups" : "scenarios"}/${encodeURIComponent(target.name)}/${target.action}`;
}

function body(target) {
  const data = {};
  if (target.action === "recover") data.active = $("confirm-side").value;
  if (target.kind === "scenario" && RUNBOOKS.includes(target.action) && $("confirm-force").checked) {
    data.force = true;
  }
  return data;
}

function planItems(plan) {
  if (plan.steps) {
    return plan.steps.map((s) =>
      h("li", { "data-step": s.step }, h("b", {}, s.step), ` ${s.plan}`, s.status === "done" ? " (done, skipped)" : ""),
    );
  }
  return plan.plan.map((row) =>
    h(
      "li",
      { "data-scenario": row.scenario, class: row.refused ? "error" : row.acts ? "" : "muted" },
      h("b", {}, `wave ${row.wave}: ${row.scenario}`),
      ` ${row.plan}`,
    ),
  );
}

// A group command with a member it would refuse fails there: the later waves would not start.
function warning(plan) {
  const refused = (plan.plan || []).filter((row) => row.refused).map((row) => row.scenario);
  if (!refused.length) return "";
  return `${refused.join(", ")} would be refused: the command would fail there, and no later wave would start.`;
}

async function dryRun(target) {
  const steps = $("confirm-steps");
  const go = $("confirm-go");
  steps.replaceChildren(h("li", { class: "muted" }, "asking the daemon…"));
  $("confirm-error").textContent = "";
  go.disabled = true;
  try {
    const plan = await api("POST", path(target), { ...body(target), dry_run: true });
    steps.replaceChildren(...planItems(plan));
    $("confirm-error").textContent = warning(plan);
    go.disabled = false;
  } catch (error) {
    steps.replaceChildren();
    $("confirm-error").textContent = `Refused (${error.status}): ${error.message}`;
  }
}

// target: {kind: "scenario" | "group", name, action, active}; done(message, ok) after sending.
export function confirmCommand(target, done) {
  const dialog = $("confirm");
  $("confirm-title").textContent = `${target.action} ${target.kind} ${target.name}?`;
  $("confirm-what").textContent = SAYS[target.action] || `${target.action} ${target.name} now.`;
  $("confirm-side-row").hidden = target.action !== "recover";
  $("confirm-side").value = target.active || "production";
  $("confirm-force-row").hidden = !(target.kind === "scenario" && RUNBOOKS.includes(target.action));
  $("confirm-force").checked = false;
  $("confirm-side").onchange = () => dryRun(target);
  $("confirm-force").onchange = () => dryRun(target);
  // A cancel dialog must not offer "Cancel" next to "Confirm cancel": say what each does.
  const cancelling = target.action === "cancel";
  $("confirm-go").textContent = cancelling ? "Start no other member" : `Confirm ${target.action}`;
  $("confirm-cancel").textContent = cancelling ? "Let it go on" : "Cancel";
  dialog.onclose = async () => {
    if (dialog.returnValue !== "go") return;
    try {
      const answer = await api("POST", path(target), body(target));
      done(`accepted: ${answer.message}`, true);
    } catch (error) {
      done(`refused (${error.status}): ${error.message}`, false);
    }
  };
  dialog.returnValue = "";
  dialog.showModal();
  dryRun(target);
}
