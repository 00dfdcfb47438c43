// Job summaries (status badge, progress, ETA) and following a job until it settles.
import { get } from "./api.js";
import { badge, duration, el, percent } from "./ui.js";

export const SETTLED = ["completed", "failed", "cancelled", "paused", "interrupted", "corrupt"];

const ordinal = (n) => `${n}${[, "st", "nd", "rd"][(n % 100 >> 3 ^ 1) && n % 10] || "th"}`;

// Where a queued job stands: its place in line and the jobs it waits for.
export function queueText(job) {
  if (job.status !== "queued" || !job.queue) return null;
  const waiting = job.queue.waiting_for.length ? `, waiting for ${job.queue.waiting_for.join(", ")}` : "";
  return `${ordinal(job.queue.position)} in the queue${waiting}`;
}

// A toast for a submitted job: "started" only when it did; a queued one says its place.
export function submittedText(what, answer) {
  const place = queueText(answer.job);
  return answer.status === "queued"
    ? `${what} job ${answer.job_id} is queued${place ? ` (${place})` : ""}`
    : `${what} job ${answer.job_id} started`;
}

// A settled job's last report is history: a completed job is done (its last report may be
// of an earlier stage), and no settled job has a rate or an ETA any more.
function shownProgress(job) {
  const p = job.progress || {};
  if (job.status === "completed") return { done: true, pct: 100, parts: ["done"] };
  const live = !SETTLED.includes(job.status);
  const pct = percent(p);
  const rate = live && p.rate ? `${p.rate.toFixed(p.rate < 10 ? 2 : 0)}/s` : null;
  return { pct, parts: [pct === null ? null : `${pct}%`,
                        p.total ? `${p.current ?? 0} of ${p.total}` : null,
                        rate, live && p.eta_s ? `ETA ${duration(p.eta_s)}` : null, p.stage] };
}

export function progressLine(job) {
  const { pct, parts: shown } = shownProgress(job);
  const parts = [...shown, queueText(job)].filter(Boolean);
  return el("div", { class: "progress-line" },
            el("div", { class: "progress", role: "progressbar", "aria-valuemin": 0,
                        "aria-valuemax": 100, "aria-valuenow": pct ?? 0,
                        "aria-label": `progress of ${job.job_id}` },
               el("span", { style: `width:${pct ?? 0}%` })),
            el("span", { class: "muted" }, parts.join(" · ") || "waiting"));
}

export function summary(job) {
  return el("div", { class: "job-summary", "data-job": job.job_id },
            el("header", {}, el("span", { class: "title" }, `${job.kind} · ${job.name ?? job.job_id}`),
               badge(job.status)),
            progressLine(job),
            job.error ? el("p", { class: "field-error" }, job.error) : null);
}

// Poll a job once a second, calling onUpdate with each state, until it settles.
export async function follow(jobId, onUpdate) {
  for (;;) {
    const job = await get(`/api/jobs/${jobId}`);
    onUpdate(job);
    if (SETTLED.includes(job.status)) return job;
    await new Promise((resolve) => setTimeout(resolve, 1000));
  }
}

// The newest job of `kind` still queued or running that `mine` picks: what a page was
// following before it was reloaded.
export async function unsettledJob(kind, mine) {
  const { jobs } = await get(`/api/jobs?kind=${kind}&limit=50`);
  return jobs.find((job) => !SETTLED.includes(job.status) && mine(job)) ?? null;
}
