// The overview: every scenario with its state, active server and latest check results, and every
// group with its rollup, members and buttons.

import { confirmCommand } from "./confirm.js";
import { badge, checkCell, h, section, table } from "./dom.js";

function scenarioRow(s) {
  return h(
    "tr",
    { "data-scenario": s.name },
    h("td", { class: "name" }, h("a", { href: `#/scenario/${encodeURIComponent(s.name)}` }, s.name)),
    h("td", { class: "state" }, badge(s.state), s.paused ? h("span", { class: "tag" }, "paused") : null),
    h("td", { class: "active" }, `${s.active} `, h("span", { class: "muted" }, s.active_address)),
    h("td", {}, s.mode),
    h("td", { class: "checks" }, s.production.checks.map(checkCell)),
    h("td", { class: "checks" }, s.replica.checks.map(checkCell)),
    h("td", { class: "note" }, s.reason || s.alert || ""),
  );
}

// Cancel only while a command drives the members (a test drives none: it ends by itself);
// pause while a member is not paused, resume while one is.
function offered(g, action) {
  if (action === "pause") return g.members.some((m) => !m.paused);
  if (action === "resume") return g.members.some((m) => m.paused);
  const driving = g.state.endsWith(" in progress") && !g.state.startsWith("test ");
  return action !== "cancel" || (driving && !g.cancelled_by);
}

function member(m) {
  return h(
    "span",
    { class: "member", "data-member": m.name },
    `${m.name} `,
    badge(m.state),
    m.trouble ? h("span", { class: "tag" }, m.trouble) : null,
    m.paused ? h("span", { class: "tag" }, "paused") : null,
  );
}

// A group of more than LISTED members is summed up, as `ha status` does: the count of each
// state, the members not in the most common one (or paused, or in trouble), and every member
// behind "all N members" (kept open across refreshes).
const LISTED = 6;
const opened = new Set();

function members(g) {
  if (g.members.length <= LISTED) return g.members.map(member);
  const counts = new Map();
  for (const m of g.members) counts.set(m.state, (counts.get(m.state) || 0) + 1);
  const sorted = [...counts].sort((a, b) => b[1] - a[1]);
  const usual = sorted[0][0];
  const odd = g.members.filter((m) => m.state !== usual || m.paused || m.trouble);
  const all = h(
    "details",
    {
      class: "all-members",
      open: opened.has(g.name),
      ontoggle: (event) => (event.target.open ? opened.add(g.name) : opened.delete(g.name)),
    },
    h("summary", {}, `all ${g.members.length} members`),
    g.members.map(member),
  );
  const counted = sorted.map(([state, n]) => `${n} ${state.replace(/_/g, " ")}`).join(", ");
  return [h("div", { class: "counts" }, `${g.members.length} members: ${counted}`), odd.map(member), all];
}

function groupRow(ctx, g) {
  const buttons = ctx.canAct()
    ? ctx.groupActions.filter((action) => offered(g, action)).map((action) =>
        h("button", {
          type: "button",
          class: `action action-${action}`,
          "data-action": action,
          onclick: () => confirmCommand({ kind: "group", name: g.name, action }, ctx.toast),
        }, action),
      )
    : [];
  return h(
    "tr",
    { "data-group": g.name },
    h("td", { class: "name" }, g.name),
    h("td", { class: "state" }, badge(g.state)),
    h("td", {}, g.failover),
    h("td", {}, ...members(g), outstanding(g)),
    h("td", {}, h("div", { class: "buttons" }, buttons)),
  );
}

// The command in progress was cancelled, or the group's last command failed and the group is
// not back in order: say so.
function outstanding(g) {
  if (g.cancelled_by) {
    return h("div", { class: "report" }, `cancelled by ${g.cancelled_by}: no other member starts; those in flight finish`);
  }
  const report = g.last_report;
  if (!report || !report.outstanding) return null;
  return h("div", { class: "report" }, `last command (#${report.id}): ${report.summary}`);
}

export function overview(ctx) {
  const element = h("div", { class: "overview" });
  function update() {
    const status = ctx.status;
    const parts = [
      section(
        "Scenarios",
        table(
          ["scenario", "state", "active server", "mode", "production checks", "replica checks", ""],
          status.scenarios.map(scenarioRow),
        ),
      ),
    ];
    if (status.groups.length) {
      parts.push(section("Groups", table(["group", "state", "failover", "members", ""], status.groups.map((g) => groupRow(ctx, g)))));
    }
    element.replaceChildren(...parts);
  }
  update();
  return { element, update, onEvent() {} };
}
