import { api, ApiError } from "./api.js";
import { setFieldError } from "./ui.js";

const form = document.getElementById("login-form");
const input = document.getElementById("token");
form.addEventListener("submit", async (event) => {
  event.preventDefault();
  try {
    await api("POST", "/api/login", { token: input.value });
    // The server checked it: a path on this site, never an open redirect.
    location.href = form.dataset.next || "/";
  } catch (error) {
    setFieldError(input, error instanceof ApiError ? error.message : String(error));
  }
});
