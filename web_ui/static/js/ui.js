// Small DOM helpers shared by the pages: elements, toasts, field errors, formatting.
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

// A toast: bottom-right, lifted above a sticky submit bar so it never hides that bar's
// button or status, and dismissable (its close button) before it times out.
export function toast(message, kind = "info") {
  const box = document.getElementById("toasts");
  const bar = document.querySelector(".submit-bar");
  if (bar && !box.dataset.lifted) {  // the bar grows (its estimate line arrives): follow it
    box.dataset.lifted = "1";
    new ResizeObserver(() => { box.style.bottom = `${bar.offsetHeight + 16}px`; }).observe(bar);
  }
  if (bar) box.style.bottom = `${bar.offsetHeight + 16}px`;
  const item = el("div", { class: `toast ${kind}`, role: kind === "error" ? "alert" : "status" },
                  el("span", {}, message),
                  el("button", { type: "button", class: "close", "aria-label": "Dismiss", title: "Dismiss",
                                 onclick: () => item.remove() }, "×"));
  box.append(item);
  setTimeout(() => item.remove(), kind === "error" ? 9000 : 5000);
}

// An API message in the form's words: a field name the form shows (skip_invalid_lines) as
// its label ("skip invalid lines"), so the message points at something on the page.
export function inFormWords(form, message) {
  return String(message).replace(/\b[a-z][a-z0-9]*(?:_[a-z0-9]+)+\b/g, (name) => {
    const input = form?.querySelector(`[name="${name}"]`);
    const label = input && form.querySelector(`label[for="${input.id}"]`);
    const text = label && (label.querySelector(".tip, .name") ?? label.firstChild)?.textContent.trim();
    return text ? `“${text}”` : name;
  });
}

// Show an API error next to the input it names (or as a toast when no input matches).
export function showError(form, error) {
  const field = error.field ? error.field.split(".").pop() : null;
  const input = field && form?.querySelector(`[name="${field}"]`);
  if (input) {
    setFieldError(input, inFormWords(form, error.message) + (error.allowed ? ` (allowed: ${inFormWords(form, error.allowed)})` : ""));
    input.focus();
  } else {
    toast(error.message, "error");
  }
}

export function setFieldError(input, message) {
  const slot = document.getElementById(`${input.id}-error`);
  input.setAttribute("aria-invalid", message ? "true" : "false");
  if (slot) slot.textContent = message || "";
}

export function clearErrors(form) {
  for (const input of form.querySelectorAll("[aria-invalid]")) setFieldError(input, "");
}

export function duration(seconds) {
  if (seconds === null || seconds === undefined || !isFinite(seconds)) return "—";
  const s = Math.round(seconds);
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}

export function percent(progress) {
  if (!progress || !progress.total) return null;
  return Math.min(100, Math.round((100 * progress.current) / progress.total));
}

export function badge(status) {
  return el("span", { class: `badge ${status}`, "data-status": status }, status);
}

// A chosen file as a data: URL (the API takes page images as base64 PNGs).
export const asDataUrl = (file) => new Promise((resolve, reject) => {
  const reader = new FileReader();
  reader.onload = () => resolve(reader.result);
  reader.onerror = () => reject(reader.error);
  reader.readAsDataURL(file);
});
