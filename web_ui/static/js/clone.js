// Clone: /train?clone=RUN fills the Train form with a run's configuration (its options from
// GET /api/models/RUN/config: what its `deepsynth train` command sets) and names the new run.
import { get } from "./api.js";
import { el, toast } from "./ui.js";
import { setValue } from "./schema.js";

const PICKED = ["trainer_type", "preset", "dataset", "model"];  // chosen by cards and pickers

function choose(select, value) {
  if (value === undefined || value === null) return;
  if (![...select.options].some((option) => option.value === value)) {
    select.append(el("option", { value }, value));  // a base model the presets do not list
  }
  select.value = value;
  select.dispatchEvent(new Event("change"));
}

export async function applyClone(form) {
  const run = new URLSearchParams(location.search).get("clone");
  if (!run) return;
  const { clone } = await get(`/api/models/${encodeURIComponent(run)}/config`);
  document.querySelector(`[data-trainer="${clone.trainer_type ?? "production"}"]`)?.click();
  if (clone.preset) document.querySelector(`[data-preset="${clone.preset}"]`)?.click();
  const generic = clone.trainer_type === "generic";
  if (generic) setValue(form, "chat_source", clone.dataset);
  else if (String(clone.dataset ?? "").startsWith("hf:")) setValue(form, "hub_dataset", clone.dataset);
  else if (clone.dataset) choose(form.dataset, clone.dataset);
  choose(form.model, clone.model);
  for (const [name, value] of Object.entries(clone)) {
    if (!PICKED.includes(name)) setValue(form, name, value);
  }
  setValue(form, "name", `${run}-clone`);
  form.dispatchEvent(new Event("change"));
  const notice = el("p", { class: "notice", id: "clone-notice" }, `Cloned from ${run}: its configuration fills the form; change what you want to try, then start training.`);
  form.prepend(notice);
  toast(`Cloned the configuration of ${run}`);
}
