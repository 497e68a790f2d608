// Notifications: what people are told (a work item assigned, a task needing input, a process
// done or stopped by an incident), listed with read marks, and followed live: a toast and
// the unread count in the header as each one commits.

import { api, query, stream } from "./api.js";
import { act, clear, errorLine, h, pager, toast, when } from "./ui.js";

const LABELS = {
  TASK_ASSIGNED: "work assigned", INPUT_REQUIRED: "input needed",
  PROCESS_DONE: "process completed", PROCESS_INCIDENT: "process incident",
};

function target(n) {
  if (n.type === "TASK_ASSIGNED" && n.todo_id) return "#/worklist/" + n.todo_id;
  if (n.todo_id) return "#/tasks/" + n.todo_id;
  if (n.proc_inst_id) return "#/processes/" + n.proc_inst_id;
  return null;
}

/** The live feed for the header: the unread count and a toast per new notification. Runs
 * while signed in; `onNew` lets the open page add the row. */
export function startFeed(countEl) {
  const controller = new AbortController();
  let unread = 0;
  const show = () => {
    countEl.textContent = unread > 99 ? "99+" : String(unread);
    countEl.hidden = unread === 0;
  };
  const recount = async () => {
    try {
      const page = await api("/v1/notifications" + query({ unread: "true", limit: 100 }), { signal: controller.signal });
      unread = page.items.length;
      show();
    } catch { /* the count waits for the next event; errors show on the page itself */ }
  };
  window.addEventListener("processgpt:notifications-read", recount);
  (async () => {
    await recount();
    // Reconnect after a dropped stream (the server restarts, a proxy closes it).
    while (!controller.signal.aborted) {
      try {
        await stream("/v1/notifications/stream", (n) => {
          unread += n.read ? 0 : 1;
          show();
          toast((LABELS[n.type] || n.type) + ": " + n.message);
          window.dispatchEvent(new CustomEvent("processgpt:notification", { detail: n }));
        }, controller.signal);
      } catch { /* retried below */ }
      if (!controller.signal.aborted) await new Promise((r) => setTimeout(r, 3000));
    }
  })();
  return () => {
    controller.abort();
    window.removeEventListener("processgpt:notifications-read", recount);
    countEl.hidden = true;
  };
}

export function create(view) {
  const pane = h("section", { class: "pane full" });
  clear(view, pane);
  view.classList.remove("has-selection");
  const user = h("input", { type: "search", placeholder: "for user", "aria-label": "user" });
  const role = h("input", { type: "search", placeholder: "role", "aria-label": "role" });
  const unreadOnly = h("input", { type: "checkbox", name: "unread" });
  const markAll = h("button", { type: "button" }, "Mark all read");
  const rows = h("tbody");
  const line = errorLine();
  const paging = pager(() => load());
  for (const el of [user, role, unreadOnly]) el.addEventListener("change", () => { paging.reset(); load(); });
  const filters = () => ({ user: user.value.trim(), role: role.value.trim() });
  markAll.onclick = () => act(markAll, line, async () => {
    const done = await api("/v1/notifications/read" + query(filters()), { method: "POST" });
    toast(`${done.marked} marked read`);
    window.dispatchEvent(new Event("processgpt:notifications-read"));
    load();
  });
  clear(pane, h("h2", {}, "Notifications"),
    h("div", { class: "toolbar" }, user, role, h("label", { class: "check" }, unreadOnly, "unread only"), markAll),
    h("table", { class: "rows" }, h("thead", {}, h("tr", {}, h("th", {}, "what"), h("th", {}, "message"), h("th", { class: "opt" }, "for"), h("th", {}, "when"), h("th", {}, ""))), rows),
    line, paging.el);

  function row(n) {
    const link = target(n);
    let action = null;
    if (!n.read) {
      action = h("button", { type: "button", name: "read" }, "Mark read");
      action.onclick = () => act(action, line, async () => {
        await api(`/v1/notifications/${n.id}/read`, { method: "POST" });
        window.dispatchEvent(new Event("processgpt:notifications-read"));
        load();
      });
    }
    return h("tr", { dataset: { id: String(n.id) }, class: n.read ? "read" : "unread" },
      h("td", {}, h("span", { class: "badge " + (n.type === "PROCESS_INCIDENT" ? "INCIDENT" : n.type === "PROCESS_DONE" ? "DONE" : "TODO") }, LABELS[n.type] || n.type)),
      h("td", {}, link ? h("a", { href: link }, n.message) : n.message),
      h("td", { class: "ellipsis opt" }, n.user_id || n.role || "everyone"), h("td", { class: "muted" }, when(n.created_at)), h("td", {}, action));
  }

  async function load() {
    try {
      const page = await api("/v1/notifications" + query({ ...filters(), unread: unreadOnly.checked ? "true" : "", cursor: paging.cursor(), limit: 25 }));
      line.set(null);
      clear(rows, page.items.length ? page.items.map(row) : h("tr", {}, h("td", { colspan: 5, class: "empty" }, "No notifications.")));
      paging.setNext(page.next_cursor);
    } catch (err) { line.set(err); }
  }
  const live = () => load();
  window.addEventListener("processgpt:notification", live);
  load();
  return { route() {}, dispose() { window.removeEventListener("processgpt:notification", live); } };
}
