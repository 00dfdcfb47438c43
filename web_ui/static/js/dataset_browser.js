// Browsing a dataset's rows: a dataset and split, a few rows at a time (GET
// /api/datasets/<name>/samples?split&offset&limit), each with its text, summary and page
// thumbnails that open full size. Paging works from the keyboard: the buttons, and ← → or
// Page Up / Page Down while the focus is on the rows.
import { ApiError, get } from "./api.js";
import { thumbnail } from "./datasets.js";
import { clearErrors, el, showError, toast } from "./ui.js";

export const ROWS_PER_PAGE = 5;
const form = document.getElementById("browse-form");
const rowsBox = document.getElementById("rows");
const previous = document.getElementById("rows-previous");
const next = document.getElementById("rows-next");
const state = { datasets: [], offset: 0, total: 0 };

function openFull(name, split, index, page) {
  const dialog = document.getElementById("page-dialog");
  const image = document.getElementById("page-full");
  document.getElementById("page-dialog-title").textContent =
    `${name}: page ${page + 1} of ${split} row ${index + 1}`;
  image.src = thumbnail(name, split, index, page).getAttribute("src");
  image.alt = `page ${page + 1} of row ${index + 1}, full size`;
  dialog.showModal();
}

function rowView(name, split, row) {
  const pages = Array.from({ length: row.pages }, (_, page) => el("button", {
    type: "button", class: "page-thumb",
    "aria-label": `Page ${page + 1} of row ${row.index + 1}, full size`,
    onclick: () => openFull(name, split, row.index, page) }, thumbnail(name, split, row.index, page)));
  const stats = [`${row.pages} page${row.pages === 1 ? "" : "s"}`,
                 row.text_tokens != null ? `${row.text_tokens} text tokens` : null,
                 row.vision_tokens != null ? `${row.vision_tokens} vision tokens` : null,
                 row.missing_glyphs ? `${row.missing_glyphs} missing glyphs` : null].filter(Boolean);
  return el("article", { class: "browse-row", "data-index": row.index },
            el("h3", {}, `Row ${row.index + 1}`, row.id ? el("span", { class: "muted" }, ` · ${row.id}`) : null),
            el("p", { class: "muted" }, stats.join(" · ")),
            el("div", { class: "cols" },
               el("section", {}, el("h4", {}, "Text"), el("p", { class: "row-text" }, row.text)),
               el("section", {}, el("h4", {}, "Summary"), el("p", { class: "row-summary" }, row.summary))),
            el("div", { class: "thumbs" }, pages));
}

// Keep the focus on the pager when the button it was on is disabled (the first or last rows).
function setPager() {
  const last = state.offset + ROWS_PER_PAGE >= state.total;
  for (const [button, off, other] of [[previous, state.offset === 0, next], [next, last, previous]]) {
    if (off && document.activeElement === button && !other.disabled) other.focus();
    button.disabled = off;
  }
  const shown = Math.min(state.offset + ROWS_PER_PAGE, state.total);
  document.getElementById("rows-range").textContent = state.total
    ? `rows ${state.offset + 1}–${shown} of ${state.total}` : "no rows";
}

export async function showRows(offset = 0) {
  const name = form.dataset.value;
  const split = form.split.value;
  if (!name) {
    rowsBox.replaceChildren(el("p", { class: "empty" }, "No dataset to browse yet."));
    Object.assign(state, { offset: 0, total: 0 });
    setPager();
    return;
  }
  clearErrors(form);
  const query = new URLSearchParams({ split, offset: Math.max(0, offset), limit: ROWS_PER_PAGE });
  try {
    const answer = await get(`/api/datasets/${encodeURIComponent(name)}/samples?${query}`);
    Object.assign(state, { offset: answer.offset, total: answer.total });
    rowsBox.replaceChildren(...(answer.samples.length ? answer.samples.map((r) => rowView(name, answer.split, r))
      : [el("p", { class: "empty" }, "This split has no rows.")]));
    history.replaceState(null, "", `?${new URLSearchParams({ dataset: name, split: answer.split, offset: answer.offset })}`);
    setPager();
  } catch (error) {
    if (error instanceof ApiError) showError(form, error); else toast(String(error), "error");
  }
}

function fillSplits(chosenSplit) {
  const dataset = state.datasets.find((d) => d.name === form.dataset.value);
  const splits = Object.keys(dataset?.splits ?? {});
  form.split.replaceChildren(...splits.map((s) => el("option", { value: s, selected: s === chosenSplit }, s)));
}

// The pickers over `datasets` (the page's listing); `chosen` from the URL or a Browse button.
export function setDatasets(datasets, chosen = {}) {
  state.datasets = datasets.filter((d) => d.status !== "unreadable");
  const current = chosen.dataset ?? form.dataset.value;
  form.dataset.replaceChildren(...state.datasets.map((d) => el("option", { value: d.name, selected: d.name === current }, d.name)));
  fillSplits(chosen.split ?? form.split.value);
  return showRows(chosen.offset ?? 0);
}

// A page turned from the rows keeps the focus there (the row it was on is replaced).
async function turn(step, fromRows = false) {
  const target = state.offset + step * ROWS_PER_PAGE;
  if (target < 0 || target >= state.total) return;
  await showRows(target);
  if (fromRows) rowsBox.focus();
}

form.dataset.addEventListener("change", () => { fillSplits(); showRows(0); });
form.split.addEventListener("change", () => showRows(0));
previous.addEventListener("click", () => turn(-1));
next.addEventListener("click", () => turn(1));
rowsBox.addEventListener("keydown", (event) => {
  const step = { ArrowRight: 1, PageDown: 1, ArrowLeft: -1, PageUp: -1 }[event.key];
  if (!step) return;
  event.preventDefault();
  turn(step, true);
});
document.getElementById("page-close").addEventListener("click", () =>
  document.getElementById("page-dialog").close());
