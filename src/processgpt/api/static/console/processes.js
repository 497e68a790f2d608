// Process instances: the list (live states) and one instance followed live over its stream:
// its diagram with finished, waiting and failed steps marked, its tasks, incidents (resolve),
// variables and history; the actions its state allows (process_actions.js).

import { api, query, stream } from "./api.js";
import { diagram } from "./diagram.js";
import { documentsPanel } from "./documents.js";
import { instanceActions } from "./process_actions.js";
import { act, badge, clear, errorLine, facts, h, json, pager, short, split, toast, when } from "./ui.js";

const STATES = ["RUNNING", "INCIDENT", "COMPLETED", "CANCELLED"];
const ENDED = new Set(["COMPLETED", "CANCELLED"]);
const DONE_KINDS = new Set(["instance_started", "step_completed", "child_completed", "gateway_decision", "join_fired",
  "timer_fired", "message_received", "signal_received", "end_reached"]);
const graphs = new Map();  // "id/version" -> graph (versions are immutable)

export async function graphOf(defId, version) {
  const key = `${defId}/${version}`;
  if (!graphs.has(key)) {
    graphs.set(key, api(`/v1/process-definitions/${encodeURIComponent(defId)}/versions/${version}`).then((v) => v.graph)
      .catch((err) => { graphs.delete(key); throw err; }));
  }
  return graphs.get(key);
}

async function history(id) {
  const lines = [];
  let after = 0;
  for (;;) {
    const page = await api(`/v1/processes/${id}/history` + query({ after, limit: 1000 }));
    lines.push(...page.items);
    if (page.items.length < 1000) return lines;
    after = page.next_after;
  }
}

function historyLine(line) {
  const d = line.data || {};
  const what = {
    instance_started: "started", step_started: "step started", step_completed: "step completed",
    gateway_decision: "decision", incident: "incident", instance_completed: "completed",
    incident_resolved: "incident resolved", instance_cancelled: "cancelled",
  }[line.kind] || line.kind.replace(/_/g, " ");
  const reason = d.reason || d.reasoning || (Array.isArray(d.flows) ? "took " + d.flows.join(", ") : "");
  return h("li", { class: line.kind === "incident" ? "bad" : line.kind.includes("completed") ? "good" : "" },
    h("span", { class: "label" }, what), line.node_id ? [" ", h("code", {}, line.node_id)] : "",
    reason ? h("span", { class: "muted" }, " — " + reason) : "", h("span", { class: "when" }, when(line.at)));
}

export function incidentCard(instId, incident, onDone) {
  const line = errorLine();
  const vars = h("input", { class: "code", name: "variables", placeholder: 'variables to set first, e.g. {"amount": 120} (optional)', "aria-label": "variables to set before retrying" });
  const retry = h("button", { type: "button", class: "primary", name: "resolve" }, "Retry here");
  retry.onclick = () => act(retry, line, async () => {
    let variables = {};
    if (vars.value.trim()) { try { variables = JSON.parse(vars.value); } catch (err) { throw new Error("variables: " + err.message); } }
    await api(`/v1/processes/${incident.child_id || instId}/incidents/${encodeURIComponent(incident.id)}/resolve`, { method: "POST", body: { variables } });
    toast("Incident resolved: the step runs again");
    onDone();
  });
  return h("div", { class: "card", dataset: { incident: incident.id } },
    h("div", {}, badge("INCIDENT"), " ", h("b", {}, incident.kind), " at ", h("code", {}, incident.node_id),
      incident.child_id ? [" in child ", h("a", { href: "#/processes/" + incident.child_id }, short(incident.child_id))] : ""),
    h("p", {}, incident.reason), h("div", { class: "actions" }, vars, retry), line);
}

export function create(view) {
  const layout = split(view, "#/processes");
  const rows = h("tbody");
  const listError = errorLine();
  const status = h("select", { "aria-label": "state" }, h("option", { value: "" }, "all states"), STATES.map((s) => h("option", { value: s }, s)));
  const def = h("input", { type: "search", placeholder: "definition id", "aria-label": "definition" });
  const paging = pager(() => load());
  let selected = null;
  let following = null;
  status.onchange = () => { paging.reset(); load(); };
  def.onchange = () => { paging.reset(); load(); };
  clear(layout.list, h("h2", {}, "Process instances"), h("div", { class: "toolbar" }, def, status),
    h("table", { class: "rows" }, h("thead", {}, h("tr", {}, h("th", {}, "state"), h("th", {}, "process"), h("th", { class: "opt" }, "waits at"), h("th", {}, "started"))), rows),
    listError, paging.el);

  async function load() {
    try {
      const page = await api("/v1/processes" + query({ status: status.value, proc_def_id: def.value.trim(), cursor: paging.cursor(), limit: 25 }));
      listError.set(null);
      clear(rows, page.items.length ? page.items.map((p) => h("tr", { class: "row" + (p.id === selected ? " selected" : ""), dataset: { id: p.id },
        onclick: () => { location.hash = "#/processes/" + p.id; } },
      h("td", {}, badge(p.status)), h("td", {}, h("a", { href: "#/processes/" + p.id }, p.name || p.proc_def_id || short(p.id)), p.version ? h("span", { class: "muted" }, " v" + p.version) : ""),
      h("td", { class: "ellipsis opt" }, p.current_activity_ids.join(", ")), h("td", { class: "muted" }, when(p.start_date))))
        : h("tr", {}, h("td", { colspan: 4, class: "empty" }, "No process instances.")));
      paging.setNext(page.next_cursor);
    } catch (err) { listError.set(err); }
  }

  async function show(id) {
    following?.abort();
    const controller = (following = new AbortController());
    selected = id;
    layout.select(true);
    for (const r of rows.querySelectorAll("tr.row")) r.classList.toggle("selected", r.dataset.id === id);
    const line = errorLine();
    const st = badge("…", { id: "process-status" });
    const title = h("h2");
    const actions = h("div");
    const info = h("div");
    const pic = h("div", { class: "diagram" });
    const incidents = h("div");
    const tasks = h("tbody");
    const vars = h("div");
    const hist = h("ol", { class: "timeline" });
    const documents = documentsPanel({ proc_inst_id: id });
    clear(layout.detail, layout.back(), h("div", { class: "card" }, h("div", { class: "head" }, title, st), info, actions, line),
      incidents, h("h3", {}, "Diagram"),
      h("div", { class: "legend" }, h("span", { class: "l-done" }, "finished"), h("span", { class: "l-active" }, "waiting / running"), h("span", { class: "l-incident" }, "incident")),
      pic, h("h3", {}, "Tasks"),
      h("table", { class: "rows" }, h("thead", {}, h("tr", {}, h("th", {}, "state"), h("th", {}, "step"), h("th", {}, "who"), h("th", {}, "created"))), tasks),
      documents.el, h("h3", {}, "Variables"), vars, h("h3", {}, "History"), hist);

    let refreshing = null;
    let again = false;
    const refresh = async () => {
      if (refreshing) { again = true; return; }
      refreshing = (async () => {
        do {
          again = false;
          const [inst, lines] = await Promise.all([api("/v1/processes/" + id, { signal: controller.signal }), history(id)]);
          if (controller.signal.aborted) return;
          render(inst, lines);
        } while (again && !controller.signal.aborted);
      })().catch((err) => { if (!controller.signal.aborted) line.set(err); }).finally(() => { refreshing = null; });
    };
    let versions = null;  // the definition's versions, read again when the state changes
    const drawActions = async (inst) => {
      let graph = null;
      if (inst.proc_def_id && inst.version && !ENDED.has(inst.status)) {
        try {
          versions = (await api(`/v1/process-definitions/${encodeURIComponent(inst.proc_def_id)}`)).versions;
          graph = await graphOf(inst.proc_def_id, inst.version);
        } catch (err) { line.set(err); }
      }
      if (controller.signal.aborted || actions.dataset.key !== [inst.status, inst.version, [...inst.current_activity_ids].sort()].join("|")) return;
      clear(actions, instanceActions(inst, { graph, versions, graphOf, line, onDone: () => { refresh(); load(); } }));
    };
    let drawn = "";
    const render = async (inst, lines) => {
      title.textContent = inst.name || inst.proc_def_id || "instance " + short(inst.id);
      st.textContent = inst.status;
      st.className = "badge " + inst.status;
      clear(info, facts([["id", h("code", {}, inst.id)], ["definition", inst.proc_def_id ? h("a", { href: `#/definitions/${encodeURIComponent(inst.proc_def_id)}/${inst.version}` }, `${inst.proc_def_id} v${inst.version}`) : "(one task)"],
        ["started", when(inst.start_date)], ["ended", when(inst.end_date)], ["waits at", inst.current_activity_ids.join(", ")],
        ["parent", inst.parent_id ? h("a", { href: "#/processes/" + inst.parent_id }, short(inst.parent_id)) : null]]));
      const actionsKey = [inst.status, inst.version, [...inst.current_activity_ids].sort()].join("|");
      if (actions.dataset.key !== actionsKey) {  // rebuilt only on change: keeps what is typed
        actions.dataset.key = actionsKey;
        drawActions(inst);
      }
      const open = [...inst.incidents, ...inst.child_incidents];
      const shown = open.map((i) => i.id + (i.child_id || "")).join();
      if (incidents.dataset.shown !== shown) {
        incidents.dataset.shown = shown;
        clear(incidents, open.map((i) => incidentCard(id, i, () => { refresh(); load(); })));
      }
      clear(tasks, inst.tasks.map((t) => h("tr", { class: "row", dataset: { id: t.id }, onclick: () => { location.hash = (t.status === "TODO" ? "#/worklist/" : "#/tasks/") + t.id; } },
        h("td", {}, badge(t.status)), h("td", {}, t.activity_name || t.activity_id || t.agent_orch, t.activation > 1 ? h("span", { class: "muted" }, " #" + t.activation) : ""),
        h("td", { class: "ellipsis" }, t.user_id || (t.agent_orch !== "human" ? "agent " + t.agent_orch : "")), h("td", { class: "muted" }, when(t.created_at)))));
      clear(vars, json(inst.variables));
      clear(hist, lines.map(historyLine));
      if (inst.proc_def_id && inst.version) {
        const done = new Set(lines.filter((l) => DONE_KINDS.has(l.kind)).map((l) => l.node_id).filter(Boolean));
        const active = new Set(inst.current_activity_ids);
        const incident = new Set(open.map((i) => i.node_id));
        const key = [...done].sort() + "|" + [...active].sort() + "|" + [...incident].sort();
        if (key !== drawn) {
          drawn = key;
          try {
            const graph = await graphOf(inst.proc_def_id, inst.version);
            // The start node counts as finished once the instance has begun.
            for (const n of graph.nodes) if (n.kind === "start" && lines.length) done.add(n.id);
            clear(pic, diagram(graph, { done, active, incident }));
            // A diagram wider than its box (a phone) scrolls: bring where it waits into view.
            const here = pic.querySelector("g.incident, g.active");
            if (here && pic.scrollWidth > pic.clientWidth) pic.scrollLeft = Math.max(0, here.getBBox().x - 40);
          } catch (err) { clear(pic, h("p", { class: "error" }, err.describe ? err.describe() : String(err))); }
        }
      } else clear(pic, h("p", { class: "muted" }, "No definition: this instance was started with one task."));
    };

    await refresh();
    try {
      await stream(`/v1/processes/${id}/stream`, (part) => {
        if (part.type === "data-process_event" || part.type === "data-task_status" || part.type === "data-process_status") refresh();
        if (part.type === "data-task_status") documents.refresh();  // a step may have stored one
      }, controller.signal);
    } catch (err) { if (!controller.signal.aborted) line.set(err); }
    if (!controller.signal.aborted) { refresh(); load(); }
  }

  load();
  const timer = setInterval(load, 4000);
  return {
    route(parts) {
      if (parts[0]) { if (parts[0] !== selected) show(parts[0]); }
      else { following?.abort(); selected = null; layout.select(false); clear(layout.detail, h("p", { class: "muted" }, "Select an instance to follow it live.")); }
    },
    dispose() { clearInterval(timer); following?.abort(); },
  };
}
