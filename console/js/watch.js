// Follows one generation over GET /v1/generations/{id}:watch (server-sent
// events, read with fetch so the key can go in the Authorization header)
// until it is final, through dropped connections and restarts: each
// reconnect sends the last event id it saw (Last-Event-ID) and the stream
// starts with the current state, so nothing is missed; a 204 means the
// stream has nothing more to send (the final state was sent before).

import { ApiError } from "./api.js";
import { EventStreamParser } from "./sse.js";

export const FINAL = new Set(["STATUS_COMPLETE", "STATUS_FAILED", "STATUS_CANCELLED"]);

// Until the stream says otherwise (retry:), the wait before reconnecting;
// each failure in a row doubles it, up to the cap.
const DEFAULT_RETRY_MS = 1000;
const MAX_RETRY_MS = 5000;

/** The wait before attempt number `failures` (1, 2, ...) after a drop: jittered. */
export function reconnectDelay(retryMs, failures, hintS = null) {
  const backoff = Math.min(MAX_RETRY_MS, retryMs * 2 ** Math.max(0, failures - 1));
  const jittered = backoff * (0.75 + Math.random() * 0.5);
  return Math.max(jittered, hintS === null ? 0 : hintS * 1000);
}

/**
 * new Watch({url, headers, onGeneration, onConnection, onEnd, fetch})
 *   onGeneration(generation)   each state, the current one first
 *   onConnection(state, info)  "connecting" | "open" | "retrying" ({error, delayMs})
 *   onEnd(outcome, error)      "final" (a final state came), "done" (204:
 *                              nothing more to send), "failed" (an error a
 *                              retry cannot fix, such as a revoked key)
 * start() begins; stop() ends it at once and calls nothing more.
 */
export class Watch {
  constructor({ url, headers, onGeneration, onConnection = () => {}, onEnd = () => {}, fetch }) {
    this.url = url;
    this.headers = headers;
    this.onGeneration = onGeneration;
    this.onConnection = onConnection;
    this.onEnd = onEnd;
    this.fetch = fetch || globalThis.fetch.bind(globalThis);
    this.controller = new AbortController();
    this.lastEventId = "";
    this.retryMs = DEFAULT_RETRY_MS;
    this.requests = 0;
  }

  get stopped() {
    return this.controller.signal.aborted;
  }

  stop() {
    this.controller.abort();
  }

  start() {
    this.done = this.run().catch((error) => {
      if (!this.stopped) this.onEnd("failed", error);
    });
    return this;
  }

  async run() {
    let failures = 0;
    while (!this.stopped) {
      let error = null;
      let sawEvent = false;
      try {
        this.onConnection(failures ? "reconnecting" : "connecting");
        const headers = this.headers({ accept: "text/event-stream" });
        if (this.lastEventId) headers["last-event-id"] = this.lastEventId;
        this.requests += 1;
        const response = await this.fetch(this.url, {
          headers,
          signal: this.controller.signal,
          cache: "no-store",
          credentials: "omit",
          referrerPolicy: "no-referrer",
        });
        if (response.status === 204) return this.end("done");
        if (!response.ok) {
          const refused = await ApiError.of(response);
          if (!refused.transient) return this.end("failed", refused);
          throw refused;
        }
        this.onConnection("open");
        const outcome = await this.read(response.body, () => {
          sawEvent = true;
        });
        if (outcome) return this.end(outcome);
      } catch (caught) {
        if (this.stopped) return;
        error = caught instanceof ApiError ? caught : new ApiError(0);
      }
      // The stream ended (or failed) before the final state: reconnect.
      failures = sawEvent ? 1 : failures + 1;
      const delayMs = reconnectDelay(this.retryMs, failures, error ? error.retryAfterS : null);
      this.onConnection("retrying", { error, delayMs });
      await this.sleep(delayMs);
    }
  }

  /** Reads events until the body ends; "final" once a final state came. */
  async read(body, seen) {
    const parser = new EventStreamParser();
    const reader = body.pipeThrough(new TextDecoderStream()).getReader();
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return null;
        const events = parser.push(value);
        if (parser.retry !== null) this.retryMs = parser.retry;
        for (const event of events) {
          this.lastEventId = event.lastEventId;
          const generation = JSON.parse(event.data).generation;
          if (!generation || this.stopped) continue;
          seen();
          this.onGeneration(generation);
          if (FINAL.has(generation.status)) return "final";
        }
      }
    } finally {
      reader.cancel().catch(() => {});
    }
  }

  end(outcome, error = null) {
    if (!this.stopped) {
      this.controller.abort();
      this.onEnd(outcome, error);
    }
  }

  sleep(ms) {
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, ms);
      this.controller.signal.addEventListener("abort", () => {
        clearTimeout(timer);
        resolve();
      });
    });
  }
}
