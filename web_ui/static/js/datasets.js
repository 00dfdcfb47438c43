// Generated datasets as cards with a thumbnail of their first page.
import { get } from "./api.js";
import { badge, el } from "./ui.js";

export function thumbnail(name, split, index = 0, page = 0) {
  const src = `/api/datasets/${encodeURIComponent(name)}/samples/${index}/pages/${page}.png?split=${encodeURIComponent(split)}`;
  return el("img", { src, alt: `${name}: page ${page + 1} of ${split} row ${index + 1}`, loading: "lazy" });
}

export function datasetCard(dataset) {
  const splits = Object.entries(dataset.splits || {});
  const first = splits.find(([, rows]) => rows > 0);
  return el("article", { class: "card", "data-dataset": dataset.name },
            el("header", {}, el("strong", {}, dataset.name), " ", badge(dataset.status)),
            el("p", { class: "muted" }, splits.map(([s, n]) => `${s}: ${n} rows`).join(" · ") || "no rows yet"),
            first ? el("div", { class: "thumbs" }, thumbnail(dataset.name, first[0])) : null);
}

export async function listDatasets(container) {
  const { datasets } = await get("/api/datasets?limit=1000");
  container.replaceChildren(...(datasets.length ? datasets.map(datasetCard)
    : [el("p", { class: "empty" }, "No datasets yet.")]));
  return datasets;
}
