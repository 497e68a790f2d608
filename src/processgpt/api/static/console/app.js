// The console's entry: sign-in, the header, and hash routing (#/section/id: a URL per task,
// instance, definition and work item). Each section module exports create(view) returning
// {route(parts), dispose()}; the section stays mounted while only the selection changes.

import { api, forgetKey, getKey, servedPaths, setKey, takeKeyFromUrl } from "./api.js";
import * as tasks from "./tasks.js";
import * as worklist from "./worklist.js";
import * as processes from "./processes.js";
import * as definitions from "./definitions.js";
import * as incidents from "./incidents.js";
import * as deadLetters from "./dead_letters.js";
import * as notifications from "./notifications.js";
import * as memories from "./memories.js";
import * as metrics from "./metrics.js";

const SECTIONS = {
  tasks, worklist, processes, definitions, incidents, "dead-letters": deadLetters, notifications, memories, metrics,
};
/** Sections whose API is served by this server (read from its OpenAPI document): a section
 * whose endpoint is absent (an older server) is not offered. */
const available = new Set(["tasks", "worklist", "processes", "definitions", "incidents", "dead-letters"]);
let stopFeed = null;

const $ = (id) => document.getElementById(id);
let current = null;  // {name, section}

function parse() {
  const parts = location.hash.replace(/^#\/?/, "").split("/").filter(Boolean).map(decodeURIComponent);
  const known = available.has(parts[0]);
  return { name: known ? parts[0] : "tasks", rest: known ? parts.slice(1) : [] };
}

function route() {
  const signedIn = Boolean(getKey());
  $("signin").hidden = signedIn;
  $("view").hidden = !signedIn;
  $("nav").hidden = !signedIn;
  $("signout").hidden = !signedIn;
  if (signedIn && !stopFeed && available.has("notifications")) stopFeed = notifications.startFeed($("unread"));
  if (!signedIn) {
    stopFeed?.();
    stopFeed = null;
    current?.section.dispose();
    current = null;
    $("keyinput").focus();
    return;
  }
  const { name, rest } = parse();
  for (const a of document.querySelectorAll("#nav a")) {
    a.classList.toggle("active", a.dataset.section === name);
  }
  $("nav").classList.remove("open");
  if (!current || current.name !== name) {
    current?.section.dispose();
    current = { name, section: SECTIONS[name].create($("view")) };
    document.title = "processgpt · " + name.replace("-", " ");
  }
  current.section.route(rest);
}

async function health() {
  const el = $("health");
  try {
    const r = await fetch("/readyz");
    el.className = "health " + (r.ok ? "ok" : "down");
    el.title = r.ok ? "database ok" : "database unavailable";
  } catch {
    el.className = "health down";
    el.title = "server unreachable";
  }
}

async function detect() {
  const paths = await servedPaths();  // empty when unreadable: the core sections work without it
  for (const a of document.querySelectorAll("#nav a[data-needs]")) {
    const served = paths.has(a.dataset.needs);
    a.hidden = !served;
    if (served) available.add(a.dataset.section);
  }
}

async function start() {
  takeKeyFromUrl();
  await detect();
  $("keyform").addEventListener("submit", async (e) => {
    e.preventDefault();
    const key = $("keyinput").value.trim();
    setKey(key, $("remember").checked);
    try {
      await api("/v1/tasks?limit=1");
      $("keyinput").value = "";
      $("keyerror").textContent = "";
      route();
    } catch (err) {
      forgetKey();
      $("keyerror").textContent = err.describe ? err.describe() : String(err);
    }
  });
  $("signout").addEventListener("click", () => { forgetKey(); route(); });
  $("menu").addEventListener("click", () => {
    const open = $("nav").classList.toggle("open");
    $("menu").setAttribute("aria-expanded", String(open));
  });
  window.addEventListener("hashchange", route);
  window.addEventListener("processgpt:unauthorized", () => { forgetKey(); route(); });
  route();
  health();
  setInterval(health, 5000);
}

start();
