// Memories: what agents are taught and learn (facts, guidelines, preferences, corrections),
// by status and scope; proposals approved or rejected; an item taught, retired, or searched
// as a task of a scope would retrieve it.

import { api, query } from "./api.js";
import { act, badge, clear, errorLine, h, toast, when } from "./ui.js";

const STATUSES = ["active", "proposed", "superseded", "deleted"];
const KINDS = ["guideline", "fact", "preference", "correction"];

function scopeText(scope) {
  const parts = Object.entries(scope || {}).filter(([, v]) => v).map(([k, v]) => `${k.replace("_id", "")}: ${v}`);
  return parts.length ? parts.join(", ") : "tenant-wide";
}

export function create(view) {
  const pane = h("section", { class: "pane full" });
  clear(view, pane);
  view.classList.remove("has-selection");
  const status = h("select", { "aria-label": "status" }, h("option", { value: "" }, "any status"), STATUSES.map((s) => h("option", { value: s, selected: s === "active" }, s)));
  const agent = h("input", { type: "search", placeholder: "agent", "aria-label": "agent" });
  const rows = h("tbody");
  const line = errorLine();
  const more = h("button", { type: "button", hidden: true }, "More");
  let before = null;

  const content = h("textarea", { name: "content", required: true, placeholder: "Reports are always written as tables." });
  const kind = h("select", { name: "kind", "aria-label": "kind" }, KINDS.map((k) => h("option", { value: k }, k)));
  const teachAgent = h("input", { name: "scope-agent", placeholder: "agent (empty: tenant-wide)" });
  const pinned = h("input", { type: "checkbox", name: "pinned" });
  const teach = h("button", { class: "primary", type: "submit" }, "Teach");
  const teachLine = errorLine();
  const q = h("input", { type: "search", name: "q", placeholder: "what would a task of this agent retrieve for…", "aria-label": "search memories" });
  const hits = h("ol", { class: "timeline" });
  const searchLine = errorLine();

  clear(pane, h("h2", {}, "Memories"),
    h("details", { class: "card" }, h("summary", {}, "Teach an item"),
      h("form", { class: "new", onsubmit: (e) => {
        e.preventDefault();
        act(teach, teachLine, async () => {
          await api("/v1/memories", { method: "POST", body: { content: content.value, kind: kind.value, pinned: pinned.checked, scope: teachAgent.value.trim() ? { agent: teachAgent.value.trim() } : {} } });
          content.value = "";
          toast("Taught");
          load();
        });
      } }, h("label", {}, "Content", content), h("div", { class: "toolbar" }, kind, teachAgent, h("label", { class: "check" }, pinned, "pinned (always given)")), teach, teachLine)),
    h("h3", {}, "What a task would retrieve"),
    h("p", { class: "muted" }, "Searched in the scope of the agent named in the filter below (or tenant-wide)."),
    h("form", { class: "toolbar", onsubmit: async (e) => {
      e.preventDefault();
      searchLine.set(null);
      try {
        const found = await api("/v1/memories/search", { method: "POST", body: { query: q.value, scope: agent.value.trim() ? { agent: agent.value.trim() } : {} } });
        clear(hits, found.length ? found.map((hit) => h("li", {}, hit.item.content, h("span", { class: "when" }, `score ${hit.score.toFixed(3)} · ${scopeText(hit.item.scope)}`))) : h("li", { class: "muted" }, "Nothing would be retrieved."));
      } catch (err) { searchLine.set(err); }
    } }, q, h("button", { type: "submit" }, "Search")), searchLine, hits,
    h("h3", {}, "Items"), h("div", { class: "toolbar" }, status, agent),
    h("table", { class: "rows" }, h("thead", {}, h("tr", {}, h("th", {}, "status"), h("th", { class: "opt" }, "kind"), h("th", {}, "content"), h("th", {}, "scope"), h("th", { class: "opt" }, "source"), h("th", { class: "opt" }, "created"), h("th", {}, ""))), rows),
    line, more);

  function actions(item) {
    const out = [];
    const button = (label, fn, cls) => {
      const b = h("button", { type: "button", class: cls, name: label.toLowerCase() }, label);
      b.onclick = () => act(b, line, async () => { await fn(); toast(label + ": done"); load(); });
      out.push(b);
    };
    if (item.status === "proposed") {
      button("Approve", () => api(`/v1/memories/${item.id}/approve`, { method: "POST", body: {} }), "primary");
      button("Reject", () => api(`/v1/memories/${item.id}/reject`, { method: "POST", body: {} }), "danger");
    }
    if (item.status === "active") button("Retire", () => api(`/v1/memories/${item.id}`, { method: "DELETE" }), "danger");
    return out;
  }

  async function load(append = false) {
    try {
      const page = await api("/v1/memories" + query({ status: status.value, agent: agent.value.trim(), before: append ? before : null, limit: 50 }));
      line.set(null);
      const items = page.items.map((m) => h("tr", { dataset: { id: m.id } }, h("td", {}, badge(m.status.toUpperCase())), h("td", { class: "opt" }, m.kind, m.pinned ? h("span", { class: "muted" }, " · pinned") : ""),
        h("td", {}, m.content), h("td", { class: "muted" }, scopeText(m.scope)), h("td", { class: "muted opt" }, m.source),
        h("td", { class: "muted opt" }, when(m.created_at)), h("td", {}, actions(m))));
      if (append) rows.append(...items);
      else clear(rows, items.length ? items : h("tr", {}, h("td", { colspan: 7, class: "empty" }, "No memories here.")));
      before = page.next_before;
      more.hidden = !page.next_before;
    } catch (err) { line.set(err); }
  }
  more.onclick = () => load(true);
  status.onchange = () => load();
  agent.onchange = () => load();
  load();
  return { route() {}, dispose() {} };
}
