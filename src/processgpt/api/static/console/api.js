// The API client of the console: the key, JSON calls with errors as ApiError, and SSE streams
// read with fetch (EventSource cannot send an Authorization header).

const KEY = "processgpt.key";

/** The key: read once from the URL fragment (#key=…) when `processgpt up` printed a link,
 * then kept in sessionStorage (this tab) or localStorage ("remember on this device"), and
 * removed from the address bar at once so it is not left in history or bookmarks. */
export function takeKeyFromUrl() {
  const params = new URLSearchParams(location.hash.replace(/^#\/?/, ""));
  const key = params.get("key");
  if (!key) return;
  sessionStorage.setItem(KEY, key);
  history.replaceState(null, "", location.pathname + location.search + "#/tasks");
}

export function getKey() {
  return sessionStorage.getItem(KEY) || localStorage.getItem(KEY) || "";
}

export function setKey(key, remember) {
  sessionStorage.setItem(KEY, key);
  if (remember) localStorage.setItem(KEY, key);
  else localStorage.removeItem(KEY);
}

export function forgetKey() {
  sessionStorage.removeItem(KEY);
  localStorage.removeItem(KEY);
}

export class ApiError extends Error {
  constructor(status, code, message, details) {
    super(message);
    this.status = status;
    this.code = code;
    this.details = details;
  }
  /** The error as a person reads it: the message, and what each detail says. */
  describe() {
    const extra = (this.details || []).map((d) => d.message || JSON.stringify(d)).join("; ");
    return extra ? `${this.message} (${extra})` : this.message;
  }
}

function headers(json) {
  const h = { Authorization: "Bearer " + getKey() };
  if (json) h["content-type"] = "application/json";
  return h;
}

/** Calls the API; resolves to the JSON body (null for 204), rejects with ApiError. */
export async function api(path, { method = "GET", body, signal } = {}) {
  return send(path, {
    method,
    headers: headers(body !== undefined),
    body: body === undefined ? undefined : JSON.stringify(body),
    signal,
  });
}

/** Uploads a file (multipart, the part named `file`) to `path`; resolves to the JSON body. */
export async function upload(path, file, { signal } = {}) {
  const form = new FormData();
  form.append("file", file, file.name);
  return send(path, { method: "POST", headers: headers(false), body: form, signal });
}

/** Downloads a stored file: asks the API for a signed short-lived link (the key stays in the
 * header, never in a URL) and lets the browser follow it (an attachment: it never renders). */
export async function download(fileId, name) {
  const link = await api(`/v1/files/${encodeURIComponent(fileId)}/link`, { method: "POST", body: { seconds: 60 } });
  const a = document.createElement("a");
  a.href = link.url;
  a.download = name || "";
  a.rel = "noopener";
  document.body.append(a);
  a.click();
  a.remove();
}

async function send(path, init) {
  let response;
  try {
    response = await fetch(path, init);
  } catch (err) {
    if (init.signal?.aborted) throw err;
    throw new ApiError(0, "network", "the server cannot be reached");
  }
  const text = response.status === 204 ? "" : await response.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = null; }
  if (response.status === 401) window.dispatchEvent(new Event("processgpt:unauthorized"));
  if (!response.ok) {
    const error = data?.error;
    throw new ApiError(response.status, error?.code || "http_" + response.status,
      error?.message || response.statusText || "request failed", error?.details);
  }
  return data;
}

let openapi = null;
/** The paths this server serves (its `/openapi.json`, read once; empty when unreadable), so a
 * page offers only what the server it talks to has. */
export function servedPaths() {
  openapi ??= fetch("/openapi.json").then((r) => r.json())
    .then((doc) => new Set(Object.keys(doc.paths || {}))).catch(() => new Set());
  return openapi;
}

export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== "") q.set(k, v);
  const s = q.toString();
  return s ? "?" + s : "";
}

/** Reads an SSE stream of the API and calls onPart for each `data:` JSON frame until it ends
 * or `signal` is aborted (which is not an error: the promise resolves). */
export async function stream(path, onPart, signal) {
  let response;
  try {
    response = await fetch(path, { headers: headers(false), signal });
  } catch (err) {
    if (signal.aborted) return;
    throw err;
  }
  if (!response.ok) {
    const data = await response.json().catch(() => null);
    throw new ApiError(response.status, data?.error?.code || "http_error",
      data?.error?.message || "stream failed");
  }
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += value;
      let cut;
      while ((cut = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, cut);
        buffer = buffer.slice(cut + 2);
        const data = block.split("\n").filter((l) => l.startsWith("data: "))
          .map((l) => l.slice(6)).join("\n");
        if (data && data !== "[DONE]") onPart(JSON.parse(data));
      }
    }
  } catch (err) {
    if (signal.aborted) return;  // we stopped following: the reader's AbortError is expected
    throw err;
  } finally {
    reader.releaseLock();
  }
}
