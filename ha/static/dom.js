// Building the page from data: elements made with h() (text is always text, never HTML).

export function h(tag, attrs = {}, ...children) {
  const svg = ["svg", "g", "rect", "text", "path", "line", "marker", "defs", "title"].includes(tag);
  const element = svg
    ? document.createElementNS("http://www.w3.org/2000/svg", tag)
    : document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on")) element.addEventListener(key.slice(2), value);
    else if (key === "text") element.textContent = value;
    else element.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return element;
}

export function badge(state) {
  return h("span", { class: `badge state-${state.replace(/[^a-z_]/g, "")}` }, state.replace(/_/g, " "));
}

export function when(ts) {
  if (ts === null || ts === undefined) return "-";
  const date = new Date(ts * 1000);
  const day = date.toISOString().slice(0, 10) === new Date().toISOString().slice(0, 10);
  return day ? date.toLocaleTimeString() : date.toLocaleString();
}

export function checkCell(check) {
  if (check.ok === null) return h("span", { class: "check unknown", title: check.detail }, `${check.check} ?`);
  const mark = check.ok ? "ok" : check.down ? "DOWN" : `failing ×${check.failures}`;
  const latency = check.latency_ms === null ? "" : ` ${check.latency_ms.toFixed(1)} ms`;
  return h(
    "span",
    { class: `check ${check.ok ? "ok" : "failed"}`, title: `${check.detail} (${when(check.at)})` },
    `${check.check} ${mark}${latency}`,
  );
}

export function section(title, ...children) {
  return h("section", { class: "panel" }, h("h2", {}, title), ...children);
}

export function table(columns, rows) {
  return h(
    "table",
    {},
    h("thead", {}, h("tr", {}, columns.map((c) => h("th", {}, c)))),
    h("tbody", {}, rows),
  );
}
