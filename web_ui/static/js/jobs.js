// Job summaries (status badge, progress, ETA) and following a job until it settles.
import { get } from "./api.js";
import { badge, duration, el, percent } from "./ui.js";

export const SETTLED = ["completed", "failed", "cancelled", "paused", "interrupted", "corrupt"];

export function progressLine(job) {
  const p = job.progress || {};
  const pct = percent(p);
  const rate = p.rate ? `${p.rate.toFixed(p.rate < 10 ? 2 : 0)}/s` : null;
  const parts = [pct === null ? null : `${pct}%`,
                 p.total ? `${p.current ?? 0} of ${p.total}` : null,
                 rate, p.eta_s ? `ETA ${duration(p.eta_s)}` : null, p.stage].filter(Boolean);
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
