// The one way the app talks to the server: the public REST API under /api/v1. The token lives
// in sessionStorage (gone with the tab, never a cookie); a 401 on a signed-in request forgets
// it and tells the app, which sends the person to sign in and back.
const TOKEN = "ttms.token";
const USER = "ttms.user";

export const session = {
  get token() { return sessionStorage.getItem(TOKEN); },
  get user() {
    const raw = sessionStorage.getItem(USER);
    return raw ? JSON.parse(raw) : null;
  },
  save(token, user) {
    sessionStorage.setItem(TOKEN, token);
    sessionStorage.setItem(USER, JSON.stringify(user));
    window.dispatchEvent(new Event("ttms:session"));
  },
  forget() {
    sessionStorage.removeItem(TOKEN);
    sessionStorage.removeItem(USER);
    window.dispatchEvent(new Event("ttms:session"));
  },
  has(role) {
    const order = ["customer", "clerk", "manager", "admin"];
    const user = this.user;
    return !!user && order.indexOf(user.role) >= order.indexOf(role);
  },
};

export class ApiError extends Error {
  constructor(status, body, retryAfter) {
    super((body && body.detail) || `HTTP ${status}`);
    this.status = status;          // 0: the server could not be reached
    this.body = body || {};
    this.code = this.body.code || (status === 0 ? "unreachable" : `http_${status}`);
    this.retryAfter = retryAfter ? Number(retryAfter) : null;
  }
  /** Failures worth retrying as they are: busy, unavailable, timed out, unreachable. */
  get transient() {
    return [0, 429, 502, 503, 504].includes(this.status);
  }
}

export function newKey() {
  return crypto.randomUUID ? crypto.randomUUID()
    : Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16)).join("");
}

export async function api(method, path, body, { key, signal, anonymous, token: given } = {}) {
  const headers = { Accept: "application/json" };
  // Signing in sends no token: an old, revoked one would be refused (401). `token` is one not
  // yet saved (signing in reads who the person is before the app treats them as signed in).
  const token = given || (anonymous || path.startsWith("/auth/") ? null : session.token);
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (key) headers["Idempotency-Key"] = key;
  let response;
  try {
    response = await fetch("/api/v1" + path, {
      method, headers, signal, body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (error) {
    if (error.name === "AbortError") throw error;
    throw new ApiError(0, null, null);
  }
  if (response.status === 204) return null;
  let data = null;
  try { data = await response.json(); } catch { data = null; }
  if (!response.ok) {
    const error = new ApiError(response.status, data, response.headers.get("Retry-After"));
    if (response.status === 401 && token && !given) {
      session.forget();
      window.dispatchEvent(new Event("ttms:unauthorized"));
    }
    throw error;
  }
  return data;
}

export const get = (path, options) => api("GET", path, undefined, options);
export const post = (path, body, options) => api("POST", path, body, options);
export const patch = (path, body, options) => api("PATCH", path, body, options);
export const del = (path, options) => api("DELETE", path, undefined, options);

export function query(params) {
  const entries = Object.entries(params).filter(([, v]) => v !== undefined && v !== null && v !== "");
  return entries.length ? "?" + new URLSearchParams(entries).toString() : "";
}

/** Every item of a paged list (page_size 100), up to `limit` items. */
export async function all(path, params = {}, limit = 1000) {
  const items = [];
  for (let page = 1; items.length < limit; page++) {
    const answer = await get(path + query({ ...params, page, page_size: 100 }));
    items.push(...answer.items);
    if (items.length >= answer.total || answer.items.length === 0) break;
  }
  return items;
}
