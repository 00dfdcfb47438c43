// Playground: chat with a trained chat model (POST /api/chat/generate, the conversation kept
// here and sent whole each turn), and an OCR run's summary beside its base model's or another
// run's on the same page (POST /api/summarize with compare_with).
import { ApiError, get, post } from "./api.js";
import { asDataUrl, clearErrors, el, showError, toast } from "./ui.js";

const chatForm = document.getElementById("chat-form");
const sideForm = document.getElementById("side-form");
let conversation = [];  // {role, content}, the system message apart

function showConversation() {
  document.getElementById("conversation").replaceChildren(...conversation.map((m, i) =>
    el("li", { class: `message ${m.role}`, "data-role": m.role, "data-index": String(i),
               style: `margin:.4rem 0;padding:.5rem .75rem;border-radius:6px;background:${m.role === "user" ? "#eef2ff" : "#f1f5f9"}` },
      el("strong", {}, m.role === "user" ? "you" : m.model ?? m.role), ": ",
      el("span", { class: "content" }, m.content || "(an empty reply: the model generated only special tokens or spaces)"),
      m.note ? el("span", { class: "hint" }, ` · ${m.note}`) : null)));
}

async function send(event) {
  event.preventDefault();
  clearErrors(chatForm);
  const text = chatForm.messages.value;
  const system = chatForm.system.value.trim();
  const turns = [...conversation, { role: "user", content: text }];
  const body = { model: chatForm.model.value,
                 messages: [...(system ? [{ role: "system", content: system }] : []),
                            ...turns.map(({ role, content }) => ({ role, content }))] };
  if (chatForm.max_new_tokens.value) body.max_new_tokens = Number(chatForm.max_new_tokens.value);
  const button = document.getElementById("send-button");
  button.disabled = true;
  button.textContent = "Generating…";
  try {
    const reply = await post("/api/chat/generate", body);
    conversation = [...turns, { role: "assistant", content: reply.reply, model: reply.model,
      note: `${reply.prompt_tokens} prompt tokens${reply.hit_max_new_tokens ? `, stopped at ${reply.max_new_tokens} new tokens` : ""}` }];
    chatForm.messages.value = "";
    showConversation();
  } catch (error) {
    if (error instanceof ApiError) showError(chatForm, error); else toast(String(error), "error");
  } finally {
    button.disabled = false;
    button.textContent = "Send";
  }
}

function column(title, summary, random) {
  return el("section", { class: "summary-column", "data-model": title }, el("h3", {}, title),
    el("p", { class: "summary" }, summary || "(empty)"),
    random ? el("p", { class: "muted" }, "started from random weights") : null);
}

async function summarizeBoth(event) {
  event.preventDefault();
  clearErrors(sideForm);
  const file = sideForm.image.files[0];
  const body = { model: sideForm.model.value, compare_with: sideForm.compare_with.value };
  if (file) body.image = await asDataUrl(file); else body.text = sideForm.text.value;
  const button = document.getElementById("side-button");
  button.disabled = true;
  button.textContent = "Summarizing…";
  try {
    const result = await post("/api/summarize", body);
    document.getElementById("side-page").replaceChildren(el("h3", {}, "The page both read"),
      ...result.pages_png.map((src, i) => el("img", { src, alt: `page ${i + 1}` })));
    document.getElementById("side-result").replaceChildren(
      column(result.model, result.summary, result.randomly_initialized_base),
      column(result.comparison.model, result.comparison.summary, result.comparison.randomly_initialized_base));
  } catch (error) {
    if (error instanceof ApiError) showError(sideForm, error); else toast(String(error), "error");
  } finally {
    button.disabled = false;
    button.textContent = "Summarize both";
  }
}

function options(select, names, empty) {
  select.replaceChildren(...(names.length ? names.map((name) => el("option", { value: name }, name))
    : [el("option", { value: "" }, empty)]));
}

function showCompareWith() {
  const others = [...sideForm.model.options].map((o) => o.value).filter((n) => n && n !== sideForm.model.value);
  sideForm.compare_with.replaceChildren(el("option", { value: "base" }, "base model"),
    ...others.map((name) => el("option", { value: name }, name)));
}

async function start() {
  const { models } = await get("/api/models?limit=1000");
  const ready = models.filter((m) => m.final);
  options(chatForm.model, ready.filter((m) => m.task === "chat").map((m) => m.name), "no trained chat model yet");
  options(sideForm.model, ready.filter((m) => m.task !== "chat").map((m) => m.name), "no trained OCR model yet");
  showCompareWith();
  sideForm.model.addEventListener("change", showCompareWith);
  chatForm.addEventListener("submit", send);
  document.getElementById("clear-chat").addEventListener("click", () => { conversation = []; showConversation(); });
  sideForm.addEventListener("submit", summarizeBoth);
}

start().catch((error) => toast(String(error), "error"));
