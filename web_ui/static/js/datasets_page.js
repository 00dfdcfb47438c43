// The Datasets page: every generated dataset with Browse, Push (to the Hub) and Delete, and
// the row browser (dataset_browser.js).
import { get, post } from "./api.js";
import { confirmDelete, openDialog, pushFields, showJob } from "./actions.js";
import { setDatasets } from "./dataset_browser.js";
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

function actions(dataset) {
  const described = { "aria-describedby": `dataset-${dataset.name}` };
  const ready = dataset.status === "ready";
  return el("span", { class: "row-actions" },
    el("button", { type: "button", ...described, disabled: !ready, onclick: () => {
      setDatasets(listed, { dataset: dataset.name });
      document.getElementById("browser").scrollIntoView();
      document.getElementById("b-dataset").focus();
    } }, "Browse"),
    el("button", { type: "button", ...described, disabled: !ready, onclick: () => push(dataset) }, "Push"),
    el("button", { type: "button", class: "danger", ...described, onclick: async () => {
      if (await confirmDelete("dataset", dataset.name, path(dataset.name),
                              "Its pages and rows are removed from the data root.")) refresh();
    } }, "Delete"));
}

let listed = [];

function row(d) {
  const splits = Object.entries(d.splits || {}).map(([s, n]) => `${s}: ${n}`).join(" · ");
  return el("tr", { "data-dataset": d.name }, el("td", { id: `dataset-${d.name}` }, d.name),
            el("td", {}, badge(d.status)), el("td", {}, splits || "—"), el("td", {}, d.pages ?? "—"),
            el("td", {}, d.bytes ? size(d.bytes) : "—"), el("td", {}, actions(d)));
}

async function refresh(chosen) {
  ({ datasets: listed } = await get("/api/datasets?limit=1000"));
  list.replaceChildren(listed.length
    ? el("table", {}, el("tr", {}, ["dataset", "status", "rows", "pages", "size", "actions"].map((h) => el("th", {}, h))),
         listed.map(row))
    : el("p", { class: "empty" }, "No datasets yet: generate one on the Benchmark or Custom page."));
  await setDatasets(listed, chosen);
}

const query = new URLSearchParams(location.search);
refresh({ dataset: query.get("dataset") ?? undefined, split: query.get("split") ?? undefined,
          offset: Number(query.get("offset")) || 0 }).catch((error) => toast(error.message, "error"));
