// Process definitions: the list, one definition's versions with its diagram (drawn here from
// the compiled graph), and starting an instance of it.

import { api, query } from "./api.js";
import { diagram } from "./diagram.js";
import { act, clear, errorLine, facts, h, split, when } from "./ui.js";

export function create(view) {
  const layout = split(view, "#/definitions");
  const rows = h("tbody");
  const listError = errorLine();
  const more = h("button", { type: "button", hidden: true }, "More");
  let after = "";
  let selected = null;
  let current = null;

  clear(layout.list, h("h2", {}, "Process definitions"),
    h("p", { class: "muted" }, "Publish with ", h("code", {}, "processgpt process deploy"), " or POST /v1/process-definitions."),
    h("table", { class: "rows" }, h("thead", {}, h("tr", {}, h("th", {}, "id"), h("th", {}, "name"), h("th", {}, "version"), h("th", {}, "published"))), rows),
    listError, more);

  async function load(append = false) {
    try {
      const page = await api("/v1/process-definitions" + query({ after: append ? after : "", limit: 50 }));
      const items = page.items.map((d) => h("tr", { class: "row" + (d.id === selected ? " selected" : ""), dataset: { id: d.id },
        onclick: () => { location.hash = "#/definitions/" + encodeURIComponent(d.id); } },
      h("td", {}, h("a", { href: "#/definitions/" + encodeURIComponent(d.id) }, h("code", {}, d.id))), h("td", {}, d.name), h("td", {}, "v" + d.version), h("td", { class: "muted" }, when(d.created_at))));
      if (append) rows.append(...items);
      else clear(rows, items.length ? items : h("tr", {}, h("td", { colspan: 4, class: "empty" }, "No definitions published yet.")));
      after = page.next_after || "";
      more.hidden = !page.next_after;
    } catch (err) { listError.set(err); }
  }
  more.onclick = () => load(true);

  async function show(id, version) {
    const mine = (current = {});
    selected = id;
    layout.select(true);
    for (const r of rows.querySelectorAll("tr.row")) r.classList.toggle("selected", r.dataset.id === id);
    const line = errorLine();
    clear(layout.detail, layout.back(), h("p", { class: "muted" }, "Loading…"));
    try {
      const def = await api("/v1/process-definitions/" + encodeURIComponent(id));
      const v = version || def.latest_version;
      const full = await api(`/v1/process-definitions/${encodeURIComponent(id)}/versions/${v}`);
      if (mine !== current) return;
      const pick = h("select", { "aria-label": "version", onchange: () => { location.hash = `#/definitions/${encodeURIComponent(id)}/${pick.value}`; } },
        def.versions.map((x) => h("option", { value: x.version, selected: x.version === v }, `v${x.version} · ${when(x.created_at)}`)));
      const name = h("input", { name: "name", placeholder: "instance name (optional)" });
      const variables = h("textarea", { class: "code", name: "variables" }, "{}");
      const start = h("button", { class: "primary", type: "submit" }, "Start an instance");
      const parse = (el, what) => { try { return JSON.parse(el.value || "{}"); } catch (err) { throw new Error(`${what} is not valid JSON: ${err.message}`); } };
      const roleNames = [...new Set((full.graph.nodes || []).map((n) => n.activity?.role).filter(Boolean))];
      // One box per role of the definition: who does its steps in this instance (empty: the
      // role's default, or the role's work list).
      const roleInputs = roleNames.map((r) => h("input", { name: "role:" + r, placeholder: "user, e.g. lee@example.com", "aria-label": "role " + r }));
      clear(layout.detail, layout.back(),
        h("div", { class: "card" }, h("div", { class: "head" }, h("h2", {}, full.name || id), pick),
          facts([["id", h("code", {}, id)], ["format", full.format], ["roles", roleNames.join(", ")]])),
        h("h3", {}, "Diagram"), h("div", { class: "diagram" }, diagram(full.graph)),
        h("h3", {}, "Start an instance"),
        h("form", { class: "new card", onsubmit: (e) => {
          e.preventDefault();
          act(start, line, async () => {
            const roles = {};
            roleInputs.forEach((el, i) => { if (el.value.trim()) roles[roleNames[i]] = el.value.trim(); });
            const body = { proc_def_id: id, version: v, variables: parse(variables, "variables"), roles };
            if (name.value) body.name = name.value;
            const inst = await api("/v1/processes", { method: "POST", body });
            location.hash = "#/processes/" + inst.id;
          });
        } }, h("label", {}, "Name ", name), h("label", {}, "Variables (JSON)", variables),
        roleNames.length ? h("fieldset", { class: "roles" }, h("legend", {}, "Who does each role's steps (optional)"),
          roleNames.map((r, i) => h("label", {}, h("code", {}, r), roleInputs[i]))) : null, start, line));
    } catch (err) {
      if (mine === current) clear(layout.detail, layout.back(), h("p", { class: "error" }, err.describe ? err.describe() : String(err)));
    }
  }

  load();
  return {
    route(parts) {
      if (parts[0]) show(parts[0], parts[1] ? Number(parts[1]) : null);
      else { selected = null; layout.select(false); clear(layout.detail, h("p", { class: "muted" }, "Select a definition to see its diagram and start it.")); }
    },
    dispose() { current = null; },
  };
}
