// The admin API of this origin, as the console calls it. The bearer token lives in this tab's
// sessionStorage only: never in a URL, a cookie or local storage, and never logged.

const TOKEN_KEY = "tollgate.token";

export function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function setToken(value) {
  sessionStorage.setItem(TOKEN_KEY, value);
}

export function clearToken() {
  sessionStorage.removeItem(TOKEN_KEY);
}

/** An answer of the API that is not 2xx: its status, machine reason and message. */
export class ApiError extends Error {
  constructor(status, reason, message) {
    super(message);
    this.status = status;
    this.reason = reason;
  }
}

/** Called with an ApiError whenever the API answers 401 (the token is no longer valid). */
let onUnauthorized = () => {};
export function whenUnauthorized(handler) {
  onUnauthorized = handler;
}

/** In-flight requests, for the progress bar. */
let inFlight = 0;
let onBusy = () => {};
export function whenBusy(handler) {
  onBusy = handler;
}

/**
 * One API call. `query` is an object of search parameters (never the token); `body` is sent as
 * JSON. Resolves to the parsed JSON (null for 204); rejects with an ApiError.
 */
export async function call(method, path, { query, body, quiet401 } = {}) {
  const url = new URL(path, window.location.origin);
  for (const [key, value] of Object.entries(query || {})) {
    if (value !== undefined && value !== null && value !== "") {
      url.searchParams.set(key, String(value));
    }
  }
  const headers = { Accept: "application/json" };
  const current = token();
  if (current) {
    headers.Authorization = `Bearer ${current}`;
  }
  const init = { method, headers, credentials: "omit", cache: "no-store", redirect: "error" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  inFlight += 1;
  onBusy(inFlight > 0);
  let response;
  try {
    response = await fetch(url, init);
  } catch (err) {
    throw new ApiError(0, "network_error", `the server could not be reached (${err.message})`);
  } finally {
    inFlight -= 1;
    onBusy(inFlight > 0);
  }
  if (response.status === 204) {
    return null;
  }
  let json = null;
  try {
    json = await response.json();
  } catch {
    json = null;
  }
  if (!response.ok) {
    const error = new ApiError(
      response.status,
      (json && json.reason) || `http_${response.status}`,
      (json && json.error) || response.statusText || "request failed",
    );
    if (response.status === 401 && !quiet401) {
      onUnauthorized(error);
    }
    throw error;
  }
  return json;
}

/** The roles an account may be given, in ONE place: the server's list, else the built-ins. */
const BUILTIN_ROLES = [
  { name: "viewer", scopes: ["metrics:read", "logs:read", "traces:read"], builtin: true },
  {
    name: "editor",
    scopes: ["metrics:read", "metrics:write", "logs:read", "logs:write", "traces:read", "traces:write"],
    builtin: true,
  },
  {
    name: "admin",
    scopes: [
      "metrics:read", "metrics:write", "logs:read", "logs:write", "traces:read", "traces:write",
      "accounts:read", "accounts:write",
    ],
    builtin: true,
  },
  { name: "writer", scopes: ["metrics:write", "logs:write", "traces:write"], builtin: true },
];

let rolesPromise = null;

export function roles() {
  if (!rolesPromise) {
    rolesPromise = call("GET", "/api/v1/roles")
      .then((answer) => {
        const items = Array.isArray(answer) ? answer : (answer && (answer.roles || answer.items)) || [];
        const named = items.filter((role) => role && typeof role.name === "string");
        return named.length ? named : BUILTIN_ROLES;
      })
      .catch((err) => {
        // A server without custom roles has no such endpoint.
        if (err.status === 404) {
          return BUILTIN_ROLES;
        }
        rolesPromise = null;
        throw err;
      });
  }
  return rolesPromise;
}

export function forgetRoles() {
  rolesPromise = null;
}
