// The Datasets page: every generated dataset with its warnings and latest render QA (CER, the
// worst pages), Browse, QA (a render_qa job), Push (to the Hub) and Delete, and the row
// browser (dataset_browser.js).
import { get, post } from "./api.js";
import { confirmDelete, field, openDialog, pushFields, showJob } from "./actions.js";
import { setDatasets } from "./dataset_browser.js";
import { percent, worstPages } from "./qa_report.js";
import { badge, el, toast } from "./ui.js";

const list = document.getElementById("dataset-list");
const path = (name) => `/api/datasets/${encodeURIComponent(name)}`;
const size = (bytes) => (bytes >= 2 ** 20 ? `${(bytes / 2 ** 20).toFixed(1)} MiB` : `${Math.ceil(bytes / 1024)} KiB`);

function push(dataset) {
  let repo = "";
  openDialog({
    title: `Push ${dataset.name} to the Hugging Face Hub`, submitLabel: "Push",
    fields: pushFields("dp", ""),
    submit: (form) => {
      repo = form.repo_id.value.trim();
      return post(`${path(dataset.name)}/push`, { repo_id: repo, public: form.public.checked });
    },
    onDone: (answer) => showJob(document.getElementById("dataset-job"), "Push", answer,
      (job) => (job.status === "completed"
        ? el("span", { id: "push-done" }, `Pushed ${job.result.uploaded.length} files to ${repo}.`) : null)),
  });
}

function renderQa(dataset) {
  const number = (name, value, min, max) => el("input", { name, type: "number", value, min, max, step: 1, required: true });
  openDialog({
    title: `Render QA of ${dataset.name}`, submitLabel: "Run QA",
    fields: [field("qa-sample", "Pages to read back", number("sample", 50, 1, 10000), "(1-10,000)"),
             field("qa-seed", "Sample seed", number("seed", 0, 0), "(the same seed reads the same pages)"),
             el("p", { class: "hint" }, "Tesseract reads the pages back; the character error rate per ",
                "script and the worst pages are kept with the dataset.")],
    submit: (form) => post(`${path(dataset.name)}/qa`, {
      sample: Number(form.sample.value), seed: Number(form.seed.value) }),
    onDone: (answer) => showJob(document.getElementById("dataset-job"), "Render QA", answer, (job) => {
      if (job.status !== "completed") return null;
      refresh();
      return worstPages(dataset.name, job.result.qa, "dataset-qa-report");
    }),
  });
}

function actions(dataset) {
  const described = { "aria-describedby": `dataset-${dataset.name}` };
  const ready = dataset.status === "ready";
  return el("span", { class: "row-actions" },
    el("button", { type: "button", ...described, disabled: !ready, onclick: () => {
      setDatasets(listed, { dataset: dataset.name });
      document.getElementById("browser").scrollIntoView();
      document.getElementById("b-dataset").focus();
    } }, "Browse"),
    el("button", { type: "button", ...described, disabled: !ready, onclick: () => renderQa(dataset) }, "QA"),
    el("button", { type: "button", ...described, disabled: !ready, onclick: () => push(dataset) }, "Push"),
    el("button", { type: "button", class: "danger", ...described, onclick: async () => {
      if (await confirmDelete("dataset", dataset.name, path(dataset.name),
                              "Its pages and rows are removed from the data root.")) refresh();
    } }, "Delete"));
}

let listed = [];

// The latest render QA (its CER, opening to the worst pages) and the dataset's warnings.
function quality(d) {
  const warned = (d.warnings ?? []).map((w) => el("p", { class: "dataset-warning", "data-kind": w.kind }, `Warning: ${w.message}`));
  const qa = d.qa ? el("details", { class: "qa-details" },
                       el("summary", {}, `CER ${percent(d.qa.cer)} (${d.qa.sample} pages)`), worstPages(d.name, d.qa, null))
    : el("span", { class: "muted" }, "not checked");
  return [qa, warned];
}

const COLUMNS = ["dataset", "status", "rows", "pages", "size", "render QA", "actions"];

// "stack": on a phone each row is a block whose cells carry their column's name.
function row(d) {
  const splits = Object.entries(d.splits || {}).map(([s, n]) => `${s}: ${n}`).join(" · ");
  const cells = [d.name, badge(d.status), splits || "—", d.pages ?? "—", d.bytes ? size(d.bytes) : "—",
                 quality(d), actions(d)];
  return el("tr", { "data-dataset": d.name }, cells.map((cell, i) => el("td", {
    "data-label": COLUMNS[i], id: i === 0 ? `dataset-${d.name}` : null, class: i === 5 ? "quality" : null }, cell)));
}

async function refresh(chosen) {
  ({ datasets: listed } = await get("/api/datasets?limit=1000"));
  list.replaceChildren(listed.length
    ? el("table", { class: "stack" }, el("tr", {}, COLUMNS.map((h) => el("th", {}, h))),
         listed.map(row))
    : el("p", { class: "empty" }, "No datasets yet: generate one on the Benchmark or Custom page."));
  await setDatasets(listed, chosen);
}

const query = new URLSearchParams(location.search);
refresh({ dataset: query.get("dataset") ?? undefined, split: query.get("split") ?? undefined,
          offset: Number(query.get("offset")) || 0 }).catch((error) => toast(error.message, "error"));
