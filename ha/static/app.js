// The dashboard: the token once per tab, the overview and scenario pages (#/ and
// #/scenario/NAME), live from the event stream, with the status re-read when something changed.

import { api, follow, token } from "./api.js";
import { parse } from "./diagram.js";
import { overview } from "./overview.js";
import { scenarioPage } from "./scenario.js";

const REFRESH_MS = 5000; // latencies change without journal events: re-read the status this often
const CHANGES = /^(transition|paused|resumed|command_|group_|alert|budget_|store_|check|ar_)/;
const $ = (id) => document.getElementById(id);

const ctx = {
  status: null,
  actions: [],
  groupActions: [],
  machine: null,
  page: null,
  canAct: () => ctx.status?.token.role === "operator",
  toast(message, ok = true) {
    const box = $("toast");
    box.textContent = message;
    box.className = ok ? "show ok" : "show failed";
    clearTimeout(box.timer);
    box.timer = setTimeout(() => (box.className = ""), 6000);
    refresh();
  },
};

function actionsOf(doc, path) {
  const params = doc.paths[path].post.parameters;
  return params.find((p) => p.name === "action").schema.enum;
}

function showLogin(message = "") {
  $("login").hidden = false;
  $("main").replaceChildren();
  $("logout").hidden = true;
  $("login-error").textContent = message;
  $("token").focus();
}

let pending = null;
function refreshSoon() {
  if (!pending) pending = setTimeout(() => refresh().finally(() => (pending = null)), 150);
}

async function refresh() {
  try {
    ctx.status = await api("GET", "/v1/status");
  } catch (error) {
    if (error.status === 401) showLogin("the token is no longer accepted");
    return;
  }
  $("budget").textContent = `failover budget: ${ctx.status.budget}${ctx.status.observe_only ? " · observe-only" : ""}`;
  const failing = ctx.status.store_error;
  $("store-error").hidden = !failing;
  $("store-error").textContent = failing ? `the state store fails, nothing is acted on: ${failing}` : "";
  ctx.page?.update();
}

function route() {
  const match = location.hash.match(/^#\/scenario\/(.+)$/);
  ctx.page = match ? scenarioPage(ctx, decodeURIComponent(match[1])) : overview(ctx);
  $("main").replaceChildren(ctx.page.element);
  document.title = match ? `${decodeURIComponent(match[1])} · ha-orchestrator` : "ha-orchestrator";
}

function live(state) {
  const mark = $("live");
  mark.textContent = state;
  mark.className = `live ${state === "live" ? "on" : "off"}`;
  if (state === "unauthorized") showLogin("the token is no longer accepted");
}

async function start() {
  try {
    ctx.status = await api("GET", "/v1/status");
  } catch (error) {
    if (error.status === 401) {
      token.forget();
      showLogin("that token is not accepted");
      return;
    }
    showLogin(`cannot reach the daemon: ${error.message}`);
    return;
  }
  const doc = await api("GET", "/v1/openapi.json");
  ctx.actions = actionsOf(doc, "/v1/scenarios/{name}/{action}");
  ctx.groupActions = actionsOf(doc, "/v1/groups/{name}/{action}");
  ctx.machine = parse(await api("GET", "/v1/diagram"));
  $("login").hidden = true;
  $("logout").hidden = false;
  $("who").textContent = `${ctx.status.token.name} (${ctx.status.token.role})`;
  route();
  await refresh();
  window.addEventListener("hashchange", route);
  follow(ctx.status.last_event, (event) => {
    ctx.page?.onEvent(event);
    if (CHANGES.test(event.kind)) refreshSoon();
  }, live);
  setInterval(refresh, REFRESH_MS);
}

$("login").addEventListener("submit", (event) => {
  event.preventDefault();
  token.set($("token").value.trim());
  $("token").value = "";
  start();
});
$("logout").addEventListener("click", () => {
  token.forget();
  location.reload();
});

if (token.get()) start();
else showLogin();
