// A task's files: those attached to it (uploaded here or through the API), those its agent
// sent (SEND_FILE), and those its input names; downloaded through signed short-lived links,
// and a new attachment uploaded from the page. Also the file card of the task's timeline.

import { api, download, query, upload } from "./api.js";
import { act, clear, errorLine, h, toast, when } from "./ui.js";

const FILE_URL = /\/v1\/files\/([0-9a-f-]{36})\/content/;

export function size(bytes) {
  if (bytes < 1024) return bytes + " B";
  if (bytes < 1024 * 1024) return (bytes / 1024).toFixed(1) + " KB";
  return (bytes / 1024 / 1024).toFixed(1) + " MB";
}

function extension(name) {
  const dot = name.lastIndexOf(".");
  return dot > 0 && name.length - dot <= 5 ? name.slice(dot + 1).toUpperCase() : "FILE";
}

/** Who put the file there, as a person reads it. */
export function origin(info) {
  const by = info.created_by || "";
  return by.startsWith("agent:") ? "sent by agent " + by.slice(6) : by ? "uploaded by " + by : "uploaded";
}

/** The id of a stored file in a stream's file URL (a signed link of this API), or null. */
export function fileIdOf(url) {
  const match = FILE_URL.exec(String(url || ""));
  return match ? match[1] : null;
}

function downloadButton(info, line) {
  const b = h("button", { type: "button", name: "download", dataset: { file: info.id } }, "Download");
  b.onclick = () => act(b, line, () => download(info.id, info.name));
  return b;
}

/** The file card of a timeline: an agent sent `url` (a signed link of this API, which may
 * have expired since the stream was read, so the card asks for a fresh one). */
export function fileCard(part) {
  const id = fileIdOf(part.url);
  const line = errorLine();
  const name = h("b", { class: "file-name" }, id ? "file" : part.url);
  const meta = h("span", { class: "muted" }, " " + (part.mediaType || ""));
  const icon = h("span", { class: "file-icon", "aria-hidden": "true" }, "FILE");
  const card = h("div", { class: "file-card", dataset: { file: id || "" } }, icon,
    h("div", { class: "file-info" }, name, meta), line);
  if (!id) {
    card.insertBefore(h("a", { href: part.url, target: "_blank", rel: "noopener noreferrer" }, "Open"), line);
    return card;
  }
  api(`/v1/files/${id}`).then((info) => {
    name.textContent = info.name;
    icon.textContent = extension(info.name);
    meta.textContent = ` ${info.content_type} · ${size(info.size)}`;
    card.insertBefore(downloadButton(info, line), line);
  }).catch((err) => line.set(err));
  return card;
}

/** The files panel of a task: `refresh()` reads the list again (a file event arrived). */
export function filesPanel(task) {
  const rows = h("tbody");
  const line = errorLine();
  const picker = h("input", { type: "file", name: "file", "aria-label": "choose a file" });
  const attach = h("button", { type: "submit", name: "attach" }, "Attach");
  const form = h("form", { class: "attach", onsubmit: (e) => {
    e.preventDefault();
    const file = picker.files?.[0];
    if (!file) { line.set(new Error("choose a file to attach first")); return; }
    act(attach, line, async () => {
      const info = await upload("/v1/files" + query({ task_id: task.id }), file);
      picker.value = "";
      toast("Attached " + info.name);
      await refresh();
    });
  } }, picker, attach);

  const row = (info, how) => h("tr", { dataset: { file: info.id } },
    h("td", { class: "ellipsis", title: info.name }, info.name),
    h("td", { class: "muted" }, size(info.size)),
    h("td", { class: "muted" }, how || origin(info)),
    h("td", { class: "muted opt" }, when(info.created_at)),
    h("td", {}, downloadButton(info, line)));

  async function named() {
    // Files its input names (handed to it at submission): attached elsewhere, or to nothing.
    const ids = [...new Set([...(task.input?.files || []), ...(task.input?.attachments || [])].filter((v) => typeof v === "string" && /^[0-9a-f-]{36}$/.test(v)))];
    const found = await Promise.all(ids.map((id) => api("/v1/files/" + id).catch(() => null)));
    return found.filter(Boolean);
  }

  let busy = null;
  async function refresh() {
    if (busy) return busy;
    busy = (async () => {
      try {
        const [page, given] = await Promise.all([api("/v1/files" + query({ task_id: task.id, limit: 100 })), named()]);
        const own = new Set(page.items.map((f) => f.id));
        const all = [...page.items.map((f) => row(f)), ...given.filter((f) => !own.has(f.id)).map((f) => row(f, "named in its input"))];
        line.set(null);
        clear(rows, all.length ? all : h("tr", {}, h("td", { colspan: 5, class: "empty" }, "No files yet.")));
      } catch (err) { line.set(err); } finally { busy = null; }
    })();
    return busy;
  }
  refresh();
  const el = h("div", { id: "task-files" }, h("h3", {}, "Files"),
    h("table", { class: "rows files" }, h("thead", {}, h("tr", {}, h("th", {}, "name"), h("th", {}, "size"), h("th", {}, "from"), h("th", { class: "opt" }, "added"), h("th", {}, ""))), rows),
    form, line);
  return { el, refresh };
}
