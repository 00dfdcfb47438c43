// Request schemas from /api/openapi.json: the same declarations that validate requests on
// the server, so the form checks values with the API's own ranges and choices.
import { el, setFieldError } from "./ui.js";
import { get } from "./api.js";

let documentPromise = null;

export async function requestSchema(path, method = "post") {
  documentPromise ??= get("/api/openapi.json");
  const spec = await documentPromise;
  return spec.paths[path][method].requestBody.content["application/json"].schema;
}

// The schema bounds every integer by ±(2^63 - 1) (what the field fits in): in words such a
// bound is no bound at all.
const shownBound = (v) => (v !== undefined && Math.abs(v) < Number.MAX_SAFE_INTEGER ? v : undefined);

// A range in words: "0–1", or "at least 1" when it has no upper end (not "1–…").
export function allowedText(schema) {
  if (schema.enum) return schema.enum.join(", ");
  const low = shownBound(schema.minimum), high = shownBound(schema.maximum);
  if (low !== undefined && high !== undefined) return `${low}–${high}`;
  if (low !== undefined) return `at least ${low}`;
  if (high !== undefined) return `at most ${high}`;
  return null;
}

// Words a label writes as their owners do; every other word stays lower case.
const PROPER = { lora: "LoRA", moe: "MoE", peft: "PEFT", id: "ID", hf: "HF", hub: "Hub", rouge: "ROUGE",
                 url: "URL", gpu: "GPU", cpu: "CPU", ocr: "OCR", eos: "EOS", bidrop: "BiDrop", json: "JSON",
                 jsonl: "JSONL", csv: "CSV", png: "PNG" };

// One casing for every label: sentence case ("LoRA r", "Max steps", "Dataset").
export function labelText(name) {
  const words = name.split("_").map((word) => PROPER[word] ?? word);
  return words.join(" ").replace(/^[a-z]/, (c) => c.toUpperCase());
}

const typeOf = (schema) => (Array.isArray(schema.type) ? schema.type[0] : schema.type);

// The value of an input as the API expects it, or undefined when left empty.
export function readValue(input, schema) {
  if (typeOf(schema) === "boolean") return input.checked;
  const raw = input.value.trim();
  if (raw === "") return undefined;
  const type = typeOf(schema);
  if (type === "integer" || type === "number") return Number(raw);
  return raw;
}

// The same message the server would give, or "" when the value is acceptable.
export function problem(value, schema) {
  if (value === undefined) return "";
  const type = typeOf(schema);
  if (type === "integer" && !Number.isInteger(value)) return "must be a whole number";
  if (type === "number" && !Number.isFinite(value)) return "must be a number";
  if (schema.enum && !schema.enum.includes(value)) return `must be one of ${schema.enum.join(", ")}`;
  const low = schema.minimum, high = schema.maximum;
  if ((low !== undefined && value < low) || (high !== undefined && value > high)) {
    if (value < low && shownBound(high) === undefined) return `must be at least ${low}`;
    if (value > high && shownBound(low) === undefined) return `must be at most ${high}`;
    return `must be between ${low} and ${high}`;
  }
  return "";
}

function control(name, schema, id) {
  const type = typeOf(schema);
  if (schema.enum) {
    const select = el("select", { id, name });
    if (Array.isArray(schema.type) || schema.default === null || schema.default === undefined) {
      select.append(el("option", { value: "" }, "— default —"));
    }
    for (const choice of schema.enum) {
      select.append(el("option", { value: choice, selected: choice === schema.default }, choice));
    }
    return select;
  }
  if (type === "boolean") {
    return el("input", { id, name, type: "checkbox", checked: schema.default === true });
  }
  const numeric = type === "integer" || type === "number";
  return el("input", {
    id, name, type: numeric ? "number" : "text",
    step: type === "integer" ? "1" : numeric ? "any" : null,
    min: schema.minimum, max: schema.maximum,
    placeholder: schema.default === null || schema.default === undefined ? "" : String(schema.default),
  });
}

// A labelled field with its range, default, guide (recommended range, what it costs) and an
// error slot; validated as the user types. The guide is a tooltip shown while the field is
// hovered or focused (CSS), so keyboard and touch users reach it too.
export function field(name, schema, { prefix = "f", label = labelText(name) } = {}) {
  const id = `${prefix}-${name}`;
  const input = control(name, schema, id);
  const allowed = allowedText(schema);
  const guide = schema["x-guide"];
  const hint = [allowed && (schema.enum ? `one of ${allowed}` : allowed.startsWith("at ") ? allowed : `range ${allowed}`),
                schema.default !== undefined && schema.default !== null && `default ${schema.default}`,
                guide && `recommended ${guide.recommended}`].filter(Boolean).join(" · ");
  const tip = [schema.description, guide && `What it does: ${guide.what}.`,
               guide && `Cost: ${guide.cost}.`].filter(Boolean).join(" ");
  const check = () => setFieldError(input, problem(readValue(input, schema), schema));
  input.addEventListener("input", check);
  input.addEventListener("change", check);
  const boolean = typeOf(schema) === "boolean";
  const shownTip = tip && tip !== (boolean ? schema.description : hint || schema.description);
  input.setAttribute("aria-describedby", `${id}-hint ${id}-error${shownTip ? ` ${id}-tip` : ""}`);
  const title = el("span", { class: shownTip ? "tip" : "name" }, label);
  const wrapper = boolean
    ? el("div", { class: "field", "data-field": name },
         el("label", { for: id }, input, " ", title),
         el("span", { class: "hint", id: `${id}-hint` }, schema.description))
    : el("div", { class: "field", "data-field": name },
         el("label", { for: id }, title), input,
         el("span", { class: "hint", id: `${id}-hint` }, hint || schema.description));
  wrapper.append(el("p", { class: "field-error", id: `${id}-error`, role: "alert" }));
  if (shownTip) wrapper.append(el("span", { class: "tip-text", id: `${id}-tip`, role: "tooltip" }, tip));
  return wrapper;
}

// Values of the form's fields that differ from empty; invalid ones are reported.
export function collect(form, schemas) {
  const values = {};
  const invalid = [];
  for (const [name, schema] of Object.entries(schemas)) {
    const input = form.querySelector(`[name="${name}"]`);
    if (!input || input.disabled) continue;  // disabled: does not apply (LoRA fields with peft full)
    const value = readValue(input, schema);
    const message = problem(value, schema);
    setFieldError(input, message);
    if (message) invalid.push(input);
    if (value === undefined) continue;
    if (typeOf(schema) === "boolean" && value === (schema.default === true)) continue;
    if (schema.enum && value === schema.default) continue;
    values[name] = value;
  }
  return { values, invalid };
}

export function setValue(form, name, value) {
  const input = form.querySelector(`[name="${name}"]`);
  if (!input) return;
  if (input.type === "checkbox") input.checked = Boolean(value);
  else input.value = value === null || value === undefined ? "" : String(value);
  input.dispatchEvent(new Event("change"));
}
