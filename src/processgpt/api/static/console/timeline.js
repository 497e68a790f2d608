// A task's stream (AI SDK UI message parts) as a timeline a person reads: text as text,
// reasoning and tool calls collapsed (arguments and result inside), questions highlighted,
// progress as short lines, anything else as a collapsed event.

import { fileCard } from "./files.js";
import { h, json } from "./ui.js";

const QUIET = new Set(["start", "start-step", "finish-step", "text-end", "reasoning-end",
  "tool-input-start", "tool-input-delta", "data-task_status"]);

/** How a stream's `finish` reads (AI SDK finish reasons). */
const FINISH = { stop: "", error: "with an error", "content-filter": "stopped by a content filter",
  length: "at the length limit", other: "" };

const LABELS = {
  task_started: "started", task_working: "working", task_completed: "completed",
  crew_completed: "agent finished", human_response: "answered", task_requeued: "queued again",
  task_cancelled: "cancelled", human_asked: "asked a question",
};

function label(type) {
  const name = type.replace(/^data-/, "");
  return LABELS[name] || name.replace(/_/g, " ");
}

function progress(data) {
  // The demo agent (and others) send {"step", "of"} as a JSON text.
  let value = data;
  if (typeof data === "string") { try { value = JSON.parse(data); } catch { return data; } }
  if (value && typeof value === "object" && "step" in value && "of" in value) {
    return `step ${value.step} of ${value.of}`;
  }
  if (value && typeof value === "object" && ("pct" in value || "status" in value) && Object.keys(value).length <= 3) {
    return [value.status, "pct" in value ? value.pct + "%" : ""].filter(Boolean).join(" ");
  }
  return null;
}

/** Parses a human_asked part's data (the question may arrive as JSON text). */
export function questionOf(data) {
  let q = data;
  if (typeof q === "string") { try { q = JSON.parse(q); } catch { q = { text: q }; } }
  if (q && typeof q === "object" && typeof q.text !== "string" && typeof q.message === "string") {
    try { q = JSON.parse(q.message); } catch { q = { text: q.message }; }
  }
  const options = Array.isArray(q?.options)
    ? q.options.map((o) => (typeof o === "object" && o !== null ? String(o.value ?? o.label ?? JSON.stringify(o)) : String(o)))
    : [];
  if (q?.type === "confirm" && !options.length) options.push("yes", "no");
  return { text: String(q?.text ?? ""), type: q?.type || "text", options, role: q?.role || "" };
}

export class Timeline {
  constructor() {
    this.el = h("ol", { class: "timeline" });
    this.texts = new Map();   // part id -> text element
    this.tools = new Map();   // toolCallId -> {item, out}
  }

  add(cls, ...children) {
    const item = h("li", { class: cls }, ...children);
    this.el.append(item);
    return item;
  }

  /** Adds one part; returns it (for callers that react to some, e.g. a question). */
  part(p) {
    const t = p.type;
    if (t === "text-start" || t === "reasoning-start") {
      const body = h("div", { class: "text-body" });
      if (t === "text-start") this.add("text", body);
      else this.add("reasoning", h("details", {}, h("summary", {}, "reasoning"), body));
      this.texts.set(p.id, body);
    } else if (t === "text-delta" || t === "reasoning-delta") {
      let body = this.texts.get(p.id);
      if (!body) { this.part({ type: t.replace("delta", "start"), id: p.id }); body = this.texts.get(p.id); }
      body.append(p.delta);
    } else if (t === "tool-input-available") {
      const out = h("div", { class: "tool-out muted" }, "running…");
      const item = this.add("tool", h("details", {},
        h("summary", {}, h("span", { class: "label" }, "tool "), h("code", {}, p.toolName)),
        h("div", { class: "muted" }, "arguments"), json(p.input), h("div", { class: "muted" }, "result"), out));
      this.tools.set(p.toolCallId, { item, out });
    } else if (t === "tool-output-available" || t === "tool-output-error") {
      const call = this.tools.get(p.toolCallId);
      if (call) {
        call.out.replaceChildren(t === "tool-output-error" ? h("span", { class: "error" }, p.errorText) : json(p.output));
        call.out.classList.remove("muted");
        if (t === "tool-output-error") call.item.classList.add("bad");
      }
    } else if (t === "data-result") {
      this.add("good", h("div", { class: "label" }, "result"), json(p.data));
    } else if (t === "error") {
      this.add("bad", h("span", { class: "label" }, "error "), p.errorText);
    } else if (t === "file") {
      this.add("file", h("span", { class: "label" }, "sent a file"), fileCard(p));
    } else if (t === "data-document") {
      const d = p.data || {};
      this.add("file", h("span", { class: "label" }, "stored a document "), h("a", { href: "#", dataset: { document: d.document_id || "" },
        onclick: (e) => { e.preventDefault(); document.getElementById("documents")?.scrollIntoView({ behavior: "smooth" }); } }, d.title || "(untitled)"));
    } else if (t === "data-human_asked") {
      const q = questionOf(p.data);
      this.add("asked", h("span", { class: "label" }, "question: "), q.text,
        q.options.length ? h("span", { class: "muted" }, "  (" + q.options.join(" / ") + ")") : "");
    } else if (t === "data-human_response") {
      const d = p.data;
      const answer = d && typeof d === "object" && "answer" in d ? d.answer : d;
      this.add("good", h("span", { class: "label" }, "answered: "), typeof answer === "string" ? answer : JSON.stringify(answer));
    } else if (t === "finish") {
      this.add(p.finishReason === "error" ? "bad" : "good", h("span", { class: "label" }, "ended"),
        h("span", { class: "when" }, FINISH[p.finishReason] ?? p.finishReason ?? ""));
    } else if (t.startsWith("data-") && !QUIET.has(t)) {
      const step = progress(p.data);
      if (step !== null) this.add("progress", h("span", { class: "label" }, label(t) + " "), h("span", { class: "muted" }, step));
      else this.add("event", h("details", {}, h("summary", {}, label(t)), json(p.data)));
    } else if (!QUIET.has(t)) {
      this.add("event", h("details", {}, h("summary", {}, label(t)), json(p)));
    }
    return p;
  }
}
