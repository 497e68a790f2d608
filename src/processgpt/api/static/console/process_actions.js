// What an operator can do to an instance that has not ended, offered only where its state
// allows: deliver the message or signal a step waits for (with a payload merged into the
// variables), move it to another version of its definition (mapping the steps where it waits
// to the new version's), and cancel it.

import { api } from "./api.js";
import { act, clear, h, toast } from "./ui.js";

const ENDED = new Set(["COMPLETED", "CANCELLED"]);

function parsePayload(el, what) {
  if (!el.value.trim()) return {};
  let value;
  try { value = JSON.parse(el.value); } catch (err) { throw new Error(`${what} is not valid JSON: ${err.message}`); }
  if (!value || typeof value !== "object" || Array.isArray(value)) throw new Error(`${what} must be a JSON object`);
  return value;
}

/** The message / signal steps among those the instance waits at, from its graph. */
export function waitingEvents(inst, graph) {
  const active = new Set(inst.current_activity_ids);
  return (graph?.nodes || []).filter((n) => active.has(n.id) && (n.kind === "message" || n.kind === "signal") && n.event_name);
}

function eventForm(inst, node, line, onDone) {
  const payload = h("input", { class: "code", name: "payload", placeholder: '{"paid": true} (optional)', "aria-label": `payload of ${node.event_name}` });
  const what = node.kind === "message" ? "message" : "signal";
  const send = h("button", { type: "submit", class: "primary", name: "send-" + what }, `Send ${what} “${node.event_name}”`);
  return h("form", { class: "inline-form", dataset: { event: node.event_name }, onsubmit: (e) => {
    e.preventDefault();
    act(send, line, async () => {
      const body = parsePayload(payload, "the payload");
      const path = `/v1/processes/${inst.id}/${what}s/${encodeURIComponent(node.event_name)}`;
      await api(path, { method: "POST", body });
      toast(`${what === "message" ? "Message" : "Signal"} ${node.event_name} delivered`);
      onDone();
    });
  } }, h("span", { class: "muted" }, `Waits at ${node.name || node.id} for ${what} `), h("code", {}, node.event_name), payload, send);
}

/** The migration form: pick a version, map each step the instance waits at to a node of it
 * (the same id by default, when that version has it). */
function migrateForm(inst, versions, graphOf, line, onDone) {
  const others = versions.filter((v) => v.version !== inst.version);
  const pick = h("select", { name: "to_version", "aria-label": "target version" },
    others.map((v) => h("option", { value: v.version }, "v" + v.version)));
  const mapping = h("div", { class: "mapping" });
  const go = h("button", { type: "submit", class: "primary", name: "migrate" }, "Migrate");
  const waits = [...new Set(inst.current_activity_ids)];
  let target = null;
  const draw = async () => {
    const version = Number(pick.value);
    try {
      target = await graphOf(inst.proc_def_id, version);
    } catch (err) { line.set(err); return; }
    if (Number(pick.value) !== version) return;
    const ids = target.nodes.map((n) => n.id);
    clear(mapping, waits.length ? h("p", { class: "muted" }, "Where it waits now, and where it will wait in v" + version + ":") : h("p", { class: "muted" }, "It waits nowhere: nothing to map."),
      waits.map((old) => h("label", { class: "map-row" }, h("code", {}, old), " → ",
        h("select", { name: "map", dataset: { from: old }, "aria-label": `new step for ${old}` },
          ids.includes(old) ? null : h("option", { value: "" }, "— choose a step —"),
          target.nodes.map((n) => h("option", { value: n.id, selected: n.id === old }, n.name ? `${n.id} (${n.name})` : n.id))))));
  };
  pick.onchange = draw;
  draw();
  const form = h("form", { class: "migrate", onsubmit: (e) => {
    e.preventDefault();
    act(go, line, async () => {
      const map = {};
      for (const sel of mapping.querySelectorAll("select[name=map]")) {
        if (!sel.value) throw new Error(`choose where ${sel.dataset.from} goes in v${pick.value}`);
        if (sel.value !== sel.dataset.from) map[sel.dataset.from] = sel.value;
      }
      await api(`/v1/processes/${inst.id}/migrate`, { method: "POST", body: { to_version: Number(pick.value), mapping: map } });
      toast(`Instance moved to v${pick.value}`);
      onDone();
    });
  } }, h("label", {}, "Move to ", pick), mapping, go);
  return h("details", { class: "migrate-box" }, h("summary", {}, `Migrate to another version (now v${inst.version})`), form);
}

/** The action bar of an instance (an element), rebuilt by the caller when its state changes.
 * `versions`: the definition's versions ([{version}]), or null when unknown. */
export function instanceActions(inst, { graph, versions, graphOf, line, onDone }) {
  if (ENDED.has(inst.status)) return h("span", { class: "muted" }, `This instance is ${inst.status.toLowerCase()}: no action applies.`);
  const cancel = h("button", { class: "danger", type: "button", name: "cancel" }, "Cancel instance");
  cancel.onclick = () => act(cancel, line, async () => {
    await api(`/v1/processes/${inst.id}/cancel`, { method: "POST", body: { reason: "cancelled from the console" } });
    toast("Instance cancelled");
    onDone();
  });
  const events = waitingEvents(inst, graph).map((n) => eventForm(inst, n, line, onDone));
  const canMigrate = inst.proc_def_id && inst.version && versions && versions.some((v) => v.version !== inst.version);
  return h("div", { class: "instance-actions" }, events, canMigrate ? migrateForm(inst, versions, graphOf, line, onDone) : null,
    h("div", { class: "actions" }, cancel));
}
