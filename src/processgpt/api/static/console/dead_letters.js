// Dead letters: tasks that failed for good (FAILED: out of attempts, or not retryable), with
// their error, re-queued from here (a process step is retried through its incident instead).

import { api, query } from "./api.js";
import { act, badge, clear, errorLine, h, pager, short, toast, when } from "./ui.js";

export function create(view) {
  const pane = h("section", { class: "pane full" });
  clear(view, pane);
  view.classList.remove("has-selection");
  const rows = h("tbody");
  const line = errorLine();
  const paging = pager(() => load());
  clear(pane, h("h2", {}, "Dead letters"), h("p", { class: "muted" }, "Tasks that failed for good. Re-queue runs one again with its attempts reset."),
    h("table", { class: "rows" }, h("thead", {}, h("tr", {}, h("th", { class: "opt" }, "state"), h("th", { class: "opt" }, "agent"), h("th", {}, "query"), h("th", {}, "error"), h("th", { class: "opt" }, "failed"), h("th", {}, ""))), rows),
    line, paging.el);

  async function load() {
    try {
      const page = await api("/v1/tasks" + query({ status: "FAILED", cursor: paging.cursor(), limit: 25 }));
      line.set(null);
      clear(rows, page.items.length ? page.items.map((t) => {
        let action;
        if (t.activation !== null && t.activation !== undefined) action = h("a", { href: "#/processes/" + t.proc_inst_id }, "resolve in its instance");
        else {
          action = h("button", { type: "button", name: "requeue" }, "Re-queue");
          action.onclick = () => act(action, line, async () => {
            await api(`/v1/tasks/${t.id}/requeue`, { method: "POST" });
            toast("Task " + short(t.id) + " queued again");
            load();
          });
        }
        return h("tr", { dataset: { id: t.id } }, h("td", { class: "opt" }, badge(t.status)), h("td", { class: "opt" }, t.agent_orch),
          h("td", { class: "ellipsis" }, h("a", { href: "#/tasks/" + t.id }, t.query || t.activity_name || short(t.id))),
          h("td", { class: "ellipsis", title: t.error?.message || "" }, t.error?.message || t.error?.code || ""),
          h("td", { class: "muted opt" }, when(t.finished_at || t.updated_at)), h("td", {}, action));
      }) : h("tr", {}, h("td", { colspan: 6, class: "empty" }, "No failed tasks.")));
      paging.setNext(page.next_cursor);
    } catch (err) { line.set(err); }
  }
  load();
  const timer = setInterval(load, 5000);
  return { route() {}, dispose() { clearInterval(timer); } };
}
