// What the Benchmark, Custom and Datasets pages share about render QA and rendering variety: the worst
// pages of a QA report as thumbnails (the page-PNG endpoint, rows addressed by their index in
// the split) with their CER and script, and the variety fields of the generation form.
import { el } from "./ui.js";

export const VARIETY = ["vary_fonts", "vary_font_size_min", "vary_font_size_max",
  "vary_line_spacing_min", "vary_line_spacing_max", "vary_margin_min", "vary_margin_max", "vary_seed"];

// Their labels: none contains another field's label ("font size", "margin"), so a label
// still names one field.
export const VARIETY_LABELS = {
  vary_fonts: "fonts to vary (comma-separated)", vary_font_size_min: "smallest text px",
  vary_font_size_max: "largest text px", vary_line_spacing_min: "tightest line gap",
  vary_line_spacing_max: "loosest line gap", vary_margin_min: "narrowest border px",
  vary_margin_max: "widest border px", vary_seed: "style seed",
};

// CLI flags of the list fields (the others are --NAME-WITH-DASHES).
export const LIST_FLAGS = { splits: "--split", vary_fonts: "--vary-font" };

// The form gives vary_fonts as text ("DejaVuSans, DejaVuSerif"); the API takes a list.
export function fontList(values) {
  if (typeof values.vary_fonts === "string") {
    values.vary_fonts = values.vary_fonts.split(",").map((s) => s.trim()).filter(Boolean);
  }
  return values;
}

export const percent = (rate) => (rate === null || rate === undefined ? "—" : `${(100 * rate).toFixed(1)}%`);

// `id`: the section's id where a page shows one report (the Datasets page shows several: null).
export function worstPages(dataset, qa, id = "qa-report") {
  const pages = qa.worst.map((w) => {
    const src = `/api/datasets/${encodeURIComponent(dataset)}/samples/${w.row}/pages/${w.page}.png` +
      `?split=${encodeURIComponent(w.split)}`;
    const where = `${w.split} row ${w.row + 1} (${w.id}), page ${w.page + 1}`;
    return el("figure", { class: "qa-page", "data-cer": w.cer },
      el("img", { src, alt: `worst page: ${where}`, loading: "lazy" }),
      el("figcaption", {}, `CER ${percent(w.cer)} · ${w.script ?? "no script"}`, el("br"),
         el("span", { class: "muted" }, where)));
  });
  return el("section", { class: "qa-report", id },
    el("h3", {}, `Render QA: CER ${percent(qa.cer)} over ${qa.sample} of ${qa.of_pages} pages`),
    pages.length ? el("div", { class: "thumbs qa-worst" }, pages)
      : el("p", { class: "muted" }, "No page could be read (no Tesseract language pack for its script)."));
}
