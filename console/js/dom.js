// Building the page from data: every text goes in as a text node, never as
// markup (the CSP's Trusted Types make markup from strings throw anyway).

/**
 * An element: h("p", {class: "hint"}, "text", child). Attribute values are
 * set with setAttribute; `on*` functions become listeners; null, undefined
 * and false attributes and children are skipped.
 */
export function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === null || value === undefined || value === false) continue;
    if (typeof value === "function" && name.startsWith("on")) {
      element.addEventListener(name.slice(2), value);
    } else {
      element.setAttribute(name, value === true ? "" : String(value));
    }
  }
  append(element, children);
  return element;
}

function append(element, children) {
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Replaces an element's children. */
export function fill(element, ...children) {
  element.replaceChildren();
  append(element, children);
  return element;
}

/** Shows `text` in a hidden-by-default message element, or hides it when empty. */
export function say(element, text) {
  element.textContent = text || "";
  element.hidden = !text;
}

/**
 * The path and query of an http(s) link whose host is this page's own,
 * or of a link to this API's asset route elsewhere (links name the host the
 * API was configured with, which may not be the one this page was opened
 * at: the signature covers the path and expiry only). Anything else: null,
 * and the console shows no image from it (its CSP would refuse it too).
 */
export function sameOriginUrl(link) {
  let url;
  try {
    url = new URL(link, location.href);
  } catch {
    return null;
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") return null;
  if (url.origin === location.origin || /^\/v1\/generations\/[^/]+\/assets\/\d+$/.test(url.pathname)) {
    return url.pathname + url.search;
  }
  return null;
}

const dateTime = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "medium" });

/** A <time> for an RFC 3339 timestamp, in the reader's locale; null when absent. */
export function time(rfc3339) {
  if (!rfc3339) return null;
  const date = new Date(rfc3339);
  if (Number.isNaN(date.getTime())) return rfc3339;
  return h("time", { datetime: rfc3339 }, dateTime.format(date));
}

/** "0:07", "12:30", "1:02:03" for a number of milliseconds. */
export function duration(ms) {
  const total = Math.max(0, Math.floor(ms / 1000));
  const hours = Math.floor(total / 3600);
  const minutes = Math.floor((total % 3600) / 60);
  const seconds = String(total % 60).padStart(2, "0");
  return hours ? `${hours}:${String(minutes).padStart(2, "0")}:${seconds}` : `${minutes}:${seconds}`;
}

/** How long something took: "0.6 s", "12.3 s" under a minute, else as duration(). */
export function took(ms) {
  return ms < 60000 ? `${(Math.max(0, ms) / 1000).toFixed(1)} s` : duration(ms);
}

/** "12 KB", "1.4 MB" for a byte count (a number or an int64 string). */
export function bytes(count) {
  const n = Number(count);
  if (!Number.isFinite(n)) return "";
  if (n < 1000) return `${n} B`;
  if (n < 1e6) return `${Math.round(n / 1000)} KB`;
  return `${(n / 1e6).toFixed(1)} MB`;
}

/** Seconds as a person reads them: "1 second", "30 seconds", "2 minutes". */
export function seconds(value) {
  const s = Math.max(1, Math.ceil(value));
  if (s < 120) return s === 1 ? "1 second" : `${s} seconds`;
  return `${Math.ceil(s / 60)} minutes`;
}

// Enum values as words.
export const STATUS = {
  STATUS_PENDING: "Pending",
  STATUS_COMPLETE: "Complete",
  STATUS_FAILED: "Failed",
  STATUS_CANCELLED: "Cancelled",
};
export const PHASE = { PHASE_QUEUED: "Queued", PHASE_STARTING: "Starting", PHASE_RUNNING: "Running" };
export const MODEL = { MODEL_SDXL: "Stable Diffusion XL", MODEL_SD: "Stable Diffusion 1.5" };
export const KIND = { KIND_IMAGE: "Images", KIND_VIDEO: "Video" };
export const PRIORITY = { PRIORITY_LOW: "Low", PRIORITY_NORMAL: "Normal", PRIORITY_HIGH: "High" };

/** A known enum value's words, else the value itself (a newer API's value still shows). */
// A generation's phase, or null once final (JSON may spell that PHASE_UNSPECIFIED).
export function phaseOf(g) {
  return g.phase && g.phase !== "PHASE_UNSPECIFIED" ? g.phase : null;
}

export function words(table, value) {
  return table[value] || value || "";
}
