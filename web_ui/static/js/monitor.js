// Monitor Jobs: every job with its controls; the chosen job's live detail (server-sent
// events, polling as fallback): charts, expert load, log tail, samples, page thumbnails.
import { ApiError, del, get, post } from "./api.js";
import { thumbnail } from "./datasets.js";
import { lineChart, heatmap } from "./chart.js";
import { SETTLED, progressLine, queueText } from "./jobs.js";
import { badge, duration, el, toast } from "./ui.js";

const ACTIONS = {
  queued: ["pause", "cancel"], running: ["pause", "cancel"], paused: ["resume", "cancel", "delete"],
  interrupted: ["resume", "cancel", "delete"], failed: ["resume", "delete"],
  completed: ["delete"], cancelled: ["delete"], corrupt: ["delete"],
};
// Final actions sit apart from pause and resume and ask first.
const FINAL = new Set(["cancel", "delete"]);
const CONFIRM = {
  cancel: (job) => `Cancel job ${job.job_id}? This is final: it stops for good and cannot be resumed. (Pause keeps it resumable.)`,
  delete: (job) => `Delete job ${job.job_id}? Its dataset or model stays.`,
};
const COUNTS = {
  read: "rows read", written: "rows written", empty: "empty rows dropped", empty_summary: "empty summaries dropped",
  duplicates: "duplicates dropped", leaked: "rows leaked between splits dropped", invalid: "bad rows skipped",
  truncated: "rows truncated", missing_glyphs: "missing glyphs",
  rows_with_missing_glyphs: "rows with missing glyphs", pages: "pages",
};
const cards = new Map();
let selected = new URLSearchParams(location.search).get("job");
let watcher = null;

async function act(job, action) {
  try {
    if (CONFIRM[action] && !confirm(CONFIRM[action](job))) return;
    let message = `${action}: ${job.job_id}`;
    if (action === "delete") {
      await del(`/api/jobs/${job.job_id}`);
      if (selected === job.job_id) select(null);
    } else {
      const after = await post(`/api/jobs/${job.job_id}/${action}`);
      message = actionText(action, after);
    }
    toast(message);
    await refreshList();
  } catch (error) {
    toast(error instanceof ApiError ? error.message : String(error), "error");
  }
}

// What an action did: a resumed job may wait its turn; a paused one frees its slot.
function actionText(action, job) {
  if (action === "resume") {
    return job.status === "queued" ? `Resumed ${job.job_id}: ${queueText(job) || "queued"}` : `Resumed ${job.job_id}`;
  }
  if (action === "pause") return `Pausing ${job.job_id}: its slot goes to the next queued job; resume puts it back in line`;
  if (action === "cancel") return `Cancelled ${job.job_id}`;
  return `${action}: ${job.job_id}`;
}

function actionButton(job, action) {
  return el("button", { type: "button", class: FINAL.has(action) ? "danger" : "",
                        "data-action": action, onclick: () => act(job, action) }, action);
}

function cardContent(job) {
  // Its accessible name starts with the visible text (what a speech user says to press it).
  const shown = `${job.kind} · ${job.name ?? job.job_id}`;
  const title = el("button", { type: "button", class: "linklike title", "aria-label": `${shown}: show details`,
                               onclick: () => select(job.job_id, { reveal: true }) }, shown);
  return [el("header", {}, title, badge(job.status),
             el("span", { class: "muted" }, new Date(job.created_at * 1000).toLocaleString())),
          progressLine(job),
          job.error ? el("p", { class: "field-error" }, job.error) : null,
          el("div", { class: "actions job-actions" },
             (ACTIONS[job.status] || []).filter((a) => !FINAL.has(a)).map((a) => actionButton(job, a)),
             el("span", { class: "final-actions" },
                (ACTIONS[job.status] || []).filter((a) => FINAL.has(a)).map((a) => actionButton(job, a))))];
}

async function refreshList() {
  const kind = document.getElementById("kind-filter").value;
  const { jobs, total } = await get(`/api/jobs?limit=100${kind ? `&kind=${kind}` : ""}`);
  const box = document.getElementById("jobs");
  const seen = new Set();
  for (const job of jobs) {
    seen.add(job.job_id);
    let card = cards.get(job.job_id);
    if (!card) {
      card = el("article", { class: "job", "data-job": job.job_id });
      cards.set(job.job_id, card);
    }
    // A queued job's place changes while its record does not (a job ahead pauses).
    const version = `${job.updated_at} ${queueText(job) ?? ""}`;
    if (card.dataset.updated !== version) {
      card.dataset.updated = version;
      card.replaceChildren(...cardContent(job).filter(Boolean));
    }
    card.setAttribute("aria-selected", String(job.job_id === selected));
    box.append(card);  // keeps the server's order (newest first)
    if (job.job_id === selected) watcher?.update(job);
  }
  for (const [id, card] of cards) if (!seen.has(id)) { card.remove(); cards.delete(id); }
  if (!jobs.length) box.replaceChildren(el("p", { class: "empty" }, "No jobs yet."));
  else if (total > jobs.length) box.append(el("p", { class: "muted" }, `${total - jobs.length} older jobs not shown`));
}

// The detail sits below the list on a narrow screen: bring it into view when chosen.
function select(jobId, { reveal = false } = {}) {
  selected = jobId;
  history.replaceState(null, "", jobId ? `/monitor?job=${jobId}` : "/monitor");
  watcher?.close();
  watcher = null;
  for (const [id, card] of cards) card.setAttribute("aria-selected", String(id === jobId));
  const detail = document.getElementById("detail");
  if (!jobId) { detail.replaceChildren(el("p", { class: "empty" }, "Choose a job.")); return; }
  get(`/api/jobs/${jobId}`).then((job) => {
    watcher = job.kind === "train" ? new TrainingWatch(job, detail) : new JobWatch(job, detail);
    if (reveal && matchMedia("(max-width: 900px)").matches) detail.scrollIntoView({ block: "start" });
  }).catch((error) => toast(error.message, "error"));
}

// Any job: its state, progress and log tail.
class JobWatch {
  constructor(job, root) {
    this.job = job;
    this.root = root;
    this.head = el("div");
    this.body = el("div");
    this.log = el("pre", { id: "log-tail", "aria-label": "log tail" });
    root.replaceChildren(this.head, this.body, el("h2", {}, "Log"), this.log);
    this.update(job);
    this.timer = setInterval(() => this.poll(), 3000);
    this.poll();
  }
  update(job) {
    const wasSettled = SETTLED.includes(this.job.status);
    this.job = job;
    this.head.replaceChildren(...[el("h2", { id: "detail-title" }, `${job.kind} · ${job.name ?? job.job_id} `, badge(job.status)),
                              progressLine(job),
                              job.progress?.rate && !SETTLED.includes(job.status) ? el("p", { id: "rate" }, `${job.progress.rate.toFixed(2)} ${job.kind === "generate" ? "rows" : "steps"}/s`) : null,
                              job.error ? el("p", { class: "field-error" }, job.error) : null,
                              this.counts].filter(Boolean));
    if (wasSettled && !SETTLED.includes(job.status)) this.reopen?.();
  }
  async poll() {
    const { lines } = await get(`/api/jobs/${this.job.job_id}/logs?tail=40`);
    this.log.textContent = lines.join("\n") || "(empty)";
    if (this.job.kind === "generate") { this.showCounts(); await this.thumbnails(); }
  }
  // What the generation dropped or could not draw, from its result (or none yet).
  showCounts() {
    const counts = this.job.result?.counts;
    if (!counts || this.counts?.dataset.key === JSON.stringify(counts)) return;
    const items = Object.entries(COUNTS).filter(([key]) => counts[key] !== undefined);
    this.counts = el("dl", { class: "stats", id: "generation-counts", "data-key": JSON.stringify(counts) },
      items.flatMap(([key, label]) => [el("dt", {}, label), el("dd", { "data-count": key }, String(counts[key]))]));
    this.head.append(this.counts);
  }
  async thumbnails() {
    try {
      const dataset = await get(`/api/datasets/${encodeURIComponent(this.job.name)}`);
      const [split, rows] = Object.entries(dataset.splits).find(([, n]) => n > 0) || [];
      if (!rows) return;
      const indexes = [...Array(Math.min(rows, 4)).keys()].map((i) => rows - 1 - i);
      const key = `${split}:${rows}`;
      if (this.body.dataset.key === key) return;
      this.body.dataset.key = key;
      this.body.replaceChildren(el("h2", {}, "Latest pages"),
        el("div", { class: "thumbs", id: "latest-pages" }, indexes.map((i) => thumbnail(this.job.name, split, i))));
    } catch { /* no finished shard yet */ }
  }
  close() { clearInterval(this.timer); }
}

// Training: live loss, learning-rate and ROUGE charts, expert load, samples.
class TrainingWatch extends JobWatch {
  constructor(job, root) {
    super(job, root);
    this.charts = { loss: el("div", { class: "chart", id: "loss-chart" }),
                    lr: el("div", { class: "chart", id: "lr-chart" }),
                    rouge: el("div", { class: "chart", id: "rouge-chart" }),
                    experts: el("div", { class: "chart", id: "expert-chart" }) };
    this.summary = el("dl", { class: "stats", id: "metrics-summary" });
    this.samples = el("div", { id: "samples" });
    this.ocrOnly = [el("section", { "data-task": "ocr" }, el("h2", {}, "Evaluation ROUGE"), this.charts.rouge),
                    el("section", { "data-task": "ocr" }, el("h2", {}, "Expert load (latest step)"), this.charts.experts)];
    this.body.replaceChildren(
      el("div", { class: "cols" },
         el("section", {}, el("h2", {}, "Loss"), this.charts.loss),
         el("section", {}, el("h2", {}, "Learning rate"), this.charts.lr), ...this.ocrOnly),
      el("h2", {}, "Metrics"), this.summary, el("h2", {}, "Samples"), this.samples);
    this.reopen = () => this.open();
    this.open();
    this.showTask();
  }
  // A chat run has no ROUGE and no experts: its run's task (the models listing) hides them.
  async showTask() {
    const { models } = await get("/api/models?limit=1000");
    const task = models.find((m) => m.name === this.job.name)?.task;
    for (const section of this.ocrOnly) section.hidden = task === "chat";
  }
  open() {
    this.source?.close();
    this.rows = [];
    this.lastStep = 0;
    this.summary.replaceChildren();  // a paused run's summary is stale once it runs again
    this.source = new EventSource(`/api/jobs/${this.job.job_id}/events`);
    this.source.addEventListener("metrics", (event) => this.add([JSON.parse(event.data)]));
    this.source.addEventListener("job", (event) => {
      const job = JSON.parse(event.data);
      this.update(job);
      if (SETTLED.includes(job.status)) { this.source.close(); this.finish(); }
    });
    this.source.onerror = () => {
      if (this.source.readyState === EventSource.CLOSED) this.fallback();
    };
  }
  fallback() {  // events refused (for example too many streams): poll instead
    clearInterval(this.fallbackTimer);
    this.fallbackTimer = setInterval(async () => {
      const { history } = await get(`/api/metrics/${this.job.job_id}?since=${this.lastStep}`);
      this.add(history.filter((row) => row.step > this.lastStep || row.eval));
      if (SETTLED.includes(this.job.status)) { clearInterval(this.fallbackTimer); this.finish(); }
    }, 2000);
  }
  add(rows) {
    if (!rows.length) return;
    this.rows.push(...rows);
    this.lastStep = Math.max(this.lastStep, ...rows.map((r) => r.step));
    this.draw();
    if (rows.some((r) => r.eval)) this.loadSamples();
  }
  draw() {
    const train = this.rows.filter((r) => r.loss !== undefined);
    const evals = this.rows.filter((r) => r.eval);
    lineChart(this.charts.loss, [{ name: "train loss", points: train.map((r) => [r.step, r.loss]) },
      { name: "eval loss", points: evals.map((r) => [r.step, r.eval.eval_loss]) }], { title: "loss by step" });
    lineChart(this.charts.lr, [{ name: "learning rate", points: train.map((r) => [r.step, r.lr]) }],
              { title: "learning rate by step" });
    lineChart(this.charts.rouge, [{ name: "ROUGE-1", points: evals.map((r) => [r.step, r.eval.rouge1]) },
      { name: "ROUGE-L", points: evals.map((r) => [r.step, r.eval.rougeL]) }], { title: "ROUGE by step" });
    const last = [...train].reverse().find((r) => r.moe);
    heatmap(this.charts.experts, last ? Object.entries(last.moe).map(([layer, m]) => ({
      label: layer.replace(/^.*layers\.(\d+).*$/, "layer $1"), shares: m.expert_share })) : []);
  }
  async finish() {
    const { summary } = await get(`/api/metrics/${this.job.job_id}`);
    const items = [["status", summary.status], ["steps", summary.steps],
                   ["best eval loss", summary.best_eval_loss], ["ROUGE-1", summary.rouge?.rouge1],
                   ["ROUGE-2", summary.rouge?.rouge2], ["ROUGE-L", summary.rouge?.rougeL],
                   ["time", summary.total_seconds && duration(summary.total_seconds)]];
    this.summary.replaceChildren(...items.filter(([, v]) => v !== undefined && v !== null)
      .flatMap(([k, v]) => [el("dt", {}, k), el("dd", { "data-metric": k }, typeof v === "number" ? v.toFixed(4).replace(/\.?0+$/, "") : v)]));
    await this.loadSamples();
  }
  async loadSamples() {
    const found = await get(`/api/jobs/${this.job.job_id}/samples`);
    if (!found.step) { this.samples.replaceChildren(el("p", { class: "empty" }, "No evaluation yet.")); return; }
    const table = (title, rows) => el("section", {}, el("h3", {}, title), el("table", { class: "samples" },
      el("tr", {}, el("th", {}, "ROUGE-L"), el("th", {}, "Prediction"), el("th", {}, "Reference")),
      rows.map((s) => el("tr", {}, el("td", {}, (s.rougeL ?? 0).toFixed(3)), el("td", {}, s.prediction), el("td", {}, s.reference)))));
    this.samples.replaceChildren(el("p", { class: "muted" }, `evaluation at step ${found.step}`),
      table("Best", found.best), table("Worst", found.worst));
  }
  close() { super.close(); this.source?.close(); clearInterval(this.fallbackTimer); }
}

// Beside the jobs: what this service uses of the machine, and each GPU (when CUDA exists).
const gib = (bytes) => (bytes === null || bytes === undefined ? "?" : `${(bytes / 2 ** 30).toFixed(1)} GiB`);
async function showResources() {
  const { process: p, gpus } = await get("/api/resources");
  const used = p.machine_memory_total_bytes - p.machine_memory_available_bytes;
  const items = [
    ["service CPU", `${Math.round(p.cpu_percent)}% of one core · machine ${Math.round(p.machine_cpu_percent)}% of ${p.cpu_count} cores`],
    ["service memory", `${gib(p.rss_bytes)} · machine ${gib(used)} of ${gib(p.machine_memory_total_bytes)} used`],
    ...(gpus.length ? gpus.map((g) => [`GPU ${g.index}`, `${g.name}: ${gib(g.memory_used_bytes)} of ${gib(g.memory_total_bytes)}` +
      (g.utilization_percent === null ? "" : `, ${Math.round(g.utilization_percent)}% busy`)])
      : [["GPU", "no NVIDIA GPU (CUDA) on this machine"]]),
  ];
  document.getElementById("resources").replaceChildren(...items.flatMap(([k, v]) =>
    [el("dt", {}, k), el("dd", { "data-resource": k }, v)]));
}
showResources().catch(() => {});
setInterval(() => showResources().catch(() => {}), 3000);

document.getElementById("kind-filter").addEventListener("change", () => {
  for (const card of cards.values()) card.remove();
  cards.clear();
  refreshList();
});
// Opened without a job named, the monitor shows the one running (the newest such).
function running() {
  const live = [...cards.values()].find((card) => ["running", "pausing"].includes(
    card.querySelector(".badge")?.dataset.status));
  return live?.dataset.job ?? null;
}
refreshList().then(() => { selected ??= running(); if (selected) select(selected); })
  .catch((error) => toast(error.message, "error"));
setInterval(() => refreshList().catch(() => {}), 2000);
