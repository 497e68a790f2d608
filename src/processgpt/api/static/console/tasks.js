// Tasks: a searchable, paged list (status live: refreshed every few seconds) and a task's
// detail followed live over its stream, with the actions its state allows.

import { api, query, stream } from "./api.js";
import { documentsPanel } from "./documents.js";
import { filesPanel } from "./files.js";
import { Timeline, questionOf } from "./timeline.js";
import { act, badge, clear, errorLine, facts, h, json, pager, short, split, toast, when } from "./ui.js";

const STATUSES = ["PENDING", "IN_PROGRESS", "INPUT_REQUIRED", "TODO", "DONE", "FAILED", "CANCELLED"];
const TERMINAL = new Set(["DONE", "FAILED", "CANCELLED"]);
const REFRESH_MS = 3000;

export function create(view) {
  const layout = split(view, "#/tasks");
  const search = h("input", { type: "search", placeholder: "search query, agent, id…", "aria-label": "search" });
  const status = h("select", { "aria-label": "status" }, h("option", { value: "" }, "all states"),
    STATUSES.map((s) => h("option", { value: s }, s)));
  const rows = h("tbody");
  const listError = errorLine();
  const paging = pager(() => load());
  let selected = null;
  let following = null;  // AbortController of the followed task's stream
  let loading = null;

  const agent = h("input", { value: "demo", required: true, name: "agent" });
  const text = h("textarea", { name: "query" }, "hello from the console");
  const input = h("textarea", { class: "code", name: "input" }, '{"steps": 3, "delay": 0.3}');
  const submitError = errorLine();
  const submit = h("button", { class: "primary", type: "submit" }, "Submit task");
  const newTask = h("details", { class: "card" }, h("summary", {}, "New task"),
    h("form", { class: "new", onsubmit: async (e) => {
      e.preventDefault();
      await act(submit, submitError, async () => {
        let parsed;
        try { parsed = JSON.parse(input.value || "{}"); } catch (err) { throw new Error("input is not valid JSON: " + err.message); }
        const task = await api("/v1/tasks", { method: "POST", body: { agent_orch: agent.value, query: text.value, input: parsed } });
        location.hash = "#/tasks/" + task.id;
        load();
      });
    } }, h("label", {}, "Agent ", agent), h("label", {}, "Query", text), h("label", {}, "Input (JSON)", input), submit, submitError));

  let searchTimer = null;
  search.addEventListener("input", () => {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(() => { paging.reset(); load(); }, 300);
  });
  status.addEventListener("change", () => { paging.reset(); load(); });
  clear(layout.list, h("h2", {}, "Tasks"), newTask, h("div", { class: "toolbar" }, search, status),
    h("table", { class: "rows" }, h("thead", {}, h("tr", {}, h("th", {}, "state"), h("th", { class: "opt" }, "agent"),
      h("th", {}, "query"), h("th", {}, "created"))), rows), listError, paging.el);

  async function load() {
    const mine = (loading = new AbortController());
    try {
      const page = await api("/v1/tasks" + query({ q: search.value.trim(), status: status.value, cursor: paging.cursor(), limit: 25 }), { signal: mine.signal });
      if (mine !== loading) return;
      listError.set(null);
      clear(rows, page.items.length ? page.items.map((t) => h("tr", {
        class: "row" + (t.id === selected ? " selected" : ""), dataset: { id: t.id },
        onclick: () => { location.hash = "#/tasks/" + t.id; },
      }, h("td", {}, badge(t.status)), h("td", { class: "opt" }, t.agent_orch),
      h("td", { class: "ellipsis", title: t.query }, h("a", { href: "#/tasks/" + t.id }, t.query || t.activity_name || t.id)),
      h("td", { class: "muted" }, when(t.created_at)))) : h("tr", {}, h("td", { colspan: 4, class: "empty" }, "No tasks here.")));
      paging.setNext(page.next_cursor);
    } catch (err) {
      if (!mine.signal.aborted) listError.set(err);
    }
  }

  function renderActions(box, task, line, reload) {
    const buttons = [];
    const step = task.activation !== null && task.activation !== undefined;
    if (!TERMINAL.has(task.status) && task.status !== "TODO" && !step) {
      const b = h("button", { class: "danger", type: "button", name: "cancel" }, "Cancel");
      b.onclick = () => act(b, line, async () => {
        await api(`/v1/tasks/${task.id}/cancel`, { method: "POST", body: { reason: "cancelled from the console" } });
        toast("Task cancelled");
        reload();
      });
      buttons.push(b);
    }
    if ((task.status === "FAILED" || task.status === "CANCELLED") && !step) {
      const b = h("button", { type: "button", name: "requeue" }, "Re-queue");
      b.onclick = () => act(b, line, async () => {
        await api(`/v1/tasks/${task.id}/requeue`, { method: "POST" });
        toast("Task queued again");
        reload();
      });
      buttons.push(b);
    }
    if (task.status === "TODO") buttons.push(h("a", { href: "#/worklist/" + task.id }, "Open the form in the worklist →"));
    if (task.proc_inst_id) buttons.push(h("a", { href: "#/processes/" + task.proc_inst_id }, "Process instance →"));
    clear(box, buttons.length ? buttons : h("span", { class: "muted" }, "No action applies in this state."));
  }

  function questionPanel(task, question, line, reload) {
    const answer = h("input", { name: "answer", placeholder: "your answer", "aria-label": "answer", required: true });
    const send = h("button", { class: "primary", type: "submit" }, "Answer");
    const reply = (value) => act(send, line, async () => {
      await api(`/v1/tasks/${task.id}/input`, { method: "POST", body: { answer: value } });
      toast("Answer sent");
      reload();
    });
    return h("div", { class: "card ask", id: "question" },
      h("div", { class: "muted" }, "The agent asks" + (question.role ? ` (${question.role})` : "") + ":"),
      h("div", { class: "question" }, question.text || "(no question text)"),
      question.options.length ? h("div", { class: "options" }, question.options.map((o) =>
        h("button", { type: "button", onclick: () => reply(o) }, o))) : null,
      h("form", { onsubmit: (e) => { e.preventDefault(); reply(answer.value); } }, answer, send));
  }

  async function show(id) {
    following?.abort();
    const controller = (following = new AbortController());
    selected = id;
    for (const r of rows.querySelectorAll("tr.row")) r.classList.toggle("selected", r.dataset.id === id);
    layout.select(true);
    clear(layout.detail, h("p", { class: "muted" }, "Loading…"));
    let task;
    try {
      task = await api("/v1/tasks/" + id, { signal: controller.signal });
    } catch (err) {
      if (!controller.signal.aborted) clear(layout.detail, layout.back(), h("p", { class: "error" }, err.describe ? err.describe() : String(err)));
      return;
    }
    if (controller.signal.aborted) return;
    const reload = () => { show(id); load(); };
    const st = badge(task.status, { id: "task-status" });
    const line = errorLine();
    const actions = h("div", { class: "actions" });
    const ask = h("div");
    const timeline = new Timeline();
    const result = h("div");
    const files = filesPanel(task);
    const documents = documentsPanel({ task_id: task.id });
    let question = null;
    const sync = () => {
      st.textContent = task.status;
      st.className = "badge " + task.status;
      renderActions(actions, task, line, reload);
      clear(ask, task.status === "INPUT_REQUIRED" && question ? questionPanel(task, question, line, reload) : null);
    };
    const warnings = Array.isArray(task.warnings) && task.warnings.length
      ? h("div", { class: "card warn", id: "task-warnings" }, h("b", {}, "Warnings"), h("ul", {}, task.warnings.map((w) => h("li", {}, w)))) : null;
    clear(layout.detail, layout.back(),
      h("div", { class: "card" },
        h("div", { class: "head" }, h("h2", {}, task.activity_name || task.agent_orch), st),
        task.query ? h("p", {}, task.query) : null,
        facts([["id", h("code", {}, task.id)], ["agent", task.agent_orch], ["created", when(task.created_at)],
          ["attempts", `${task.attempts} of ${task.max_attempts}`], ["assigned to", task.user_id],
          ["error", task.error ? task.error.message || JSON.stringify(task.error) : null]]),
        actions, line),
      warnings, ask, documents.el, files.el, h("h3", {}, "Timeline"), timeline.el, result);
    sync();
    try {
      await stream(`/v1/tasks/${id}/stream`, (part) => {
        if (controller.signal.aborted) return;
        timeline.part(part);
        if (part.type === "file") files.refresh();
        if (part.type === "data-document") documents.refresh();
        if (part.type === "data-human_asked") { question = questionOf(part.data); sync(); }
        if (part.type === "data-task_status" && part.data.task_id === id) {
          const changed = task.status !== part.data.status;
          task = { ...task, ...part.data };
          if (changed) { sync(); load(); }
        }
      }, controller.signal);
    } catch (err) {
      if (!controller.signal.aborted) line.set(err);
    }
    if (controller.signal.aborted) return;
    // The stream ended: the task has ended. Read it once more (its final fields).
    try {
      task = await api("/v1/tasks/" + id, { signal: controller.signal });
      sync();
      if (task.output !== null && task.output !== undefined && !timeline.el.querySelector(".good .label")) {
        clear(result, h("h3", {}, "Result"), json(task.output));
      }
    } catch (err) {
      if (!controller.signal.aborted) line.set(err);
    }
  }

  load();
  const timer = setInterval(load, REFRESH_MS);
  return {
    route(parts) {
      if (parts[0]) { if (parts[0] !== selected) show(parts[0]); }
      else {
        following?.abort();
        selected = null;
        layout.select(false);
        clear(layout.detail, h("p", { class: "muted" }, "Select a task to follow it live."));
      }
    },
    dispose() { clearInterval(timer); following?.abort(); loading?.abort(); },
  };
}

export { short };
