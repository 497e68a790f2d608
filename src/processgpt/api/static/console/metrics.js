// Metrics: the tenant's queue now (open tasks by agent, the oldest wait) and the wait and
// run times of its tasks that ended within a window, refreshed every few seconds.

import { api, query } from "./api.js";
import { clear, errorLine, h } from "./ui.js";

const WINDOWS = [[900, "15 minutes"], [3600, "1 hour"], [86400, "24 hours"], [604800, "7 days"]];

function secs(v) {
  if (v === null || v === undefined) return "—";
  if (v < 1) return (v * 1000).toFixed(0) + " ms";
  if (v < 120) return v.toFixed(1) + " s";
  if (v < 7200) return (v / 60).toFixed(1) + " min";
  return (v / 3600).toFixed(1) + " h";
}

function stat(label, value, name) {
  return h("div", { class: "stat", dataset: { stat: name } }, h("div", { class: "muted" }, label), h("div", { class: "n" }, value));
}

export function create(view) {
  const pane = h("section", { class: "pane full" });
  clear(view, pane);
  view.classList.remove("has-selection");
  const windowSel = h("select", { "aria-label": "window" }, WINDOWS.map(([v, l]) => h("option", { value: v, selected: v === 3600 }, l)));
  const stats = h("div", { class: "stats" });
  const queue = h("tbody");
  const timings = h("tbody");
  const line = errorLine();
  // Wide tables scroll inside their own box on a narrow screen; the page does not.
  const table = (heads, body) => h("div", { class: "scroll-x" },
    h("table", { class: "rows numbers" }, h("thead", {}, h("tr", {}, heads.map((x) => h("th", {}, x)))), body));
  clear(pane, h("h2", {}, "Metrics"), stats, line,
    h("h3", {}, "Queue now"), table(["agent", "pending", "running", "waiting for input", "oldest pending"], queue),
    h("h3", {}, "Timings of tasks that ended within ", windowSel),
    table(["agent", "ended", "done", "failed", "cancelled", "wait p50", "wait p90", "wait p99", "run p50", "run p90", "run p99"], timings));

  async function load() {
    try {
      const s = await api("/v1/metrics/summary" + query({ window_seconds: windowSel.value }));
      line.set(null);
      const sum = (k) => s.queue.reduce((a, q) => a + q[k], 0);
      const oldest = Math.max(-1, ...s.queue.map((q) => q.oldest_pending_seconds ?? -1));
      const ended = s.timings.reduce((a, t) => a + t.ended, 0);
      const failed = s.timings.reduce((a, t) => a + t.failed, 0);
      clear(stats, stat("pending", sum("pending"), "pending"), stat("running", sum("in_progress"), "running"),
        stat("waiting for input", sum("input_required"), "input"), stat("oldest pending", oldest < 0 ? "—" : secs(oldest), "oldest"),
        stat("ended in window", ended, "ended"), stat("failed in window", failed, "failed"));
      clear(queue, s.queue.length ? s.queue.map((q) => h("tr", { dataset: { agent: q.agent } }, h("td", {}, q.agent), h("td", {}, q.pending), h("td", {}, q.in_progress),
        h("td", {}, q.input_required), h("td", {}, secs(q.oldest_pending_seconds)))) : h("tr", {}, h("td", { colspan: 5, class: "empty" }, "Nothing open.")));
      clear(timings, s.timings.length ? s.timings.map((t) => h("tr", { dataset: { agent: t.agent } }, h("td", {}, t.agent), h("td", {}, t.ended), h("td", {}, t.done),
        h("td", {}, t.failed), h("td", {}, t.cancelled), h("td", {}, secs(t.wait.p50)), h("td", {}, secs(t.wait.p90)), h("td", {}, secs(t.wait.p99)),
        h("td", {}, secs(t.run.p50)), h("td", {}, secs(t.run.p90)), h("td", {}, secs(t.run.p99)))) : h("tr", {}, h("td", { colspan: 11, class: "empty" }, "No task ended in this window.")));
    } catch (err) { line.set(err); }
  }
  windowSel.onchange = load;
  load();
  const timer = setInterval(load, 5000);
  return { route() {}, dispose() { clearInterval(timer); } };
}
