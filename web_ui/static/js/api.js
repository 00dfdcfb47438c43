// Calls to this service's REST API (same origin only). Errors carry the API's field.
export class ApiError extends Error {
  constructor(status, body) {
    super(body?.error || `HTTP ${status}`);
    this.status = status;
    this.field = body?.field ?? null;
    this.allowed = body?.allowed ?? null;
  }
}

// The custom header is the CSRF guard the server asks of cookie sessions.
const HEADERS = { "X-DeepSynth-CSRF": "1" };

export async function api(method, path, body) {
  const options = { method, headers: { ...HEADERS }, credentials: "same-origin" };
  if (body instanceof FormData) {
    options.body = body;
  } else if (body !== undefined) {
    options.headers["Content-Type"] = "application/json";
    options.body = JSON.stringify(body);
  }
  const response = await fetch(path, options);
  if (response.status === 401 && !path.startsWith("/api/login")) {
    window.location.href = "/login?next=" + encodeURIComponent(location.pathname + location.search);
    throw new ApiError(401, { error: "login required" });
  }
  const text = await response.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = { error: text }; }
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
}

export const get = (path) => api("GET", path);
export const post = (path, body) => api("POST", path, body ?? {});
export const del = (path) => api("DELETE", path);
