// Charts drawn as SVG: a line chart (loss, learning rate, ROUGE) and an expert-load heatmap.
// Hand-written rather than a vendored library: what the monitor needs (nice ticks, a legend,
// hover and keyboard values, a colour scale, redraw at the card's width) fits in this file.
// The viewBox is the container's width in CSS pixels, so 12 px text stays 12 px on screen.
const NS = "http://www.w3.org/2000/svg";
const H = 240, PAD = { left: 56, right: 16, top: 10, bottom: 40 };
const MIN_W = 260, FALLBACK_W = 480;  // a hidden container has no width: draw at 480

function svg(tag, attrs = {}, text) {
  const node = document.createElementNS(NS, tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
  if (text !== undefined) node.textContent = text;
  return node;
}

function html(tag, attrs = {}, text) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
  if (text !== undefined) node.textContent = text;
  return node;
}

// Ticks at 1, 2 or 5 × 10^n covering [lo, hi], evenly spaced; `integer` keeps steps whole.
export function niceTicks(lo, hi, { count = 5, integer = false } = {}) {
  const raw = (hi - lo) / Math.max(1, count);
  const magnitude = 10 ** Math.floor(Math.log10(raw));
  const norm = raw / magnitude;
  let step = (norm <= 1 ? 1 : norm <= 2 ? 2 : norm <= 5 ? 5 : 10) * magnitude;
  if (integer) step = Math.max(1, Math.round(step));
  const start = Math.floor(lo / step + 1e-9) * step, end = Math.ceil(hi / step - 1e-9) * step;
  const ticks = [];
  for (let i = 0; start + i * step <= end + step * 1e-9; i++) ticks.push(clean(start + i * step));
  return { ticks, step, lo: start, hi: end };
}

const clean = (v) => Number(v.toPrecision(12));

// Tick labels at the step's precision: "80" not "80.0", "0.25", and "2e-4" for tiny values.
export function tickFormat(step, ticks) {
  const largest = Math.max(...ticks.map(Math.abs));
  if (largest > 0 && (largest < 1e-2 || largest >= 1e6)) {
    return (v) => (v === 0 ? "0" : clean(v).toExponential().replace("e+", "e"))
      .replace(/\.?0+e/, "e");
  }
  const decimals = Math.max(0, -Math.floor(Math.log10(step) + 1e-9));
  return (v) => clean(v).toFixed(decimals);
}

// A value for the tooltip: enough digits to tell neighbours apart.
const value = (v) => (Math.abs(v) >= 1000 || Number.isInteger(v) ? String(Math.round(v * 100) / 100)
  : Number(v.toPrecision(4)).toString());

function width(container) {
  return Math.max(MIN_W, Math.round(container.clientWidth) || FALLBACK_W);
}

// Redraw at the new width when the card is resized (a wider window, a sidebar closing).
function follow(container, draw) {
  container._draw = draw;
  if (container._observer) return;
  container._observer = new ResizeObserver(() => {
    if (container.clientWidth && Math.abs(width(container) - (container._drawnWidth ?? 0)) > 1) container._draw();
  });
  container._observer.observe(container);
}

// The nearest item to the pointer, or the one the arrow keys move to, shown in a tooltip:
// hover, touch (pointer events) and keyboard (the chart is focusable) all reach the values.
function interactive(container, root, items, spread) {
  const tip = html("div", { class: "chart-tip", role: "status", "aria-live": "polite", hidden: "" });
  const marker = svg("circle", { class: "marker", r: 5, visibility: "hidden" });
  root.append(marker);
  container.append(tip);
  const show = (index) => {
    if (!items.length) return;
    const i = Math.max(0, Math.min(items.length - 1, index));
    const item = items[i];
    container._index = i;
    marker.setAttribute("cx", item.x);
    marker.setAttribute("cy", item.y);
    marker.setAttribute("visibility", "visible");
    tip.textContent = item.text;
    tip.hidden = false;
    const box = root.getBoundingClientRect(), outer = container.getBoundingClientRect();
    const scale = box.width / Number(root.dataset.width) || 1;
    // Placed in the container's coordinates (an SVG element has no offsetTop): the legend
    // above the chart shifts it down.
    const left = Math.min(item.x * scale + 8, Math.max(0, box.width - tip.offsetWidth - 4));
    tip.style.left = `${box.left - outer.left + left}px`;
    tip.style.top = `${box.top - outer.top + Math.max(0, item.y * scale - tip.offsetHeight - 8)}px`;
  };
  const hide = () => { tip.hidden = true; marker.setAttribute("visibility", "hidden"); };
  root.addEventListener("pointermove", (event) => {
    const box = root.getBoundingClientRect();
    const scale = Number(root.dataset.width) / box.width;
    const x = (event.clientX - box.left) * scale, y = (event.clientY - box.top) * scale;
    let best = 0, bestDistance = Infinity;
    items.forEach((item, i) => {
      const distance = (item.x - x) ** 2 + spread * (item.y - y) ** 2;
      if (distance < bestDistance) { best = i; bestDistance = distance; }
    });
    show(best);
  });
  root.addEventListener("pointerleave", () => { if (document.activeElement !== root) hide(); });
  root.addEventListener("focus", () => show(container._index ?? items.length - 1));
  root.addEventListener("blur", hide);
  root.addEventListener("keydown", (event) => {
    const moves = { ArrowRight: 1, ArrowDown: 1, ArrowLeft: -1, ArrowUp: -1 };
    const at = container._index ?? items.length - 1;
    if (event.key in moves) show(at + moves[event.key]);
    else if (event.key === "Home") show(0);
    else if (event.key === "End") show(items.length - 1);
    else if (event.key === "Escape") hide();
    else return;
    event.preventDefault();
  });
  return show;
}

// Replace what the container shows, keeping keyboard focus on the chart across live redraws.
function mount(container, nodes, root) {
  const hadFocus = container.contains(document.activeElement) && document.activeElement.tagName === "svg";
  container.replaceChildren(...nodes);
  container._drawnWidth = Number(root.dataset.width);
  return hadFocus;
}

// The first two series have their CSS colours (blue; orange, dashed); more series (runs
// compared) take these, in order, on the lines, their dots and the legend alike.
const MORE_COLOURS = ["#15803d", "#7e22ce", "#b91c1c", "#0e7490", "#a16207", "#be185d"];
const colourStyle = (i, property) => (i < 2 ? null : `${property}: ${MORE_COLOURS[(i - 2) % MORE_COLOURS.length]}`);

function legend(series) {
  const list = html("ul", { class: "legend" });
  series.forEach((s, i) => {
    const item = html("li", { "data-series": s.name });
    const swatch = html("span", { class: `swatch${i ? " second" : ""}`, "aria-hidden": "true" });
    if (i >= 2) swatch.setAttribute("style", colourStyle(i, "border-top-color") + "; border-top-style: solid");
    item.append(swatch, s.name);
    list.append(item);
  });
  return list;
}

// series: [{name, points: [[x, y], ...]}]; draws into container, replacing what was there.
export function lineChart(container, series, { title = "", xLabel = "step" } = {}) {
  follow(container, () => lineChart(container, series, { title, xLabel }));
  const W = width(container);
  const all = series.flatMap((s) => s.points);
  const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, width: W, height: H, role: "img",
                            "aria-label": title, "data-width": W });
  root.append(svg("title", {}, title));
  container.dataset.points = String(all.length);
  if (!all.length) {
    mount(container, [legend(series), root], root);
    root.append(svg("text", { x: W / 2, y: H / 2, "text-anchor": "middle" }, "no points yet"));
    return;
  }
  const xs = all.map((p) => p[0]), ys = all.map((p) => p[1]);
  let [x0, x1] = [Math.min(...xs), Math.max(...xs)];
  let [y0, y1] = [Math.min(...ys), Math.max(...ys)];
  if (x0 === x1) x1 = x0 + 1;
  if (y0 === y1) { y0 -= Math.abs(y0) * 0.1 || 1; y1 += Math.abs(y1) * 0.1 || 1; }
  const xAxis = niceTicks(x0, x1, { count: Math.max(2, Math.floor((W - PAD.left) / 90)),
                                     integer: xs.every(Number.isInteger) });
  const yAxis = niceTicks(y0, y1, { count: 4 });
  const plot = { left: PAD.left, right: W - PAD.right, top: PAD.top, bottom: H - PAD.bottom };
  const sx = (x) => plot.left + ((x - xAxis.lo) / (xAxis.hi - xAxis.lo)) * (plot.right - plot.left);
  const sy = (y) => plot.bottom - ((y - yAxis.lo) / (yAxis.hi - yAxis.lo)) * (plot.bottom - plot.top);
  root.append(svg("rect", { class: "plot", x: plot.left, y: plot.top, width: plot.right - plot.left,
                            height: plot.bottom - plot.top }));
  const yText = tickFormat(yAxis.step, yAxis.ticks), xText = tickFormat(xAxis.step, xAxis.ticks);
  for (const y of yAxis.ticks) {
    root.append(svg("line", { class: "grid", x1: plot.left, x2: plot.right, y1: sy(y), y2: sy(y) }));
    root.append(svg("text", { class: "tick y", x: plot.left - 6, y: sy(y) + 4, "text-anchor": "end" }, yText(y)));
  }
  for (const x of xAxis.ticks) {
    root.append(svg("line", { class: "axis", x1: sx(x), x2: sx(x), y1: plot.bottom, y2: plot.bottom + 4 }));
    root.append(svg("text", { class: "tick x", x: sx(x), y: plot.bottom + 17, "text-anchor": "middle" }, xText(x)));
  }
  root.append(svg("text", { class: "axis-label", x: (plot.left + plot.right) / 2, y: H - 6, "text-anchor": "middle" }, xLabel));
  const items = [];
  series.forEach((s, i) => {
    if (!s.points.length) return;
    const d = s.points.map((p, j) => `${j ? "L" : "M"}${sx(p[0]).toFixed(1)},${sy(p[1]).toFixed(1)}`).join("");
    const path = svg("path", { class: `line${i ? " second" : ""}`, d, "data-series": s.name });
    if (i >= 2) path.setAttribute("style", `${colourStyle(i, "stroke")}; stroke-dasharray: none`);
    root.append(path);
    if (s.points.length < 40) {
      for (const p of s.points) {
        const dot = svg("circle", { class: `dot${i ? " second" : ""}`, cx: sx(p[0]), cy: sy(p[1]), r: 2.5 });
        if (i >= 2) dot.setAttribute("style", colourStyle(i, "fill"));
        root.append(dot);
      }
    }
    for (const p of s.points) items.push({ x: sx(p[0]), y: sy(p[1]), step: p[0], text: `${xLabel} ${value(p[0])} · ${s.name} ${value(p[1])}` });
  });
  items.sort((a, b) => a.step - b.step || a.y - b.y);
  root.setAttribute("tabindex", "0");
  root.setAttribute("aria-label", `${title}: use the arrow keys for values`);
  const refocus = mount(container, [legend(series), root], root);
  const show = interactive(container, root, items, 0.05);
  if (refocus) { root.focus(); show(container._index ?? items.length - 1); }
}

// rows: [{label, shares: [..]}] -> one row of cells per MoE layer, darker = more tokens; the
// scale is shared by every cell (its legend below) so layers compare.
export function heatmap(container, rows, { title = "expert load" } = {}) {
  follow(container, () => heatmap(container, rows, { title }));
  const W = width(container);
  const experts = Math.max(0, ...rows.map((r) => r.shares.length));
  const left = 70, top = 20;
  const cell = Math.max(18, Math.min(56, Math.floor((W - left - 8) / Math.max(1, experts))));
  const height = top + rows.length * cell + 48;
  const root = svg("svg", { viewBox: `0 0 ${W} ${height}`, width: W, height, role: "img",
                            "aria-label": title, "data-width": W });
  root.append(svg("title", {}, title));
  if (!rows.length) { mount(container, [root], root); return; }
  const peak = Math.max(...rows.flatMap((r) => r.shares), 1e-9);
  const shade = (share) => { const s = Math.round(235 - 175 * (share / peak)); return `rgb(${s},${s + 10},255)`; };
  for (let e = 0; e < experts; e++) {
    root.append(svg("text", { class: "tick", x: left + e * cell + cell / 2, y: 14, "text-anchor": "middle" }, `e${e}`));
  }
  const items = [];
  rows.forEach((row, r) => {
    root.append(svg("text", { class: "tick", x: left - 6, y: top + r * cell + cell / 2 + 4, "text-anchor": "end" }, row.label));
    row.shares.forEach((share, e) => {
      const text = `${row.label} expert ${e}: ${(100 * share).toFixed(1)}% of tokens`;
      const rect = svg("rect", { x: left + e * cell, y: top + r * cell, width: cell - 2, height: cell - 2, fill: shade(share) });
      rect.append(svg("title", {}, text));
      root.append(rect);
      items.push({ x: left + e * cell + cell / 2, y: top + r * cell + cell / 2, text });
    });
  });
  scaleLegend(root, container, { x: left, y: top + rows.length * cell + 10, width: Math.min(240, experts * cell) }, peak, shade);
  root.setAttribute("tabindex", "0");
  root.setAttribute("aria-label", `${title}: use the arrow keys for each expert's share`);
  const refocus = mount(container, [root], root);
  const show = interactive(container, root, items, 1);
  if (refocus) { root.focus(); show(container._index ?? 0); }
}

// The colour scale: a gradient from 0% to the busiest expert's share, with its ends labelled.
function scaleLegend(root, container, box, peak, shade) {
  const id = `${container.id || "heatmap"}-scale`;
  const gradient = svg("linearGradient", { id });
  gradient.append(svg("stop", { offset: "0%", "stop-color": shade(0) }), svg("stop", { offset: "100%", "stop-color": shade(peak) }));
  const defs = svg("defs");
  defs.append(gradient);
  const scale = svg("g", { class: "scale", "data-peak": String(peak) });
  scale.append(svg("rect", { x: box.x, y: box.y, width: box.width, height: 10, fill: `url(#${id})`, stroke: "#b9c2d0" }),
    svg("text", { class: "tick", x: box.x, y: box.y + 25 }, "0%"),
    svg("text", { class: "tick", x: box.x + box.width, y: box.y + 25, "text-anchor": "end" }, `${(100 * peak).toFixed(1)}% of tokens`));
  root.append(defs, scale);
}

// Several series on one chart (runs compared), each in its own colour: lineChart draws the
// lines, their dots and the legend; this gives each series its colour from SERIES_COLOURS
// (inline, so every series differs), notes a series without points in the legend, and keeps
// doing so when the chart is drawn again at a new width.
export const SERIES_COLOURS = ["#1d4ed8", "#c2410c", "#15803d", "#7e22ce", "#b91c1c", "#0e7490", "#a16207", "#be185d"];

export function overlayChart(container, series, options = {}) {
  lineChart(container, series, options);
  container._draw = () => overlayChart(container, series, options);
  const colour = (i) => SERIES_COLOURS[i % SERIES_COLOURS.length];
  let current = null;  // each path's dots follow it
  for (const node of container.querySelector("svg").children) {
    if (node.tagName === "path" && node.dataset.series !== undefined) {
      current = colour(series.findIndex((s) => s.name === node.dataset.series));
      node.style.stroke = current;
      node.style.strokeDasharray = "none";
    } else if (node.tagName === "circle" && node.classList.contains("dot") && current) node.style.fill = current;
  }
  container.querySelectorAll(".legend li").forEach((item, i) => {
    const swatch = item.querySelector(".swatch");
    swatch.style.borderTopColor = colour(i);
    swatch.style.borderTopStyle = "solid";
    if (!series[i].points.length) item.append(" (no points)");
  });
}
