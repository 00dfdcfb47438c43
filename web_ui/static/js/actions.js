// What the Models and Datasets pages share for acting on a model or dataset: a modal form
// (a <dialog>: keyboard focus stays in it, Escape closes it), the submitted job followed
// with a link to the monitor, and deletion confirmed by name first.
import { ApiError, del } from "./api.js";
import { follow, submittedText, summary } from "./jobs.js";
import { clearErrors, el, showError, toast } from "./ui.js";

// A labelled input with its error slot (showError finds both by the input's name and id).
export function field(id, label, input, hint) {
  input.id = id;
  input.setAttribute("aria-describedby", `${id}-error`);
  return el("div", { class: "field" }, el("label", { for: id }, label,
            hint ? el("span", { class: "hint" }, ` ${hint}`) : null),
            input, el("p", { class: "field-error", id: `${id}-error`, role: "alert" }));
}

export function checkbox(id, name, label, checked) {
  return el("div", { class: "field check" },
            el("input", { type: "checkbox", id, name, checked }), el("label", { for: id }, label));
}

// The Hub fields of a push: the repository, public or private. No token field: the job
// uses the server's own (HF_TOKEN in its environment), so no token passes through a page.
export function pushFields(prefix, suggested) {
  return [field(`${prefix}-repo_id`, "Hub repository",
                el("input", { name: "repo_id", placeholder: "ORG/NAME", value: suggested ?? "",
                              autocomplete: "off", required: true }), "(ORG/NAME)"),
          checkbox(`${prefix}-public`, "public", "Create the repository public (default private)"),
          el("p", { class: "hint" }, "The upload uses the server's Hub token (HF_TOKEN in the ",
             "service's environment); this page never asks for one.")];
}

// A modal form: `fields` (elements), a submit button, Cancel. `submit(form)` sends the
// request and returns the API's answer; an API error is shown next to the field it names
// and keeps the dialog open.
export function openDialog({ title, fields, submitLabel, submit, onDone }) {
  const form = el("form", { method: "dialog", novalidate: true },
                  el("h2", { id: "action-title" }, title), fields,
                  el("div", { class: "actions" },
                     el("button", { type: "submit", id: "action-submit" }, submitLabel),
                     el("button", { type: "button", value: "cancel", onclick: () => dialog.close() },
                        "Cancel")));
  const dialog = el("dialog", { class: "action-dialog", "aria-labelledby": "action-title" }, form);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors(form);
    const button = form.querySelector("#action-submit");
    button.disabled = true;
    try {
      const answer = await submit(form);
      dialog.close();
      onDone(answer);
    } catch (error) {
      if (error instanceof ApiError) showError(form, error); else toast(String(error), "error");
    } finally {
      button.disabled = false;
    }
  });
  dialog.addEventListener("close", () => dialog.remove());
  document.body.append(dialog);
  dialog.showModal();
  return dialog;
}

// A submitted job in `box`: its summary, followed until it settles, and a link to the
// monitor, where its log and progress are. `settled(job)` may add what the job made.
export function showJob(box, what, answer, settled) {
  toast(submittedText(what, answer));
  const link = el("a", { href: `/monitor?job=${encodeURIComponent(answer.job_id)}`,
                         class: "monitor-link" }, `Follow ${answer.job_id} in the monitor`);
  const line = el("div", {}, summary(answer.job));
  const extra = el("p", { class: "muted" });
  box.replaceChildren(el("div", { class: "action-job", "data-job": answer.job_id }, line, link, extra));
  follow(answer.job_id, (job) => line.replaceChildren(summary(job)))
    .then((job) => { if (settled) extra.replaceChildren(settled(job) ?? ""); })
    .catch((error) => toast(error.message, "error"));
}

// Delete `path` after a confirmation naming `name`; refused (409: a job uses it) it says why.
export async function confirmDelete(what, name, path, warning) {
  if (!confirm(`Delete the ${what} “${name}”? ${warning} This cannot be undone.`)) return false;
  try {
    await del(path);
    toast(`Deleted the ${what} ${name}`);
    return true;
  } catch (error) {
    toast(error instanceof ApiError && error.status === 409
      ? `Not deleted: ${error.message}. Wait for that job to end, or cancel it in the monitor.`
      : error.message, "error");
    return false;
  }
}
