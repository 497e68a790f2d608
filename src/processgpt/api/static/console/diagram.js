// A process definition's graph ({nodes, flows}) drawn as SVG with a simple layered layout:
// each node's layer is its longest distance from a start (loops ignored), layers left to
// right, nodes in a layer ordered by their predecessors' positions. On an instance, finished
// steps are green, where it waits is amber, an incident red.

const NS = "http://www.w3.org/2000/svg";
const COL = 170, ROW = 84, W = 128, H = 48, PAD = 30;

function s(tag, attrs = {}, ...children) {
  const el = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) if (v !== undefined && v !== null) el.setAttribute(k, String(v));
  for (const c of children) el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return el;
}

function backEdges(nodes, flows) {
  const out = new Map(nodes.map((n) => [n.id, []]));
  for (const f of flows) out.get(f.source)?.push(f);
  const state = new Map();  // 1 visiting, 2 done
  const back = new Set();
  const visit = (id) => {
    state.set(id, 1);
    for (const f of out.get(id) || []) {
      const st = state.get(f.target);
      if (st === 1) back.add(f.id);
      else if (!st) visit(f.target);
    }
    state.set(id, 2);
  };
  const incoming = new Set(flows.map((f) => f.target));
  const roots = nodes.filter((n) => n.kind === "start" || !incoming.has(n.id));
  for (const r of roots) if (!state.get(r.id)) visit(r.id);
  for (const n of nodes) if (!state.get(n.id)) visit(n.id);
  return back;
}

/** Positions of the nodes: {id: {x, y, layer}}. Pure, so it could be tested alone. */
export function layout(graph) {
  const nodes = graph.nodes || [];
  const flows = (graph.flows || []).filter((f) => nodes.some((n) => n.id === f.source) && nodes.some((n) => n.id === f.target));
  const back = backEdges(nodes, flows);
  const forward = flows.filter((f) => !back.has(f.id));
  const layer = new Map(nodes.map((n) => [n.id, 0]));
  for (let i = 0; i < nodes.length; i++) {  // longest path by relaxation (a DAG once loops are cut)
    let changed = false;
    for (const f of forward) {
      if (layer.get(f.target) < layer.get(f.source) + 1) { layer.set(f.target, layer.get(f.source) + 1); changed = true; }
    }
    if (!changed) break;
  }
  const layers = [];
  for (const n of nodes) (layers[layer.get(n.id)] ||= []).push(n.id);
  const pos = {};
  const order = new Map();
  layers.forEach((ids, li) => {
    if (li > 0) {
      const bary = (id) => {
        const preds = forward.filter((f) => f.target === id).map((f) => order.get(f.source)).filter((v) => v !== undefined);
        return preds.length ? preds.reduce((a, b) => a + b, 0) / preds.length : 0;
      };
      ids.sort((a, b) => bary(a) - bary(b));
    }
    ids.forEach((id, i) => order.set(id, i));
  });
  const tallest = Math.max(1, ...layers.map((l) => (l || []).length));
  layers.forEach((ids, li) => {
    const offset = ((tallest - ids.length) * ROW) / 2;
    ids.forEach((id, i) => { pos[id] = { x: PAD + li * COL, y: PAD + offset + i * ROW, layer: li }; });
  });
  // Room below the lowest row: labels under events, and the arcs of flows that go back.
  const arcs = flows.some((f) => back.has(f.id) || layer.get(f.target) <= layer.get(f.source));
  return { pos, back, flows, width: PAD * 2 + Math.max(1, layers.length) * COL - (COL - W),
    height: PAD * 2 + (tallest - 1) * ROW + H + (arcs ? 60 : 12) };
}

function wrap(text, max = 18) {
  const words = String(text).split(/\s+/);
  const lines = [""];
  for (const w of words) {
    const cur = lines[lines.length - 1];
    if ((cur + " " + w).trim().length > max && cur) lines.push(w); else lines[lines.length - 1] = (cur + " " + w).trim();
  }
  if (lines.length > 3) { lines.length = 3; lines[2] = lines[2].slice(0, max - 1) + "…"; }
  return lines;
}

const EVENT = (kind) => kind === "start" || kind === "end" || kind.endsWith("_event") || ["timer", "message", "signal"].includes(kind);
const GATEWAY = (kind) => ["exclusive", "parallel", "inclusive", "event_based", "gateway", "complex"].includes(kind);
const half = (node) => (EVENT(node.kind) ? 16 : GATEWAY(node.kind) ? 22 : W / 2);

/** The mark inside an event's circle: what it waits for (a message, a signal, a timer). */
function glyph(kind, timer, cx, cy) {
  const mark = { class: "glyph" };
  if (kind === "message") {
    return [s("rect", { ...mark, x: cx - 8, y: cy - 5.5, width: 16, height: 11, rx: 1 }),
      s("path", { ...mark, d: `M ${cx - 8} ${cy - 5.5} L ${cx} ${cy + 1} L ${cx + 8} ${cy - 5.5}` })];
  }
  if (kind === "signal") return [s("polygon", { ...mark, points: `${cx},${cy - 8} ${cx + 7.5},${cy + 5.5} ${cx - 7.5},${cy + 5.5}` })];
  if (kind === "timer" || (kind === "start" && timer)) {
    return [s("circle", { ...mark, cx, cy, r: 9 }), s("path", { ...mark, d: `M ${cx} ${cy - 6} L ${cx} ${cy} L ${cx + 4.5} ${cy + 2.5}` })];
  }
  return [];
}

function shape(node, p) {
  const cx = p.x + W / 2, cy = p.y + H / 2;
  const kind = node.kind;
  const label = node.name || node.id;
  if (EVENT(kind)) {
    const ring = s("circle", { cx, cy, r: 16 });
    if (kind === "end") ring.setAttribute("stroke-width", "3.5");
    return [ring, ...glyph(kind, node.timer, cx, cy), s("text", { x: cx, y: cy + 30, "text-anchor": "middle" }, wrap(label, 22)[0])];
  }
  if (GATEWAY(kind)) {
    const mark = { exclusive: "×", parallel: "+", inclusive: "○", event_based: "◇" }[kind] || "";
    return [
      s("polygon", { points: `${cx},${cy - 22} ${cx + 22},${cy} ${cx},${cy + 22} ${cx - 22},${cy}` }),
      s("text", { x: cx, y: cy + 5, "text-anchor": "middle", "font-size": 14 }, mark),
      s("text", { x: cx, y: cy + 36, "text-anchor": "middle" }, wrap(label, 22)[0]),
    ];
  }
  const lines = wrap(label);
  const text = s("text", { x: cx, y: cy - (lines.length - 1) * 6.5 + 4, "text-anchor": "middle" });
  lines.forEach((l, i) => text.append(s("tspan", { x: cx, dy: i ? 13 : 0 }, l)));
  const who = node.activity?.agent ? "agent " + node.activity.agent : node.activity?.role || "";
  return [s("rect", { x: p.x, y: p.y, width: W, height: H, rx: 8 }), text,
    who ? s("text", { x: p.x + 4, y: p.y - 4, "font-size": 9, fill: "#6b7385" }, who) : null].filter(Boolean);
}

/** The SVG of `graph`; `marks` = {done: Set, active: Set, incident: Set} of node ids. */
export function diagram(graph, marks = {}) {
  const { pos, back, flows, width, height } = layout(graph);
  const svg = s("svg", { width, height, viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": "process diagram" });
  svg.append(s("defs", {}, s("marker", { id: "arrow", viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse" },
    s("path", { d: "M 0 0 L 10 5 L 0 10 z" }))));
  const seen = (id) => marks.done?.has(id) || marks.active?.has(id) || marks.incident?.has(id);
  const byId = new Map((graph.nodes || []).map((n) => [n.id, n]));
  for (const f of flows) {
    const a = pos[f.source], b = pos[f.target];
    const ha = half(byId.get(f.source)), hb = half(byId.get(f.target));
    let d;
    if (back.has(f.id) || b.layer <= a.layer) {
      const low = Math.max(a.y, b.y) + H + 22;
      d = `M ${a.x + W / 2} ${a.y + H / 2 + (EVENT(byId.get(f.source).kind) ? 16 : GATEWAY(byId.get(f.source).kind) ? 22 : H / 2)} C ${a.x + W / 2} ${low + 20}, ${b.x + W / 2} ${low + 20}, ${b.x + W / 2} ${b.y + H / 2 + (EVENT(byId.get(f.target).kind) ? 16 : GATEWAY(byId.get(f.target).kind) ? 22 : H / 2)}`;
    } else {
      const sx = a.x + W / 2 + ha, y1 = a.y + H / 2, tx = b.x + W / 2 - hb, y2 = b.y + H / 2;
      d = `M ${sx} ${y1} C ${sx + 35} ${y1}, ${tx - 35} ${y2}, ${tx} ${y2}`;
    }
    const taken = marks.done?.has(f.source) && seen(f.target);
    svg.append(s("path", { class: "flow" + (taken ? " taken" : ""), d, "marker-end": "url(#arrow)", "data-flow": f.id }));
    const name = f.name || (f.condition && f.condition_mode !== "text" ? f.condition : "");
    if (name) svg.append(s("text", { class: "flow-label", x: (a.x + b.x) / 2 + W / 2, y: (a.y + b.y) / 2 + H / 2 - 6, "text-anchor": "middle" }, name.length > 28 ? name.slice(0, 27) + "…" : name));
  }
  for (const node of graph.nodes || []) {
    const state = marks.incident?.has(node.id) ? "incident" : marks.active?.has(node.id) ? "active" : marks.done?.has(node.id) ? "done" : "";
    const g = s("g", { class: "node " + node.kind + (state ? " " + state : ""), "data-node": node.id, "data-state": state || "idle" });
    g.append(s("title", {}, `${node.name || node.id} (${node.kind})`), ...shape(node, pos[node.id]));
    svg.append(g);
  }
  return svg;
}
