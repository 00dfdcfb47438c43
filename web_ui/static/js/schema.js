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

export function allowedText(schema) {
  if (schema.enum) return schema.enum.join(", ");
  if (schema.minimum !== undefined || schema.maximum !== undefined) {
    return `${schema.minimum ?? "…"}–${schema.maximum ?? "…"}`;
  }
  return null;
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
    return `must be between ${low ?? "-∞"} and ${high ?? "∞"}`;
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
// error slot; validated as the user types.
export function field(name, schema, { prefix = "f", label = name.replaceAll("_", " ") } = {}) {
  const id = `${prefix}-${name}`;
  const input = control(name, schema, id);
  const allowed = allowedText(schema);
  const guide = schema["x-guide"];
  const hint = [allowed && (schema.enum ? `one of ${allowed}` : `range ${allowed}`),
                schema.default !== undefined && schema.default !== null && `default ${schema.default}`,
                guide && `recommended ${guide.recommended}`].filter(Boolean).join(" · ");
  const tip = [schema.description, guide && `What it does: ${guide.what}.`,
               guide && `Cost: ${guide.cost}.`].filter(Boolean).join(" ");
  const check = () => setFieldError(input, problem(readValue(input, schema), schema));
  input.addEventListener("input", check);
  input.addEventListener("change", check);
  input.setAttribute("aria-describedby", `${id}-hint ${id}-error`);
  const title = el("span", { class: "tip", title: tip }, label);
  const wrapper = typeOf(schema) === "boolean"
    ? el("div", { class: "field", "data-field": name },
         el("label", { for: id }, input, " ", title),
         el("span", { class: "hint", id: `${id}-hint` }, schema.description))
    : el("div", { class: "field", "data-field": name },
         el("label", { for: id }, title), input,
         el("span", { class: "hint", id: `${id}-hint` }, hint || schema.description));
  wrapper.append(el("p", { class: "field-error", id: `${id}-error`, role: "alert" }));
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
