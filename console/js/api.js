// The JSON API, called as any client calls it (gen/openapi.json): same
// origin, the key only ever in the Authorization header, errors read from
// their google.rpc.Status body (docs/errors.md).

import { seconds } from "./dom.js";

const TYPE = "type.googleapis.com/google.rpc.";

/** An error answer of the API (status 0: no answer at all). */
export class ApiError extends Error {
  constructor(status, body = {}, retryAfter = null) {
    super(body.message || (status ? `HTTP ${status}` : "no answer"));
    const details = Array.isArray(body.details) ? body.details : [];
    const find = (type) => details.find((d) => d && d["@type"] === TYPE + type) || {};
    this.status = status;
    this.code = body.code;
    this.reason = find("ErrorInfo").reason || "";
    this.violations = find("BadRequest").fieldViolations || [];
    // RetryInfo's delay ("1s", "0.500s"), else the Retry-After header's seconds.
    const delay = find("RetryInfo").retryDelay;
    const parsed = delay ? parseFloat(delay) : retryAfter ? Number(retryAfter) : NaN;
    this.retryAfterS = Number.isFinite(parsed) ? parsed : null;
  }

  /** The error of a response that is not ok. */
  static async of(response) {
    let body = {};
    try {
      body = await response.json();
    } catch {
      // Not JSON (a proxy's page): the status says enough.
    }
    return new ApiError(response.status, body, response.headers.get("retry-after"));
  }

  /** Worth trying again later, as the same request. */
  get transient() {
    return this.status === 0 || this.status === 429 || this.status === 503 || this.status === 504;
  }
}

const RETRY_WORDS = (error) =>
  error.retryAfterS !== null ? `Try again in ${seconds(error.retryAfterS)}.` : "Try again in a moment.";

/** What an error means, in words, for the person at the console. */
export function explain(error) {
  if (!(error instanceof ApiError)) return `Something went wrong in the console: ${error.message || error}`;
  switch (error.reason) {
    case "API_KEY_INVALID":
      return "This API key was not accepted: it is unknown, revoked or mistyped. Check it, or ask an operator for a new one.";
    case "API_KEY_REVOKED":
      return "This API key was revoked. Sign in with a live key.";
    case "FIELD_VIOLATION":
      return "Some fields need a change: see the notes beside them.";
    case "PENDING_LIMIT_REACHED":
      return "Quota reached: this key has as many generations in progress as it may. Try again when one of them has finished.";
    case "RATE_LIMITED":
      return `Too many requests with this key just now. ${RETRY_WORDS(error)}`;
    case "SERVER_BUSY":
      return `The service is busy. ${RETRY_WORDS(error)}`;
    case "DATABASE_UNAVAILABLE":
    case "UPSTREAM_UNAVAILABLE":
    case "SHUTTING_DOWN":
      return `The service is unavailable for now (it may be restarting). ${RETRY_WORDS(error)}`;
    case "UPSTREAM_TIMEOUT":
    case "REQUEST_TIMEOUT":
      return "The service took too long to answer. Try again.";
    case "GENERATION_NOT_FOUND":
      return "No generation with this id belongs to this key.";
    case "GENERATION_ALREADY_FINAL":
      return "This generation has already finished: there is nothing to cancel.";
    case "WEBHOOK_SECRET_REQUIRED":
      return "A webhook needs a webhook secret first (POST /v1/webhookSecret:rotate makes one): make it, or leave the webhook URL empty.";
    case "REQUEST_ID_REUSED":
      return "This request was already sent with other settings. Send it again.";
    case "REQUEST_TOO_LARGE":
      return "The request is too large (64 KiB at most).";
    default:
      if (error.status === 0) return "The service cannot be reached. Check the connection, then try again.";
      return error.message ? `The service answered: ${error.message}` : `The service answered HTTP ${error.status}.`;
  }
}

/** A random (version 4) UUID; crypto.randomUUID needs a secure context, this does not. */
export function uuid4() {
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const hex = Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

export class Api {
  constructor(key, { fetch = globalThis.fetch.bind(globalThis) } = {}) {
    this.key = key;
    this.fetch = fetch;
  }

  /** The headers of every call: the key, and nothing that identifies the page. */
  headers(extra = {}) {
    return { authorization: `Bearer ${this.key}`, ...extra };
  }

  /** A same-origin URL of the API: `path` is one of the fixed paths below. */
  url(path, query = {}) {
    const url = new URL(path, location.origin);
    for (const [name, value] of Object.entries(query)) {
      if (value !== "" && value !== undefined && value !== null) url.searchParams.set(name, value);
    }
    return url;
  }

  async call(method, path, { query, body, signal } = {}) {
    const headers = this.headers({ accept: "application/json" });
    if (body !== undefined) headers["content-type"] = "application/json";
    let response;
    try {
      response = await this.fetch(this.url(path, query), {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        signal,
        cache: "no-store",
        credentials: "omit",
        referrerPolicy: "no-referrer",
      });
    } catch (error) {
      if (error.name === "AbortError") throw error;
      throw new ApiError(0);
    }
    if (!response.ok) throw await ApiError.of(response);
    return response.json();
  }

  list({ status = "", pageSize = 10, pageToken = "" } = {}, signal) {
    return this.call("GET", "/v1/generations", { query: { status, pageSize, pageToken }, signal });
  }

  get(id, signal) {
    return this.call("GET", `/v1/generations/${encodeURIComponent(id)}`, { signal }).then((r) => r.generation);
  }

  create(fields) {
    return this.call("POST", "/v1/generations", { body: fields }).then((r) => r.generation);
  }

  cancel(id) {
    return this.call("POST", `/v1/generations/${encodeURIComponent(id)}:cancel`, { body: {} }).then(
      (r) => r.generation,
    );
  }

  watchUrl(id) {
    return this.url(`/v1/generations/${encodeURIComponent(id)}:watch`);
  }
}
