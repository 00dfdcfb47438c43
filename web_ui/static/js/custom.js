// Custom Dataset: a source (data-root path, upload or Hub id), its first rows and columns,
// field mapping, render options with a live page preview and stats, then generation.
import { ApiError, api, post } from "./api.js";
import { thumbnail } from "./datasets.js";
import { follow, summary, submittedText } from "./jobs.js";
import { clearErrors, el, showError, toast } from "./ui.js";
import { collect, field, requestSchema } from "./schema.js";
import { VARIETY, VARIETY_LABELS, fontList, worstPages } from "./qa_report.js";

const form = document.getElementById("custom-form");
const RENDER = ["page_size", "font_size", "margin", "line_spacing", "overflow", "max_pages", "color_mode"];
const OUTPUT = ["name", "max_samples", "validation_fraction", "dedup", "overwrite", "shard_size", "workers",
                "engine", "on_error", "qa_sample"];
const MAPPING = ["text_field", "summary_field", "id_field"];
let schemas = {};
let renderSchemas = {};

const REQUIRED = { text_field: "text field (the column with the documents)",
                   summary_field: "summary field (the column with their summaries)" };

// A picker of the source's columns, set to the user's choice or else the detected column.
// Text and summary have no "detect" choice: a file names neither, so one must be chosen.
function columnSelect(name, columns, guess) {
  const input = form.querySelector(`[name="${name}"]`);
  const keep = columns.includes(input.value) ? input.value : guess || "";
  const select = el("select", { id: input.id, name, "aria-describedby": input.getAttribute("aria-describedby") },
    el("option", { value: "" }, name === "id_field" ? "— none —" : "— choose a column —"),
    columns.map((c) => el("option", { value: c, selected: c === keep }, c)));
  select.addEventListener("change", gateGenerate);
  input.replaceWith(select);
}

// Generate waits for a previewed source whose text and summary columns are chosen: without
// them the API refuses the job (text_field is required), so say which one is missing.
let previewed = false;
function gateGenerate() {
  const missing = previewed ? Object.keys(REQUIRED).filter((name) =>
    !form.querySelector(`[name="${name}"]`).value) : [];
  document.getElementById("custom-generate").disabled = missing.length > 0;
  document.getElementById("mapping-missing").textContent = missing.length
    ? `Choose the ${missing.map((name) => REQUIRED[name]).join(" and the ")} to generate.` : "";
}

async function previewSource() {
  clearErrors(form);
  const box = document.getElementById("source-preview");
  try {
    const found = await post("/api/sources/preview", { source: form.source.value });
    for (const name of MAPPING) columnSelect(name, found.columns, found.fields[name.replace("_field", "")]);
    previewed = true;
    gateGenerate();
    box.replaceChildren(
      found.format ? el("p", { id: "source-format" }, `Format: ${found.format}`) : "",
      el("p", { class: "muted", id: "detected-columns" },
        `splits: ${found.splits.join(", ")} · columns: ${found.columns.join(", ")}` +
        (found.fields_from === "column names" ? " · fields guessed from the column names" : "")),
      found.chat ? chatNote(found.chat) : "",
      el("table", {}, el("tr", {}, found.columns.map((c) => el("th", {}, c))),
         found.rows.map((row) => el("tr", {}, found.columns.map((c) =>
           el("td", {}, String(row[c] ?? "").slice(0, 160)))))));
    const text = found.rows[0]?.[found.fields.text];
    if (text) { document.getElementById("c-sample").value = text; schedulePreview(); }
  } catch (error) {
    previewed = false;
    gateGenerate();
    if (error instanceof ApiError) showError(form, error); else toast(String(error), "error");
  }
}

// A file of conversations renders as JSON text here; it is meant for the Generic trainer.
function chatNote(chat) {
  const reasons = Object.entries(chat.refused_by_reason).map(([r, n]) => `${r} ${n}`).join(", ");
  return el("p", { id: "chat-detected", class: "notice" },
    `This file looks like chat conversations: ${chat.format.label}. Of the first ${chat.checked} records, ${chat.converted} ` +
    `${chat.command ? "convert" : "are valid"}, ${chat.refused} refused${reasons ? ` (${reasons})` : ""}. ` +
    "This page renders documents for the OCR trainers; to fine-tune a chat model on this file choose ",
    el("a", { href: "/train" }, "Train › Generic"),
    chat.command ? [" (it converts the file by itself), or convert it once: ", el("code", {}, chat.command)] : ".");
}

async function upload() {
  const file = document.getElementById("c-file").files[0];
  if (!file) return;
  const data = new FormData();
  data.append("file", file);
  try {
    const stored = await api("POST", "/api/uploads", data);
    form.source.value = stored.source;
    toast(`Uploaded ${file.name} (${stored.bytes.toLocaleString()} bytes)`);
    await previewSource();
  } catch (error) {
    toast(error.message, "error");
  }
}

let previewTimer = null;
function schedulePreview() {
  clearTimeout(previewTimer);
  previewTimer = setTimeout(renderPreview, 300);
}

async function renderPreview() {
  const { values, invalid } = collect(form, renderSchemas);
  if (invalid.length) return;
  const text = document.getElementById("c-sample").value;
  if (!text.trim()) return;
  try {
    const shown = await post("/api/render/preview", { text, ...values });
    const s = shown.stats;
    document.getElementById("render-preview").replaceChildren(
      ...shown.pages.slice(0, 2).map((src, i) => el("img", { src, alt: `rendered page ${i + 1}` })));
    const items = [["pages", s.num_pages], ["missing glyphs", s.missing_glyphs + (s.missing_glyph_chars ? ` (${s.missing_glyph_chars})` : "")],
                   ["text tokens", s.text_tokens], ["vision tokens", s.vision_tokens],
                   ["vision tokens per page", shown.vision_tokens_per_page.map((row) =>
                     `${row.model}: ${row.global} global, ${row.crops} crops`).join("; ")],
                   ["compression ratio", `${s.compression_ratio} text/vision tokens`], ["truncated characters", s.truncated_chars],
                   ["warnings", shown.warnings.length ? shown.warnings.map((w) => w.message).join(" ") : "none"]];
    document.getElementById("render-stats").replaceChildren(
      ...items.flatMap(([k, v]) => [el("dt", {}, k), el("dd", { "data-stat": k }, String(v))]));
  } catch (error) {
    if (error instanceof ApiError) showError(form, error);
  }
}

async function generate(event) {
  event.preventDefault();
  clearErrors(form);
  const { values, invalid } = collect(form, schemas);
  if (invalid.length) { invalid[0].focus(); return; }
  fontList(values);
  for (const name of MAPPING) {
    const value = form.querySelector(`[name="${name}"]`).value;
    if (value) values[name] = value;
  }
  const button = document.getElementById("custom-generate");
  button.disabled = true;
  const box = document.getElementById("custom-job");
  try {
    const started = await post("/api/dataset/generate", { source: form.source.value, ...values });
    toast(submittedText("Generation", started));
    const done = await follow(started.job_id, (job) => box.replaceChildren(summary(job)));
    if (done.status === "completed") {
      const split = Object.entries(done.result.rows || {}).find(([, n]) => n > 0)?.[0] || "train";
      box.append(el("div", { class: "thumbs" }, thumbnail(started.dataset, split)));
      if (done.result.qa) box.append(worstPages(started.dataset, done.result.qa));
    }
  } catch (error) {
    if (error instanceof ApiError) showError(form, error); else toast(String(error), "error");
  } finally {
    button.disabled = false;
    gateGenerate();
  }
}

async function start() {
  const schema = await requestSchema("/api/dataset/generate");
  const place = (names, id, into) => {
    for (const name of names) {
      into[name] = schema.properties[name];
      document.getElementById(id).append(field(name, schema.properties[name],
                                               { prefix: "c", label: VARIETY_LABELS[name] }));
    }
  };
  place(RENDER, "render-fields", renderSchemas);
  Object.assign(schemas, renderSchemas);
  // Not in the preview (it shows the fixed style): variety applies row by row.
  place(VARIETY, "variety-fields", schemas);
  place(OUTPUT, "output-fields", schemas);
  for (const name of MAPPING) {
    document.getElementById("mapping-fields").append(field(name, schema.properties[name], { prefix: "c" }));
  }
  document.getElementById("preview-source").addEventListener("click", previewSource);
  // A new source is previewed at once, so its columns (and what is missing) show.
  form.source.addEventListener("change", () => { if (form.source.value.trim()) previewSource(); });
  document.getElementById("c-file").addEventListener("change", upload);
  document.getElementById("render-fields").addEventListener("input", schedulePreview);
  document.getElementById("render-fields").addEventListener("change", schedulePreview);
  document.getElementById("c-sample").addEventListener("input", schedulePreview);
  form.addEventListener("submit", generate);
  renderPreview();
}

start().catch((error) => toast(String(error), "error"));
