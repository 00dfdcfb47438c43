// Train Model: dataset and model pickers, trainer and preset cards, LoRA auto-configure,
// MoE regularization, resume and Hub push; validated as typed with the API's own ranges.
import { ApiError, api, get, post } from "./api.js";
import { submittedText } from "./jobs.js";
import { clearErrors, el, setFieldError, showError, toast } from "./ui.js";
import { collect, field, labelText, requestSchema, setValue } from "./schema.js";
import { applyClone } from "./clone.js";

const form = document.getElementById("train-form");
const GROUPS = {
  "name-slot": ["name"],
  "image-mode-slot": ["image_mode"],
  "adapter-fields": ["peft", "lora_preset", "lora_r", "lora_alpha", "lora_dropout"],
  "schedule-fields": ["max_steps", "num_epochs", "batch_size", "gradient_accumulation_steps",
                      "learning_rate", "save_steps", "eval_steps", "mixed_precision"],
  "moe-fields": ["expert_dropout_rate", "expert_dropout_min_keep", "gate_dropout_rate",
                 "bidrop_passes", "bidrop_agreement", "hidden_dropout", "aux_loss_coef",
                 "z_loss_coef"],
  "hub-fields": ["push_to_hub", "hub_model_id", "public"],
};
const HANDLED = ["dataset", "model", "trainer_type", "preset", "resume_from_checkpoint", "hf_token"];
// (chat_source, hub_dataset and preview_line are page inputs, not request fields)
const TRAINERS = [
  { name: "production", title: "Production", tag: "recommended",
    text: "Frozen vision encoder, MoE regularizers, evaluation with ROUGE, resumable." },
  { name: "deepsynth", title: "DeepSynth", text: "Frozen vision encoder without MoE regularizers." },
  { name: "generic", title: "Generic", text: "A causal language model on chat conversations (JSONL), labels on assistant turns." },
];
const PRESET_TEXT = {
  default: "Balanced defaults for one GPU.", low_memory: "Batch 1 and gradient checkpointing.",
  high_memory: "Large batches for a big GPU.", quick_test: "10 steps to check that everything runs.",
  cpu_demo: "The tiny model on this CPU.", high_quality: "Full fine-tuning with every MoE regularizer.",
  balanced: "MoE regularizers at moderate strength.", fast_iteration: "One epoch, no regularizers.",
};
let schemas = {};
let state = { trainer_type: "production", preset: null };
let datasets = [];

let modelPresets = [];
let trainingPresets = {};
let loraPresets = {};
const LORA_FIELDS = ["lora_preset", "lora_r", "lora_alpha", "lora_dropout"];
// "More options" in sections; a field no section names lands in "Other" (the schema decides
// what exists). Chat fields show for the Generic trainer only.
const MORE = [
  ["Data and prompt", ["train_split", "max_length", "max_pages", "prompt", "sliding_window", "augment", "loader_workers", "trust_remote_code"]],
  ["Optimizer", ["weight_decay", "warmup_ratio", "warmup_steps", "scheduler", "max_grad_norm", "seed", "gradient_checkpointing", "attention_dropout"]],
  ["Checkpoints and logging", ["log_steps", "keep_last", "report_to"]],
  ["Evaluation", ["eval_samples", "eval_split", "num_beams", "max_new_tokens", "early_stopping_patience", "early_stopping_metric"]],
  ["Chat (Generic trainer)", ["eval_dataset", "chat_template", "chat_reasoning", "chat_train_on", "skip_invalid_lines"], "chat"],
];

function showModels() {
  const family = (m) => (m.family === "causal_lm") === (state.trainer_type === "generic");
  form.model.replaceChildren(...modelPresets.filter(family).map((m) => el("option", { value: m.name },
    m.randomly_initialized ? `${m.name} (randomly initialized demo model)` : m.name)));
  form.model.dispatchEvent(new Event("change"));
}

function chooseTrainer(trainer) {
  state.trainer_type = trainer.name;
  const generic = trainer.name === "generic";
  document.getElementById("chat-data").hidden = !generic;
  document.getElementById("dataset-field").hidden = generic;
  document.getElementById("hub-dataset-field").hidden = generic;
  document.getElementById("moe-section").hidden = generic;
  for (const section of document.querySelectorAll("#more-fields [data-for]")) {
    section.hidden = (section.dataset.for === "chat") !== generic;
  }
  showModels();
}

function chatRequest() {
  return { source: form.chat_source.value.trim(), model: form.model.value,
           line: Number(document.getElementById("t-preview_line").value) || 1 };
}

function problemItems(errors, warnings) {
  return el("ul", { class: "problems", id: "chat-problems" },
    errors.map((p) => el("li", { class: "field-error" }, `line ${p.line} · ${p.path} · ${p.message} [${p.rule}]`)),
    warnings.map((p) => el("li", { class: "muted" }, `warning: line ${p.line} · ${p.path} · ${p.message}`)));
}

// Chat JSONL as it is: the validator's verdict. Another format (ShareGPT, Alpaca, a JSON
// array): what converting it gives, since training converts it by itself.
function verdict(report) {
  const s = report.summary;
  const c = report.conversion;
  if (!c) {
    return el("p", { id: "chat-verdict", class: report.ok ? "" : "field-error" },
      report.ok ? `Valid: ${s.valid_rows} of ${s.rows} conversations` :
        `${report.error_count} problems on ${report.invalid_lines.length} lines (training refuses the file unless skip invalid lines is set)`);
  }
  const reasons = Object.entries(c.refused_by_reason).map(([r, n]) => `${r} ${n}`).join(", ");
  return el("div", {},
    el("p", { id: "chat-verdict", class: report.trainable ? "" : "field-error" },
      report.trainable ? `Converted at training time: ${c.converted} of ${c.records} records` :
        `${c.refused} of ${c.records} records refused (training refuses the file unless skip invalid lines is set)`),
    el("p", { id: "chat-conversion" },
      `${c.records} records read, ${c.converted} converted, ${c.refused} refused` + (reasons ? ` (${reasons})` : "") +
      ". Or convert it once: ", el("code", {}, c.command)));
}

async function validateChat() {
  const box = document.getElementById("chat-report");
  setFieldError(form.chat_source, "");  // an earlier file's error is not this file's
  try {
    const report = await post("/api/chat/validate", chatRequest());
    const s = report.summary;
    const t = s.token_lengths;
    const errors = report.conversion ? report.conversion.problems : report.errors;
    box.replaceChildren(
      el("p", { id: "chat-format" }, `Format: ${report.format.label}`),
      verdict(report),
      el("p", { class: "muted" }, `turns ${s.turns} · roles ${Object.entries(s.role_counts).map(([r, n]) => `${r} ${n}`).join(", ")}` +
         (t.p50 !== null ? ` · tokens p50 ${t.p50}, p90 ${t.p90}, max ${t.max}` +
           (t.sampled < s.valid_rows ? ` (percentiles of a sample of ${t.sampled})` : "") : "")),
      problemItems(errors, report.warnings));
  } catch (error) {
    if (error instanceof ApiError) {
      if (error.field === "source") error.field = "chat_source";
      showError(form, error);
    } else toast(String(error), "error");
  }
}

async function previewChat() {
  const box = document.getElementById("chat-preview");
  try {
    const shown = await post("/api/chat/preview", chatRequest());
    box.hidden = false;
    if (!shown.ok) {
      box.replaceChildren(`line ${shown.line} is invalid: ` + shown.errors.map((p) => `${p.path}: ${p.message}`).join("; "));
      return;
    }
    box.replaceChildren(...shown.segments.map((s) => s.trained ? el("mark", { title: "trained" }, s.text) : s.text),
      el("span", { class: "muted" }, `\n\n${shown.trained_tokens} of ${shown.tokens} tokens trained (${shown.template} template)`));
  } catch (error) {
    toast(error.message, "error");
  }
}

async function uploadChat(event) {
  const file = event.target.files[0];
  if (!file) return;
  const data = new FormData();
  data.append("file", file);
  try {
    const stored = await api("POST", "/api/uploads", data);
    form.chat_source.value = stored.source;
    toast(`Uploaded ${file.name}`);
    updateCommands();
    await validateChat();
  } catch (error) {
    toast(error.message, "error");
  }
}

function cardGroup(containerId, items, key, onPick) {
  const container = document.getElementById(containerId);
  const buttons = items.map((item) => {
    const button = el("button", { type: "button", class: "choice", "aria-pressed": "false",
                                  [`data-${key}`]: item.name },
      el("strong", {}, item.title), item.tag ? el("span", { class: "tag rec" }, item.tag) : null,
      el("br"), el("span", { class: "meta" }, item.text));
    button.addEventListener("click", () => {
      for (const other of buttons) other.setAttribute("aria-pressed", String(other === button));
      onPick(item);
      updateCommands();
      scheduleEstimate();
    });
    return button;
  });
  container.replaceChildren(...buttons);
  return buttons;
}

function request() {
  const { values, invalid } = collect(form, schemas);
  const hub = form.hub_dataset.value.trim();
  const generic = state.trainer_type === "generic";
  const dataset = generic ? form.chat_source.value.trim() : hub || form.dataset.value;
  const body = { dataset: dataset || undefined, model: form.model.value || undefined,
                 trainer_type: state.trainer_type, ...values };
  if (state.preset && presetInForce()) body.preset = state.preset;
  if (form.resume_from_checkpoint.value) body.resume_from_checkpoint = form.resume_from_checkpoint.value;
  if (form.hf_token.value) body.hf_token = form.hf_token.value;
  for (const key of Object.keys(body)) if (body[key] === undefined) delete body[key];
  return { body, invalid };
}

// A preset fills the fields it sets; the request names it only while none of those was
// cleared (the server would put the preset's value back into an emptied field).
function presetInForce() {
  return Object.keys(trainingPresets[state.preset] ?? {}).every((name) => {
    const input = form.querySelector(`[name="${name}"]`);
    return !input || input.type === "checkbox" || input.value.trim() !== "";
  });
}

function dropPreset() {
  state.preset = null;
  for (const card of document.querySelectorAll("#training-presets .choice")) card.setAttribute("aria-pressed", "false");
}

// The LoRA fields show what the chosen lora_preset sets (as placeholders: left empty they
// take it), and apply only to the adapter methods.
function showLora() {
  const full = form.peft.value === "full";
  for (const name of LORA_FIELDS) {
    const input = form.querySelector(`[name="${name}"]`);
    input.disabled = full;
    input.closest(".field").classList.toggle("disabled", full);
  }
  const preset = loraPresets[form.lora_preset.value];
  if (!preset) return;
  for (const [name, value] of [["lora_r", preset.r], ["lora_alpha", preset.alpha], ["lora_dropout", preset.dropout]]) {
    form[name].placeholder = String(value);
    document.getElementById(`t-${name}-hint`).textContent = full ? "not used with peft full"
      : `${form.lora_preset.value} sets ${value}`;
  }
}

function datasetPath(body) {
  if (!body.dataset) return "DATASET";
  if (body.dataset.startsWith("hf:")) return body.dataset;  // the CLI downloads it too
  return state.trainer_type === "generic" ? `data/${body.dataset}` : `data/datasets/${body.dataset}`;
}

function updateCommands() {
  const { body } = request();
  const flags = Object.entries(body).filter(([k]) => !["dataset", "name", "hf_token"].includes(k))
    .flatMap(([k, v]) => typeof v === "boolean" ? (v ? [`--${k.replaceAll("_", "-")}`] : [])
      : [`--${k.replaceAll("_", "-")} ${v}`]);
  const out = body.name ?? "MODEL";
  document.getElementById("cli-equivalent").textContent =
    `deepsynth train --dataset ${datasetPath(body)} --out data/models/${out} ${flags.join(" ")}`;
  document.getElementById("curl-equivalent").textContent =
    `curl -X POST ${location.origin}/api/model/train -H 'Content-Type: application/json' ` +
    `-H "Authorization: Bearer $DEEPSYNTH_API_TOKEN" -d '${JSON.stringify(
      body.hf_token ? { ...body, hf_token: "$HF_TOKEN" } : body)}'`;
}

// The estimate line beside "Start training": the peak GPU memory of the options as they are,
// asked again (debounced) whenever they change; the newest answer wins.
let estimateTimer = null;
let estimateAsked = 0;

function scheduleEstimate() {
  clearTimeout(estimateTimer);
  estimateTimer = setTimeout(showEstimate, 400);
}

function estimateText(e) {
  const fits = Object.entries(e.fits).filter(([, ok]) => ok).map(([size]) => size);
  const where = fits.length ? `fits ${fits[0]} GB GPUs and larger` : "fits none of 16-141 GB";
  const fastest = e.step_time.find((t) => t.gpu === "A100-80GB") ?? e.step_time[0];
  return `Estimated peak GPU memory ${e.peak_gib} GiB (${e.needed_on_gpu_gib} GiB with the ` +
    `CUDA context): ${where}` + (fastest ? ` · about ${fastest.seconds} s a step on ${fastest.gpu}` : "") +
    (e.warnings.length ? ` · ${e.warnings[0]}` : "");
}

async function showEstimate() {
  const line = document.getElementById("estimate-line");
  const { body, invalid } = request();
  if (invalid.length) { line.textContent = "Estimate: fix the highlighted fields"; return; }
  delete body.hf_token;
  const asked = ++estimateAsked;
  try {
    const e = await post("/api/training/estimate", body);
    if (asked !== estimateAsked) return;
    line.textContent = estimateText(e);
    line.dataset.peakGib = e.peak_gib;
  } catch (error) {
    if (asked !== estimateAsked) return;
    line.textContent = `Estimate: ${error.field ? error.field + ": " : ""}${error.message}`;
    delete line.dataset.peakGib;
  }
}

async function autoConfigure() {
  const chosen = datasets.find((d) => d.name === form.dataset.value);
  const rows = chosen?.splits?.train ?? 0;
  if (!rows) { toast("Choose a dataset with a train split first", "error"); return; }
  const advice = await post("/api/lora/presets/recommended", { num_samples: rows });
  // The advice counts in epochs: a step limit (a preset's, say) would override it, so it
  // goes, and the training preset with it (the fields now hold the values); what changed
  // is said, not done silently.
  const changes = [];
  for (const [name, value] of Object.entries({ max_steps: null, ...advice.config })) {
    const before = form.querySelector(`[name="${name}"]`)?.value ?? "";
    if (before !== (value === null ? "" : String(value))) changes.push(`${name} ${before || "unset"} → ${value ?? "unset"}`);
    setValue(form, name, value);
  }
  dropPreset();
  showLora();
  const e = advice.estimates;
  document.getElementById("recommendation").textContent =
    (changes.length ? `Changed: ${changes.join(", ")}. ` : "") +
    `${advice.lora_preset} for ${rows} samples: ${e.optimizer_steps} optimizer steps, ` +
    `effective batch ${e.effective_batch_size}, each sample seen ${e.updates_per_sample}×. ` +
    [advice.description, ...advice.notes].join(" ");
  updateCommands();
}

async function loadCheckpoints() {
  const select = form.resume_from_checkpoint;
  const keep = select.value;
  const { models } = await get("/api/models?limit=1000");
  const lists = await Promise.all(models.map((m) => get(`/api/training/checkpoints?model=${encodeURIComponent(m.name)}`)));
  select.replaceChildren(el("option", { value: "" }, "— start fresh —"),
    ...lists.flatMap((l) => l.checkpoints.map((c) =>
      el("option", { value: c.ref, selected: c.ref === keep }, `${l.model} · step ${c.step}`))));
}

async function submit(event) {
  event.preventDefault();
  clearErrors(form);
  const { body, invalid } = request();
  if (invalid.length) {
    invalid[0].closest("details")?.setAttribute("open", "");
    invalid[0].focus();
    toast("Fix the highlighted fields first", "error");
    return;
  }
  const button = document.getElementById("train-button");
  button.disabled = true;
  try {
    const started = await post("/api/model/train", body);
    const link = el("a", { href: `/monitor?job=${started.job_id}`, id: "monitor-link" }, "watch it in the monitor");
    const warned = (started.warnings ?? []).map((w) => el("p", { class: "field-error", id: "train-warning" }, `Warning: ${w}`));
    document.getElementById("train-status").replaceChildren(`Job ${started.job_id} ${started.status}: `, link, ...warned);
    toast(submittedText("Training", started) + (warned.length ? " (with a memory warning)" : ""));
  } catch (error) {
    if (error instanceof ApiError) {
      if (state.trainer_type === "generic" && error.field === "dataset") {
        error.field = "chat_source";
        // The API names its own endpoint; on this page that is the Validate button.
        error.message = error.message.replace("see POST /api/chat/validate", "press Validate to list them");
      }
      const input = error.field && form.querySelector(`[name="${error.field.split(".").pop()}"]`);
      input?.closest("details")?.setAttribute("open", "");
      showError(form, error);
    } else toast(String(error), "error");
  } finally {
    button.disabled = false;
  }
}

function placeMore(schema, placed) {
  const rest = Object.keys(schema.properties).filter((name) => !placed.has(name) && !HANDLED.includes(name));
  const named = new Set(MORE.flatMap(([, names]) => names));
  const sections = [...MORE, ["Other", rest.filter((name) => !named.has(name))]];
  for (const [title, names, only] of sections) {
    const shown = names.filter((name) => rest.includes(name));
    if (!shown.length) continue;
    const row = el("div", { class: "row" });
    for (const name of shown) {
      schemas[name] = schema.properties[name];
      row.append(field(name, schema.properties[name], { prefix: "t" }));
    }
    document.getElementById("more-fields").append(
      el("section", { "data-for": only ?? "all", hidden: only === "chat" }, el("h3", {}, title), row));
  }
}

async function start() {
  const schema = await requestSchema("/api/model/train");
  const placed = new Set(HANDLED);
  for (const [containerId, names] of Object.entries(GROUPS)) {
    for (const name of names) {
      schemas[name] = schema.properties[name];
      placed.add(name);
      document.getElementById(containerId).append(field(name, schema.properties[name], { prefix: "t" }));
    }
  }
  placeMore(schema, placed);
  const [{ datasets: found }, models, { presets }, lora] = await Promise.all([
    get("/api/datasets?limit=1000"), get("/api/models?limit=1000"), get("/api/training/presets"),
    get("/api/lora/presets")]);
  trainingPresets = presets;
  loraPresets = lora.presets;
  datasets = found.filter((d) => d.status === "ready");
  form.dataset.replaceChildren(...(datasets.length ? datasets.map((d) =>
    el("option", { value: d.name }, `${d.name} (${Object.entries(d.splits).map(([s, n]) => `${s} ${n}`).join(", ")})`))
    : [el("option", { value: "" }, "no datasets yet: generate one first")]));
  modelPresets = models.presets;
  showModels();
  const describeModel = () => {
    const chosen = models.presets.find((m) => m.name === form.model.value);
    document.getElementById("t-model-hint").textContent = chosen?.description ?? "";
  };
  form.model.addEventListener("change", describeModel);
  describeModel();
  const trainerButtons = cardGroup("trainers", TRAINERS, "trainer", chooseTrainer);
  trainerButtons[0].setAttribute("aria-pressed", "true");
  cardGroup("training-presets", Object.keys(presets).map((name) => ({ name, title: labelText(name),
    text: PRESET_TEXT[name] ?? "" })), "preset", (preset) => {
    state.preset = preset.name;
    for (const [name, value] of Object.entries(presets[preset.name])) setValue(form, name, value);
    showLora();
  });
  form.peft.addEventListener("change", showLora);
  form.lora_preset.addEventListener("change", showLora);
  showLora();
  document.getElementById("auto-configure").addEventListener("click", () => autoConfigure().catch(
    (error) => toast(error.message, "error")));
  document.getElementById("validate-chat").addEventListener("click", validateChat);
  form.chat_source.addEventListener("input", () => setFieldError(form.chat_source, ""));
  document.getElementById("preview-chat").addEventListener("click", previewChat);
  document.getElementById("t-chat_upload").addEventListener("change", uploadChat);
  document.getElementById("refresh-checkpoints").addEventListener("click", () => loadCheckpoints());
  form.addEventListener("input", updateCommands);
  form.addEventListener("change", updateCommands);
  form.addEventListener("input", scheduleEstimate);
  form.addEventListener("change", scheduleEstimate);
  form.addEventListener("submit", submit);
  await applyClone(form).catch((error) => toast(`Clone: ${error.message}`, "error"));
  updateCommands();
  scheduleEstimate();
  await loadCheckpoints();
}

start().catch((error) => toast(String(error), "error"));
