// The scenario state machine, drawn from the daemon's own mermaid text (GET /v1/diagram) as SVG:
// states in columns by distance from the initial state, the current one highlighted, and the
// transitions out of it labelled; every transition is also listed as text below the drawing.

import { h } from "./dom.js";

export function parse(text) {
  const states = [];
  const edges = [];
  let initial = null;
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    let m;
    if ((m = line.match(/^state "([^"]+)" as (\w+)$/))) states.push(m[2]);
    else if ((m = line.match(/^\[\*\] --> (\w+)$/))) initial = m[1];
    else if ((m = line.match(/^(\w+) --> (\w+): (\w+)(?: \[(.+)\])?$/))) {
      edges.push({ from: m[1], to: m[2], trigger: m[3], condition: m[4] || "" });
    }
  }
  return { states, edges, initial: initial || states[0] };
}

function columns({ states, edges, initial }) {
  const depth = { [initial]: 0 };
  const queue = [initial];
  while (queue.length) {
    const state = queue.shift();
    for (const e of edges) {
      if (e.from === state && !(e.to in depth)) {
        depth[e.to] = depth[state] + 1;
        queue.push(e.to);
      }
    }
  }
  const cols = [];
  for (const state of states) (cols[depth[state] ?? 0] ||= []).push(state);
  return cols;
}

const W = 130;
const H = 34;
const GAP_X = 90;
const GAP_Y = 30;

export function drawing(machine, current) {
  const cols = columns(machine);
  const place = {};
  const tallest = Math.max(...cols.map((c) => c.length));
  cols.forEach((col, x) => {
    const top = ((tallest - col.length) * (H + GAP_Y)) / 2;
    col.forEach((state, y) => {
      place[state] = { x: 20 + x * (W + GAP_X), y: 20 + top + y * (H + GAP_Y) };
    });
  });
  const width = 40 + cols.length * W + (cols.length - 1) * GAP_X;
  const height = 40 + tallest * H + (tallest - 1) * GAP_Y;
  const svg = h("svg", { viewBox: `0 0 ${width} ${height}`, class: "machine", role: "img" });
  svg.append(
    h("defs", {},
      ["arrow", "arrow-now"].map((id) =>
        h("marker", { id, viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto" },
          h("path", { d: "M0,0 L10,5 L0,10 z", class: id }))),
    ),
  );
  const pairs = {};
  const later = [];
  for (const e of machine.edges) {
    if (e.from === e.to) continue;
    const a = place[e.from];
    const b = place[e.to];
    const key = [e.from, e.to].sort().join();
    const bend = (pairs[key] = (pairs[key] || 0) + 1) * 18 * (e.from < e.to ? 1 : -1);
    const [x1, y1, x2, y2] = [a.x + W / 2, a.y + H / 2, b.x + W / 2, b.y + H / 2];
    const len = Math.hypot(x2 - x1, y2 - y1) || 1;
    const [nx, ny] = [-(y2 - y1) / len, (x2 - x1) / len];
    const [cx, cy] = [(x1 + x2) / 2 + nx * bend, (y1 + y2) / 2 + ny * bend];
    const start = clip(cx, cy, x1, y1);
    const end = clip(cx, cy, x2, y2);
    const now = e.from === current;
    const edge = h("path", {
      d: `M${start[0]},${start[1]} Q${cx},${cy} ${end[0]},${end[1]}`,
      class: now ? "edge now" : "edge",
      "marker-end": `url(#${now ? "arrow-now" : "arrow"})`,
    }, h("title", {}, `${e.from} → ${e.to}: ${e.trigger}${e.condition ? ` [${e.condition}]` : ""}`));
    if (!now) {
      svg.append(edge);
      continue;
    }
    const [lx, ly] = [(x1 + x2) / 2 + nx * bend * 0.5, (y1 + y2) / 2 + ny * bend * 0.5];
    later.push(edge, h("text", { x: lx, y: ly - 4, class: "edge-label" }, e.trigger));
  }
  for (const state of machine.states) {
    const p = place[state];
    svg.append(
      h("g", { class: state === current ? "node now" : "node", "data-state": state },
        h("rect", { x: p.x, y: p.y, width: W, height: H, rx: 8 }),
        h("text", { x: p.x + W / 2, y: p.y + H / 2 + 5 }, state.replace(/_/g, " "))),
    );
  }
  svg.append(...later); // the current state's way out, drawn on top
  return svg;
}

function clip(cx, cy, x2, y2) {
  // Where a line from the control point to a box's centre crosses the box's border.
  const dx = x2 - cx;
  const dy = y2 - cy;
  const t = Math.min(Math.abs(W / 2 / (dx || 1e-9)), Math.abs(H / 2 / (dy || 1e-9)), 1);
  return [x2 - dx * t, y2 - dy * t];
}

export function transitionList(machine, current) {
  return h("ul", { class: "transitions" },
    machine.edges
      .filter((e) => e.from === current)
      .map((e) => h("li", {}, h("b", {}, e.trigger), ` → ${e.to.replace(/_/g, " ")}`, e.condition ? ` (when ${e.condition})` : "")),
  );
}
