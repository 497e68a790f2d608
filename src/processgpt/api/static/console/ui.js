// Small DOM helpers: elements are built with properties and text nodes, never from HTML
// strings, so nothing a tenant wrote is ever parsed as markup.

export function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(props || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") el.className = v;
    else if (k === "dataset") Object.assign(el.dataset, v);
    else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k in el && typeof v !== "string") el[k] = v;
    else el.setAttribute(k, v === true ? "" : v);
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

export function clear(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

export function badge(status, extra = {}) {
  return h("span", { class: "badge " + status, ...extra }, status);
}

/** A moment as a list shows it: the time today (to the minute), else the date and time. */
export function when(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  const today = new Date().toDateString() === d.toDateString();
  return today ? d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })
    : d.toLocaleString([], { dateStyle: "short", timeStyle: "short" });
}

export function short(id) {
  return String(id).slice(0, 8);
}

export function json(value) {
  return h("pre", {}, JSON.stringify(value, null, 2));
}

export function facts(pairs) {
  return h("dl", { class: "facts" },
    pairs.filter(([, v]) => v !== undefined && v !== null && v !== "")
      .map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]));
}

/** An inline error line: set(err) shows it, set(null) clears it. */
export function errorLine() {
  const el = h("p", { class: "error", role: "alert" });
  el.set = (err) => { el.textContent = err ? (err.describe ? err.describe() : String(err.message || err)) : ""; };
  return el;
}

/** Runs an action from a button: disables it while it runs, shows a failure in `line`. */
export async function act(button, line, fn) {
  line.set(null);
  button.disabled = true;
  try {
    return await fn();
  } catch (err) {
    line.set(err);
    return undefined;
  } finally {
    button.disabled = false;
  }
}

/** A short message in the corner for a few seconds. Toasts stack (newest at the bottom, at
 * most 4): a notification arriving does not hide the outcome of what the person just did. */
export function toast(text) {
  let stack = document.querySelector(".toasts");
  if (!stack) { stack = h("div", { class: "toasts" }); document.body.append(stack); }
  const el = h("div", { class: "toast", role: "status" }, text);
  stack.append(el);
  while (stack.children.length > 4) stack.firstElementChild.remove();
  setTimeout(() => el.remove(), 5000);
}

/** A list with cursor paging: `load(cursor)` resolves to {items, next}; Newer/Older buttons
 * walk the pages (a stack of cursors, since the API pages forward only). */
export function pager(onPage) {
  const stack = [null];
  const older = h("button", { type: "button", class: "older" }, "Older →");
  const newer = h("button", { type: "button", class: "newer" }, "← Newer");
  const label = h("span", { class: "muted" });
  let next = null;
  const el = h("div", { class: "pager" }, newer, label, older);
  const sync = () => {
    newer.disabled = stack.length <= 1;
    older.disabled = !next;
    label.textContent = "page " + stack.length;
  };
  newer.onclick = () => { if (stack.length > 1) { stack.pop(); onPage(); } };
  older.onclick = () => { if (next) { stack.push(next); onPage(); } };
  return {
    el,
    cursor: () => stack[stack.length - 1],
    reset: () => { stack.length = 1; },
    setNext: (n) => { next = n || null; sync(); },
  };
}

/** The split layout of a section: a list pane and a detail pane (one at a time on a narrow
 * screen: the detail has a "back" link). */
export function split(view, backHref) {
  const list = h("section", { class: "pane list" });
  const detail = h("section", { class: "pane detail" });
  clear(view, list, detail);
  view.classList.remove("has-selection");
  return {
    list,
    detail,
    select(on) { view.classList.toggle("has-selection", on); },
    back: () => h("a", { class: "back", href: backHref }, "← back to the list"),
  };
}
