// Compare Runs: pick runs, overlay their curves (POST /api/compare), list where their resolved
// configurations differ, and clone one into the Train form (/train?clone=RUN).
import { ApiError, get, post } from "./api.js";
import { overlayChart } from "./chart.js";
import { el, setFieldError, toast } from "./ui.js";

const form = document.getElementById("compare-form");
const CURVES = { loss: "training loss", eval_loss: "evaluation loss", rouge1: "ROUGE-1", rougeL: "ROUGE-L" };

function shown(value) {
  return value === null || value === undefined ? "—" : typeof value === "object" ? JSON.stringify(value) : String(value);
}

function diffTable(diff, names) {
  if (!diff.length) return el("p", { class: "empty", id: "no-diff" }, "The configurations are the same.");
  return el("table", { id: "diff-table" },
    el("tr", {}, el("th", {}, "option"), names.map((name) => el("th", {}, name))),
    diff.map((row) => el("tr", { "data-key": row.key }, el("td", {}, el("code", {}, row.key)),
      names.map((name) => el("td", {}, shown(row.values[name]))))));
}

async function compare(event) {
  event?.preventDefault();
  const picked = [...form.querySelectorAll('input[name="models"]:checked')].map((box) => box.value);
  const fieldset = document.getElementById("compare-runs");
  setFieldError(fieldset, picked.length < 2 ? "Pick at least two runs to compare." : "");
  if (picked.length < 2) return;
  try {
    const result = await post("/api/compare", { models: picked });
    const names = result.runs.map((run) => run.name);
    for (const [key, title] of Object.entries(CURVES)) {
      overlayChart(document.getElementById(`cmp-${key}`),
        result.runs.map((run) => ({ name: run.name, points: run.curves[key] })), { title });
    }
    document.getElementById("config-diff").replaceChildren(diffTable(result.config_diff, names));
    document.getElementById("clone-buttons").replaceChildren(...names.map((name) =>
      el("a", { class: "button", href: `/train?clone=${encodeURIComponent(name)}`, "data-clone": name }, `Clone ${name}`)));
    document.getElementById("compare-result").hidden = false;
    history.replaceState(null, "", `?runs=${picked.map(encodeURIComponent).join(",")}`);
  } catch (error) {
    if (error instanceof ApiError) setFieldError(fieldset, error.message); else toast(String(error), "error");
  }
}

async function start() {
  const { models } = await get("/api/models?limit=1000");
  const fieldset = document.getElementById("compare-runs");
  const asked = new URLSearchParams(location.search).get("runs")?.split(",") ?? [];
  if (!models.length) fieldset.append(el("p", { class: "empty" }, "No trained runs yet."));
  for (const model of models) {
    const id = `c-run-${model.name}`;
    const box = el("input", { type: "checkbox", name: "models", value: model.name, id });
    box.checked = asked.includes(model.name);
    fieldset.append(el("div", { class: "check", style: "display:flex;gap:.5rem;align-items:center;margin:.2rem 0" }, box,
      el("label", { for: id }, `${model.name}${model.task ? ` (${model.task})` : ""}`)));
  }
  form.addEventListener("submit", compare);
  if (asked.length >= 2) await compare();
}

start().catch((error) => toast(String(error), "error"));
