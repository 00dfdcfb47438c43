// The header's "Log out" button (shown when the server requires a token): ends this
// browser's session on the server, which also drops the cookie, then opens the login page.
import { api } from "./api.js";
import { toast } from "./ui.js";

const button = document.getElementById("logout");
button.addEventListener("click", async () => {
  button.disabled = true;
  try {
    await api("POST", "/api/logout");
    location.href = "/login";
  } catch (error) {
    // The session may still be valid: say so rather than show a login page over it.
    toast(`Could not log out: ${error.message}`, "error");
    button.disabled = false;
  }
});
