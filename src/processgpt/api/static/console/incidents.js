// Incidents: every instance that stopped (state INCIDENT) with its open incidents, each
// retried where it stopped (optionally after setting variables).

import { api, query } from "./api.js";
import { incidentCard } from "./processes.js";
import { clear, errorLine, h, pager, short, when } from "./ui.js";

export function create(view) {
  const pane = h("section", { class: "pane full" });
  clear(view, pane);
  view.classList.remove("has-selection");
  const list = h("div");
  const line = errorLine();
  const paging = pager(() => load());
  clear(pane, h("h2", {}, "Incidents"), h("p", { class: "muted" }, "Instances stopped where no flow applied, a condition failed, or a step ran out of attempts. Retry resumes there."),
    line, list, paging.el);

  let busy = false;
  async function load() {
    if (busy) return;
    busy = true;
    try {
      const page = await api("/v1/processes" + query({ status: "INCIDENT", cursor: paging.cursor(), limit: 20 }));
      line.set(null);
      const shown = page.items.map((p) => p.id + ":" + [...p.incidents, ...p.child_incidents].map((i) => i.id).join()).join("|");
      if (list.dataset.shown !== shown) {  // re-render only on change: keeps what is typed
        list.dataset.shown = shown;
        clear(list, page.items.length ? page.items.map((p) => h("div", { class: "card" },
          h("div", { class: "head" }, h("a", { href: "#/processes/" + p.id }, p.name || p.proc_def_id || short(p.id)),
            h("span", { class: "muted" }, `${p.proc_def_id || ""} v${p.version ?? ""} · started ${when(p.start_date)}`)),
          [...p.incidents, ...p.child_incidents].map((i) => incidentCard(p.id, i, load))))
          : h("p", { class: "empty" }, "No open incidents."));
      }
      paging.setNext(page.next_cursor);
    } catch (err) { line.set(err); } finally { busy = false; }
  }
  load();
  const timer = setInterval(load, 5000);
  return { route() {}, dispose() { clearInterval(timer); } };
}
