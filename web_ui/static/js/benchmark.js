// Benchmark Datasets: preset cards, render options, generation with live progress.
import { ApiError, get, post } from "./api.js";
import { listDatasets, thumbnail } from "./datasets.js";
import { follow, summary, submittedText, unsettledJob } from "./jobs.js";
import { clearErrors, el, showError, toast } from "./ui.js";
import { collect, field, requestSchema } from "./schema.js";
import { LIST_FLAGS, VARIETY, VARIETY_LABELS, fontList, worstPages } from "./qa_report.js";

const MAIN = ["name", "max_samples", "overwrite", "qa_sample"];
const RENDER = ["page_size", "font_size", "margin", "line_spacing", "overflow", "max_pages",
                "color_mode", "workers", "engine", "shard_size", "dedup"];
const HUB = ["push_to_hub", "public"];
const form = document.getElementById("generate-form");
let chosen = null;
let generating = false;
let schemas = {};

function chooseCard(preset, button) {
  chosen = preset;
  for (const other of document.querySelectorAll("#presets .choice")) {
    other.setAttribute("aria-pressed", String(other === button));
  }
  document.getElementById("chosen").textContent = `· ${preset.title}`;
  const splits = document.getElementById("splits");
  splits.replaceChildren(...Object.entries(preset.sizes).map(([split, rows]) =>
    el("label", { for: `split-${split}` },
       el("input", { type: "checkbox", id: `split-${split}`, name: "split", value: split, checked: true }),
       ` ${split} (${rows.toLocaleString()} rows)`)));
  updateCommand();
  gateSplits();
}

// No split checked asks for nothing (the API refuses "splits": []), so Generate waits.
function gateSplits() {
  const none = !form.querySelector('input[name="split"]:checked');
  document.getElementById("generate-button").disabled = none || generating;
  document.getElementById("splits-missing").textContent = none ? "Check at least one split to generate." : "";
}

function presetCard(preset) {
  const button = el("button", { type: "button", class: "choice", "aria-pressed": "false",
                                "data-preset": preset.name },
    el("strong", {}, preset.title), el("br"),
    el("span", { class: "meta" }, preset.description), el("br"),
    el("span", { class: "tag" }, preset.license),
    preset.offline ? el("span", { class: "tag rec" }, "offline") : el("span", { class: "tag" }, "Hub"),
    el("span", { class: "meta" }, " ", Object.entries(preset.sizes)
      .map(([s, n]) => `${s} ${n.toLocaleString()}`).join(" · ")));
  button.addEventListener("click", () => chooseCard(preset, button));
  return button;
}

function request() {
  const { values, invalid } = collect(form, schemas);
  fontList(values);
  const picked = [...form.querySelectorAll('input[name="split"]')];
  const splits = picked.filter((box) => box.checked).map((box) => box.value);
  if (splits.length && splits.length < picked.length) values.splits = splits;
  const token = form.querySelector('[name="hf_token"]').value;
  return { body: { preset: chosen?.name, ...values, ...(token ? { hf_token: token } : {}) }, invalid };
}

function updateCommand() {
  const { body } = request();
  const flags = Object.entries(body).filter(([k]) => !["preset", "hf_token", "name"].includes(k))
    .flatMap(([k, v]) => Array.isArray(v) ? v.map((s) => `${LIST_FLAGS[k]} ${s}`)
      : typeof v === "boolean" ? (v ? [`--${k.replaceAll("_", "-")}`] : []) : [`--${k.replaceAll("_", "-")} ${v}`]);
  document.getElementById("cli-equivalent").textContent =
    `deepsynth generate --source preset:${body.preset ?? "…"} --out data/datasets/${body.name ?? "NAME"} ${flags.join(" ")}`;
}

async function generate(event) {
  event.preventDefault();
  clearErrors(form);
  const { body, invalid } = request();
  if (invalid.length) { invalid[0].focus(); return; }
  generating = true;
  gateSplits();
  try {
    const started = await post("/api/benchmark/create", body);
    toast(submittedText("Generation", started));
    await watch(started.job_id, started.dataset);
  } catch (error) {
    if (error instanceof ApiError) showError(form, error); else toast(String(error), "error");
  } finally {
    generating = false;
    gateSplits();
  }
}

// Follow a generation job here until it settles: after Generate, or after a reload while
// one of this page's jobs (a preset's) still runs.
async function watch(jobId, dataset) {
  generating = true;
  gateSplits();
  const box = document.getElementById("generate-job");
  try {
    const done = await follow(jobId, (job) => box.replaceChildren(summary(job)));
    if (done.status === "completed") {
      const split = Object.entries(done.result.rows || {}).find(([, n]) => n > 0)?.[0] || "train";
      box.append(el("div", { class: "thumbs", id: "generated-thumbnail" }, thumbnail(dataset, split)));
      if (done.result.qa) box.append(worstPages(dataset, done.result.qa));
      toast(`Dataset ${dataset} is ready`);
    }
    await listDatasets(document.getElementById("datasets"));
  } finally {
    generating = false;
    gateSplits();
  }
}

async function start() {
  const schema = await requestSchema("/api/benchmark/create");
  const place = (names, id) => {
    for (const name of names) {
      schemas[name] = schema.properties[name];
      document.getElementById(id).append(field(name, schema.properties[name],
                                               { prefix: "g", label: VARIETY_LABELS[name] }));
    }
  };
  place(MAIN, "main-fields");
  place(RENDER, "render-fields");
  place(VARIETY, "variety-fields");
  place(HUB, "hub-fields");
  form.querySelector('[name="page_size"]').setAttribute("list", "page-sizes");
  form.append(el("datalist", { id: "page-sizes" },
                 ["tiny", "small", "base", "large", "256x256"].map((v) => el("option", { value: v }))));
  const { presets } = await get("/api/datasets/presets");
  const cards = presets.map(presetCard);
  document.getElementById("presets").replaceChildren(...cards);
  const builtin = presets.findIndex((p) => p.offline);
  chooseCard(presets[builtin], cards[builtin]);
  form.addEventListener("input", updateCommand);
  document.getElementById("splits").addEventListener("change", gateSplits);
  form.addEventListener("submit", generate);
  await listDatasets(document.getElementById("datasets"));
  const ongoing = await unsettledJob("generate", (job) =>
    String(job.config?.options?.source ?? "").startsWith("preset:"));
  if (ongoing) watch(ongoing.job_id, ongoing.name).catch((error) => toast(String(error), "error"));
}

start().catch((error) => toast(String(error), "error"));
