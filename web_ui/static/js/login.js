import { api, ApiError } from "./api.js";
import { setFieldError } from "./ui.js";

const form = document.getElementById("login-form");
const input = document.getElementById("token");
form.addEventListener("submit", async (event) => {
  event.preventDefault();
  try {
    await api("POST", "/api/login", { token: input.value });
    const next = new URLSearchParams(location.search).get("next") || "/";
    // Only a path on this site: never an open redirect.
    location.href = next.startsWith("/") && !next.startsWith("//") ? next : "/";
  } catch (error) {
    setFieldError(input, error instanceof ApiError ? error.message : String(error));
  }
});
