// A form rendered from its stored fields (form_def: [{key, text, type, options?}]) and read
// back as values of the right JSON types (numbers as numbers, checkboxes as booleans), as
// the completion endpoint checks them.

import { h } from "./ui.js";

const INPUT_TYPES = { email: "email", date: "date", datetime: "datetime-local", "datetime-local": "datetime-local", time: "time", url: "url" };

function optionValues(spec) {
  return (Array.isArray(spec.options) ? spec.options : []).map((o) => (o && typeof o === "object"
    ? { value: String(o.value ?? o.key), label: String(o.label ?? o.text ?? o.value ?? o.key) } : { value: String(o), label: String(o) }));
}

function control(spec, value) {
  const kind = String(spec.type || "text").toLowerCase();
  const name = spec.key || spec.name || spec.id;
  if (kind === "textarea") return h("textarea", { name }, value ?? "");
  if (kind === "number" || kind === "integer" || kind === "int" || kind === "float") {
    return h("input", { name, type: "number", step: kind === "integer" || kind === "int" ? "1" : "any", value: value ?? "" });
  }
  if (kind === "checkbox" || kind === "boolean") return h("input", { name, type: "checkbox", checked: Boolean(value) });
  if ((kind === "select" || kind === "radio") && optionValues(spec).length) {
    return h("select", { name }, h("option", { value: "" }, "—"),
      optionValues(spec).map((o) => h("option", { value: o.value, selected: o.value === value }, o.label)));
  }
  if (kind === "multiselect" && optionValues(spec).length) {
    return h("select", { name, multiple: true }, optionValues(spec).map((o) => h("option", { value: o.value, selected: Array.isArray(value) && value.includes(o.value) }, o.label)));
  }
  if (kind === "file") return h("input", { name, type: "text", placeholder: "a link to the file", value: value ?? "" });
  if (INPUT_TYPES[kind] || kind === "text" || kind === "string") return h("input", { name, type: INPUT_TYPES[kind] || "text", value: value ?? "" });
  return h("textarea", { name, class: "code", dataset: { json: "1" } }, value === undefined ? "" : JSON.stringify(value));
}

/** The form's fields as labelled controls, prefilled from `values`. */
export function renderFields(fields, values = {}) {
  return fields.map((spec) => {
    const key = spec.key || spec.name || spec.id;
    const kind = String(spec.type || "text").toLowerCase();
    return h("label", { dataset: { field: key, kind } }, spec.text || spec.label || key,
      kind === "file" ? h("span", { class: "hint" }, "file uploads are not in the console yet: give a link, or leave it empty") : null,
      control(spec, values[key]));
  });
}

/** The values of the rendered fields (an empty control is left out: every field is optional). */
export function readFields(form, fields) {
  const out = {};
  for (const spec of fields) {
    const key = spec.key || spec.name || spec.id;
    const kind = String(spec.type || "text").toLowerCase();
    const el = form.querySelector(`[name="${CSS.escape(key)}"]`);
    if (!el) continue;
    if (el.type === "checkbox") { out[key] = el.checked; continue; }
    if (el.multiple) { out[key] = [...el.selectedOptions].map((o) => o.value); continue; }
    const raw = el.value;
    if (raw === "") continue;
    if (el.type === "number") out[key] = Number(raw);
    else if (el.dataset.json) {
      try { out[key] = JSON.parse(raw); } catch { throw new Error(`${spec.text || key}: not valid JSON`); }
    } else out[key] = kind === "number" ? Number(raw) : raw;
  }
  return out;
}
