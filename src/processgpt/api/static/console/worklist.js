// The worklist: people's open work items (TODO), filtered by user or role, and one item's
// form (from its form definition) completed in the page.

import { api, query } from "./api.js";
import { readFields, renderFields } from "./forms.js";
import { act, badge, clear, errorLine, facts, h, json, pager, split, toast, when } from "./ui.js";

function formIdOf(tool) {
  if (!tool) return null;
  return tool.includes(":") ? tool.split(":")[1] : tool;
}

/** A draft or earlier output in either shape ({form_id: {...}} or the fields flat). */
function prefill(formId, draft) {
  if (!draft || typeof draft !== "object") return {};
  if (formId && draft[formId] && typeof draft[formId] === "object") return draft[formId];
  return draft;
}

export function create(view) {
  const layout = split(view, "#/worklist");
  const rows = h("tbody");
  const listError = errorLine();
  const user = h("input", { type: "search", placeholder: "assigned to (user)", "aria-label": "user" });
  const role = h("input", { type: "search", placeholder: "role", "aria-label": "role" });
  const paging = pager(() => load());
  let selected = null;
  let current = null;
  for (const el of [user, role]) el.addEventListener("change", () => { paging.reset(); load(); });
  clear(layout.list, h("h2", {}, "Worklist"), h("div", { class: "toolbar" }, user, role),
    h("table", { class: "rows" }, h("thead", {}, h("tr", {}, h("th", {}, "step"), h("th", {}, "who"), h("th", { class: "opt" }, "due"), h("th", {}, "created"))), rows),
    listError, paging.el);

  async function load() {
    try {
      const page = await api("/v1/worklist" + query({ user: user.value.trim(), role: role.value.trim(), cursor: paging.cursor(), limit: 25 }));
      listError.set(null);
      clear(rows, page.items.length ? page.items.map((t) => h("tr", { class: "row" + (t.id === selected ? " selected" : ""), dataset: { id: t.id },
        onclick: () => { location.hash = "#/worklist/" + t.id; } },
      h("td", {}, h("a", { href: "#/worklist/" + t.id }, t.activity_name || t.activity_id || t.query || t.id), t.draft ? h("span", { class: "muted" }, " (draft)") : ""),
      h("td", { class: "ellipsis" + (t.user_id || t.role ? "" : " muted") }, t.user_id || t.role || "unassigned"), h("td", { class: "muted opt" }, when(t.due_at)), h("td", { class: "muted" }, when(t.created_at))))
        : h("tr", {}, h("td", { colspan: 4, class: "empty" }, "Nothing waits for a person.")));
      paging.setNext(page.next_cursor);
    } catch (err) { listError.set(err); }
  }

  async function show(id) {
    const mine = (current = {});
    selected = id;
    layout.select(true);
    for (const r of rows.querySelectorAll("tr.row")) r.classList.toggle("selected", r.dataset.id === id);
    clear(layout.detail, layout.back(), h("p", { class: "muted" }, "Loading…"));
    try {
      const task = await api("/v1/tasks/" + id);
      const formId = formIdOf(task.tool);
      const form = formId ? await api("/v1/forms/" + encodeURIComponent(formId)) : null;
      if (mine !== current) return;
      const line = errorLine();
      const submit = h("button", { class: "primary", type: "submit" }, "Complete");
      const open = task.status === "TODO";
      const values = prefill(formId, task.draft);
      const raw = h("textarea", { class: "code", name: "output" }, JSON.stringify(values, null, 2));
      const fields = form?.fields || [];
      const body = h("form", { class: "task-form card", id: "task-form", onsubmit: (e) => {
        e.preventDefault();
        act(submit, line, async () => {
          let output;
          if (fields.length) output = { [formId]: readFields(body, fields) };
          else { try { output = JSON.parse(raw.value || "{}"); } catch (err) { throw new Error("output is not valid JSON: " + err.message); } }
          await api(`/v1/tasks/${id}/complete`, { method: "POST", body: { output } });
          toast("Completed: " + (task.activity_name || "the step"));
          load();
          location.hash = task.proc_inst_id ? "#/processes/" + task.proc_inst_id : "#/worklist";
        });
      } }, fields.length ? renderFields(fields, values) : h("label", {}, "Output (JSON)", raw), open ? submit : null, line);
      if (!open) for (const el of body.elements) el.disabled = true;
      clear(layout.detail, layout.back(),
        h("div", { class: "card" }, h("div", { class: "head" }, h("h2", {}, task.activity_name || task.activity_id || "Work item"), badge(task.status)),
          task.description ? h("p", {}, task.description) : null,
          facts([["assigned to", task.user_id], ["role", task.role], ["due", when(task.due_at)], ["form", formId],
            ["process", task.proc_inst_id ? h("a", { href: "#/processes/" + task.proc_inst_id }, "instance →") : null]]),
          open ? null : h("p", { class: "muted" }, "This item is " + task.status + ": nothing to complete.")),
        task.draft ? h("p", { class: "muted" }, "An agent prepared a draft: the form starts from it.") : null,
        body,
        Object.keys(task.input || {}).length ? [h("h3", {}, "Input"), json(task.input)] : null);
    } catch (err) {
      if (mine === current) clear(layout.detail, layout.back(), h("p", { class: "error" }, err.describe ? err.describe() : String(err)));
    }
  }

  load();
  const timer = setInterval(load, 4000);
  return {
    route(parts) {
      if (parts[0]) show(parts[0]);
      else { selected = null; current = null; layout.select(false); clear(layout.detail, h("p", { class: "muted" }, "Select a work item to open its form.")); }
    },
    dispose() { clearInterval(timer); current = null; },
  };
}
