// Charts drawn as SVG: a line chart (loss, learning rate, ROUGE) and an expert-load heatmap.
const NS = "http://www.w3.org/2000/svg";
const W = 480, H = 220, PAD = { left: 48, right: 12, top: 12, bottom: 28 };

function svg(tag, attrs = {}, text) {
  const node = document.createElementNS(NS, tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
  if (text !== undefined) node.textContent = text;
  return node;
}

const fmt = (v) => (Math.abs(v) >= 100 || v === 0 ? v.toFixed(0)
  : Math.abs(v) >= 1 ? v.toFixed(2) : v.toPrecision(2));

// series: [{name, points: [[x, y], ...]}]; draws into container, replacing what was there.
export function lineChart(container, series, { title = "", xLabel = "step" } = {}) {
  const all = series.flatMap((s) => s.points);
  const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": title });
  root.append(svg("title", {}, title));
  container.replaceChildren(root);
  container.dataset.points = String(all.length);
  if (!all.length) {
    root.append(svg("text", { x: W / 2, y: H / 2, "text-anchor": "middle" }, "no points yet"));
    return;
  }
  const xs = all.map((p) => p[0]), ys = all.map((p) => p[1]);
  let [x0, x1] = [Math.min(...xs), Math.max(...xs)];
  let [y0, y1] = [Math.min(...ys), Math.max(...ys)];
  if (x0 === x1) x1 = x0 + 1;
  if (y0 === y1) { y0 -= Math.abs(y0) * 0.1 || 1; y1 += Math.abs(y1) * 0.1 || 1; }
  const sx = (x) => PAD.left + ((x - x0) / (x1 - x0)) * (W - PAD.left - PAD.right);
  const sy = (y) => H - PAD.bottom - ((y - y0) / (y1 - y0)) * (H - PAD.top - PAD.bottom);
  root.append(svg("line", { class: "axis", x1: PAD.left, y1: H - PAD.bottom, x2: W - PAD.right, y2: H - PAD.bottom }));
  root.append(svg("line", { class: "axis", x1: PAD.left, y1: PAD.top, x2: PAD.left, y2: H - PAD.bottom }));
  for (const y of [y0, (y0 + y1) / 2, y1]) {
    root.append(svg("text", { x: PAD.left - 4, y: sy(y) + 4, "text-anchor": "end" }, fmt(y)));
  }
  root.append(svg("text", { x: PAD.left, y: H - 8 }, fmt(x0)));
  root.append(svg("text", { x: W - PAD.right, y: H - 8, "text-anchor": "end" }, `${xLabel} ${fmt(x1)}`));
  series.forEach((s, i) => {
    if (!s.points.length) return;
    const d = s.points.map((p, j) => `${j ? "L" : "M"}${sx(p[0]).toFixed(1)},${sy(p[1]).toFixed(1)}`).join("");
    root.append(svg("path", { class: `line${i ? " second" : ""}`, d, "data-series": s.name }));
    if (s.points.length < 40) {
      for (const p of s.points) root.append(svg("circle", { class: "dot", cx: sx(p[0]), cy: sy(p[1]), r: 2.5 }));
    }
    root.append(svg("text", { x: W - PAD.right - 4, y: PAD.top + 12 + 14 * i, "text-anchor": "end" }, s.name));
  });
}

// rows: [{label, shares: [..]}] -> one row of cells per MoE layer, darker = more tokens.
export function heatmap(container, rows, { title = "expert load" } = {}) {
  const experts = Math.max(0, ...rows.map((r) => r.shares.length));
  const cell = 28, left = 90, top = 18;
  const root = svg("svg", { viewBox: `0 0 ${left + experts * cell + 8} ${top + rows.length * cell + 8}`,
                            role: "img", "aria-label": title });
  root.append(svg("title", {}, title));
  container.replaceChildren(root);
  if (!rows.length) return;
  for (let e = 0; e < experts; e++) {
    root.append(svg("text", { x: left + e * cell + cell / 2, y: 12, "text-anchor": "middle" }, `e${e}`));
  }
  rows.forEach((row, r) => {
    root.append(svg("text", { x: left - 6, y: top + r * cell + cell / 2 + 4, "text-anchor": "end" }, row.label));
    const peak = Math.max(...row.shares, 1e-9);
    row.shares.forEach((share, e) => {
      const shade = Math.round(235 - 175 * (share / peak));
      const rect = svg("rect", { x: left + e * cell, y: top + r * cell, width: cell - 2, height: cell - 2,
                                 fill: `rgb(${shade},${shade + 10},255)` });
      rect.append(svg("title", {}, `${row.label} expert ${e}: ${(100 * share).toFixed(1)}% of tokens`));
      root.append(rect);
    });
  });
}

// Several series on one chart (runs compared), each in its own colour, with a legend below
// the chart naming them: lineChart draws the lines, this colours them and adds the legend.
export const SERIES_COLOURS = ["#1d4ed8", "#c2410c", "#15803d", "#7e22ce", "#b91c1c", "#0e7490", "#a16207", "#be185d"];

export function overlayChart(container, series, options = {}) {
  lineChart(container, series, options);
  const colour = (i) => SERIES_COLOURS[i % SERIES_COLOURS.length];
  const drawn = series.filter((s) => s.points.length);
  container.querySelectorAll("svg > text").forEach((label) => {
    if (drawn.some((s) => s.name === label.textContent)) label.remove();  // the legend names them
  });
  let current = null;  // each path's dots follow it
  for (const node of container.querySelector("svg").children) {
    if (node.tagName === "path" && node.dataset.series !== undefined) {
      current = colour(series.findIndex((s) => s.name === node.dataset.series));
      node.style.stroke = current;
    } else if (node.tagName === "circle" && current) node.style.fill = current;
  }
  const legend = document.createElement("ul");
  legend.className = "legend";
  legend.style.cssText = "list-style:none;display:flex;flex-wrap:wrap;gap:.25rem 1rem;padding:0;margin:.25rem 0 0";
  series.forEach((s, i) => {
    const item = document.createElement("li");
    item.dataset.series = s.name;
    const swatch = document.createElement("span");
    swatch.setAttribute("aria-hidden", "true");
    swatch.style.cssText = `display:inline-block;width:1.5em;height:3px;vertical-align:middle;margin-right:.35em;background:${colour(i)}`;
    item.append(swatch, s.points.length ? s.name : `${s.name} (no points)`);
    legend.append(item);
  });
  container.append(legend);
}
