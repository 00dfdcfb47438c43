// The Models table's actions: evaluate on a dataset, export (merged or not) into the data
// root's exports/ folder, push to the Hub, delete. Each is one REST call of docs/api.md.
import { get, post } from "./api.js";
import { checkbox, confirmDelete, field, openDialog, pushFields, showJob } from "./actions.js";
import { el, toast } from "./ui.js";

const number = (v) => (typeof v === "number" ? v.toFixed(4).replace(/\.?0+$/, "") : "—");
const jobBox = () => document.getElementById("model-job");
const path = (name) => `/api/models/${encodeURIComponent(name)}`;

async function evaluate(model) {
  const { datasets } = await get("/api/datasets?limit=1000");
  const ready = datasets.filter((d) => d.status === "ready");
  const dataset = el("select", { name: "dataset" }, ready.length
    ? ready.map((d) => el("option", { value: d.name }, d.name))
    : el("option", { value: "" }, "no generated dataset yet"));
  const split = el("select", { name: "split" });
  const splits = () => {
    const chosen = ready.find((d) => d.name === dataset.value);
    const names = Object.keys(chosen?.splits ?? {});
    split.replaceChildren(...names.map((s) => el("option", { value: s, selected: s === "test" }, s)));
  };
  dataset.addEventListener("change", splits);
  splits();
  openDialog({
    title: `Evaluate ${model.name}`, submitLabel: "Start evaluation",
    fields: [field("e-dataset", "Dataset", dataset), field("e-split", "Split", split),
             field("e-max_samples", "Max samples", el("input", { name: "max_samples", type: "number",
                   min: 1, placeholder: "every row" }), "(optional)")],
    submit: (form) => post("/api/evaluate", {
      model: model.name, dataset: form.dataset.value, split: form.split.value || null,
      max_samples: form.max_samples.value ? Number(form.max_samples.value) : null }),
    onDone: (answer) => showJob(jobBox(), "Evaluation", answer, (job) => job.status === "completed"
      ? el("span", { id: "evaluation-done" }, `${job.result.samples} rows of ${job.result.split}: `
          + `eval loss ${number(job.result.eval_loss)}, ROUGE-1 ${number(job.result.rouge1)}, `
          + `ROUGE-L ${number(job.result.rougeL)}`) : null),
  });
}

function exportModel(model) {
  openDialog({
    title: `Export ${model.name}`, submitLabel: "Export",
    fields: [checkbox("x-merge", "merge", "Merge the adapters into the weights", true),
             el("p", { class: "hint" }, `Written to exports/${model.name} under the data root `,
                "(an earlier export of this model is replaced).")],
    submit: (form) => post(`${path(model.name)}/export`, { merge: form.merge.checked }),
    onDone: (answer) => showJob(jobBox(), "Export", answer, (job) => job.status === "completed"
      ? el("span", { id: "export-done" }, `Exported to ${job.result.folder}: ${job.result.files.length} files`
          + (job.result.merged ? ", adapters merged." : ".")) : null),
  });
}

function push(model) {
  openDialog({
    title: `Push ${model.name} to the Hugging Face Hub`, submitLabel: "Push",
    fields: [...pushFields("p", ""),
             checkbox("p-merge", "merge", "Merge the adapters into the weights", true)],
    submit: (form) => post(`${path(model.name)}/push`, {
      repo_id: form.repo_id.value.trim(), public: form.public.checked, merge: form.merge.checked }),
    onDone: (answer) => showJob(jobBox(), "Push", answer, (job) => job.status === "completed"
      ? `Pushed to ${job.result.pushed_to}.` : null),
  });
}

// The row's buttons; their names are their visible words, described by the model's name.
export function modelActions(model, refresh) {
  const ready = Boolean(model.final);
  const described = { "aria-describedby": `model-${model.name}` };
  const button = (text, onclick, enabled, why = "needs the run's final model") => el("button", {
    type: "button", ...described, disabled: !enabled, onclick, title: enabled ? null : why }, text);
  return el("span", { class: "row-actions" },
    button("Evaluate", () => evaluate(model).catch((error) => toast(error.message, "error")),
           ready && model.task !== "chat",
           ready ? "evaluation reads pages: it is for OCR models, not chat models" : undefined),
    button("Export", () => exportModel(model), ready),
    button("Push", () => push(model), ready),
    el("button", { type: "button", class: "danger", ...described, onclick: async () => {
      if (await confirmDelete("model", model.name, path(model.name),
                              "Its run folder (checkpoints, final weights, metrics) is removed.")) refresh();
    } }, "Delete"));
}
