// Documents (`/v1/documents`): what a task's step stored as its result, or every step's of a
// process instance. Each shows its title, who stored it, an excerpt (the whole text read when
// opened) and its file (downloaded through a signed link). Offered only when the server
// serves the route.

import { api, download, query, servedPaths } from "./api.js";
import { size } from "./files.js";
import { act, clear, errorLine, h, when } from "./ui.js";

function storedBy(doc) {
  const by = doc.created_by || "";
  return by.startsWith("agent:") ? "stored by agent " + by.slice(6) : by ? "stored by " + by : "";
}

function card(doc, line) {
  const body = h("pre", { class: "doc-text" }, doc.excerpt + (doc.content_chars > doc.excerpt.length ? " …" : ""));
  const more = doc.content_chars > doc.excerpt.length;
  const open = h("details", { class: "doc-more" }, h("summary", {}, `the whole text (${doc.content_chars} characters)`));
  open.addEventListener("toggle", () => {
    if (!open.open || open.dataset.read) return;
    open.dataset.read = "1";
    api("/v1/documents/" + doc.id).then((full) => { body.textContent = full.content; })
      .catch((err) => { delete open.dataset.read; line.set(err); });
  });
  let file = null;
  if (doc.file) {
    file = h("button", { type: "button", name: "download", dataset: { file: doc.file.id } }, `Download ${doc.file.name} (${size(doc.file.size)})`);
    file.onclick = () => act(file, line, () => download(doc.file.id, doc.file.name));
  }
  return h("div", { class: "card doc", dataset: { document: doc.id } },
    h("div", { class: "head" }, h("b", { class: "doc-title" }, doc.title),
      h("span", { class: "muted" }, [doc.activity_id ? "step " + doc.activity_id : "", storedBy(doc), when(doc.created_at)].filter(Boolean).join(" · "))),
    doc.content_chars ? body : null, more ? open : null, file ? h("div", { class: "actions" }, file) : null);
}

/** The documents of `owner` ({task_id} or {proc_inst_id}); `refresh()` reads them again (a
 * `data-document` part arrived). Renders nothing on a server without `/v1/documents`. */
export function documentsPanel(owner) {
  const list = h("div");
  const line = errorLine();
  const el = h("div", { id: "documents", hidden: true }, h("h3", {}, "Documents"), list, line);
  let busy = null;
  async function refresh() {
    if (busy) return busy;
    busy = (async () => {
      try {
        if (!(await servedPaths()).has("/v1/documents")) return;
        const page = await api("/v1/documents" + query({ ...owner, limit: 50 }));
        el.hidden = false;
        line.set(null);
        const shown = page.items.map((d) => d.id).join();
        if (list.dataset.shown === shown) return;  // unchanged: keeps an opened text open
        list.dataset.shown = shown;
        clear(list, page.items.length ? page.items.map((d) => card(d, line)) : h("p", { class: "empty" }, "No documents stored yet."));
      } catch (err) { el.hidden = false; line.set(err); } finally { busy = null; }
    })();
    return busy;
  }
  refresh();
  return { el, refresh };
}
