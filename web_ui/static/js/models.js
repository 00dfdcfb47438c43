// Models: trained models with their metrics and actions; summarize a text or a page image
// with one.
import { ApiError, get, post } from "./api.js";
import { modelActions } from "./model_actions.js";
import { asDataUrl, clearErrors, el, showError, toast } from "./ui.js";

const form = document.getElementById("summarize-form");
const number = (v) => (typeof v === "number" ? v.toFixed(4).replace(/\.?0+$/, "") : "—");

// A job training the run now says more than its summary, which a resumed run keeps as
// "stopped" until it ends again.
function status(m) {
  if (m.training) return "training";
  return m.final ? "ready" : m.metrics.status ?? "training";
}

async function listModels() {
  const { models } = await get("/api/models?limit=1000");
  const box = document.getElementById("models");
  if (!models.length) {
    box.replaceChildren(el("p", { class: "empty" }, "No trained models yet: start one on the Train Model page."));
  } else {
    // "stack": on a phone each row is a block whose cells carry their column's name.
    const columns = ["Model", "Status", "Steps", "Eval loss", "ROUGE-1", "ROUGE-L", "Actions"];
    const refresh = () => listModels().catch((e) => toast(e.message, "error"));
    box.replaceChildren(el("table", { class: "stack" },
      el("tr", {}, columns.map((h) => el("th", {}, h))),
      models.map((m) => el("tr", { "data-model": m.name }, [m.name, status(m), m.metrics.steps ?? "—",
        number(m.metrics.best_eval_loss), number(m.metrics.rouge?.rouge1), number(m.metrics.rouge?.rougeL),
        modelActions(m, refresh)]
        .map((cell, i) => el("td", { "data-label": columns[i], id: i === 0 ? `model-${m.name}` : null },
          cell))))));
  }
  // Summaries are for the OCR models: a chat model reads no pages.
  const ready = models.filter((m) => m.final && m.task !== "chat");
  form.model.replaceChildren(...(ready.length ? ready.map((m) => el("option", { value: m.name }, m.name))
    : [el("option", { value: "" }, "no trained OCR model yet")]));
}

async function summarize(event) {
  event.preventDefault();
  clearErrors(form);
  const file = form.image.files[0];
  const body = { model: form.model.value };
  if (file) body.image = await asDataUrl(file); else body.text = form.text.value;
  const button = document.getElementById("summarize-button");
  button.disabled = true;
  button.textContent = "Summarizing…";
  try {
    const result = await post("/api/summarize", body);
    document.getElementById("summary-result").replaceChildren(
      el("section", { class: "page-preview" }, el("h3", {}, `Page${result.pages > 1 ? "s" : ""} read by the model`),
         result.pages_png.map((src, i) => el("img", { src, alt: `page ${i + 1}` }))),
      el("section", {}, el("h3", {}, "Summary"), el("p", { id: "summary-text" }, result.summary || "(empty)"),
         result.randomly_initialized_base ? el("p", { class: "muted" },
           "This model started from random weights: its summaries show only what it learned here.") : null));
  } catch (error) {
    if (error instanceof ApiError) showError(form, error); else toast(String(error), "error");
  } finally {
    button.disabled = false;
    button.textContent = "Summarize";
  }
}

form.addEventListener("submit", summarize);
listModels().catch((error) => toast(error.message, "error"));
