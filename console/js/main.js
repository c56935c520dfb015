// The console: signs in with an API key, then routes between its views
// (#/create, #/history, #/generations/{id}). The key lives in memory and,
// if the person agrees, in this tab's sessionStorage (gone with the tab);
// never in a URL, localStorage or a log.

import { Api, explain } from "./api.js";
import { CreateForm } from "./create.js";
import { say } from "./dom.js";
import { GenerationView } from "./generation.js";
import { History } from "./history.js";

const KEY_ITEM = "leo-console-key";
const $ = (selector) => document.querySelector(selector);
const views = ["sign-in", "create", "history", "detail"];

const announcer = $("#announcer");
function announce(text) {
  // Cleared first, so the same words twice are still read out.
  announcer.textContent = "";
  setTimeout(() => {
    announcer.textContent = text;
  }, 50);
}

let api = null;
let createForm = null;
let history = null;
let latest = null;
let detail = null;

function storedKey() {
  try {
    return sessionStorage.getItem(KEY_ITEM);
  } catch {
    return null; // storage switched off: memory only
  }
}

function keep(key, remember) {
  try {
    if (remember) sessionStorage.setItem(KEY_ITEM, key);
    else sessionStorage.removeItem(KEY_ITEM);
  } catch {
    // Storage switched off: the key stays in memory only.
  }
}

function show(view) {
  for (const name of views) $(`#${name}`).hidden = name !== view;
  for (const link of document.querySelectorAll("#nav a")) {
    if (link.dataset.view === view) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  const title = $(`#${view} h1`);
  document.title = `${title.textContent} · Leo console`;
}

/** Moves the focus to the view's heading, as a page load would, for keyboard and screen reader users. */
function focusView(view) {
  $(`#${view} h1`).focus({ preventScroll: false });
}

function signedOut(error = null) {
  for (const view of [latest, detail]) if (view) view.close();
  api = null;
  keep("", false);
  $("#nav").hidden = true;
  $("#who").hidden = true;
  say($("#api-key-error"), error ? explain(error) : "");
  if (error) $("#api-key").setAttribute("aria-invalid", "true");
  show("sign-in");
  $("#api-key").focus();
}

function signedIn(key) {
  api = new Api(key);
  const wire = { api, announce, onSignedOut: signedOut };
  latest = new GenerationView($("#create-result"), wire);
  detail = new GenerationView($("#detail-body"), wire);
  if (!createForm) {
    createForm = new CreateForm($("#create-form"), {
      ...wire,
      onCreated: (generation) => {
        latest.open(generation.generationId, generation);
        announce("Generation accepted.");
      },
    });
    history = new History($("#history"), wire);
  }
  createForm.api = api;
  createForm.onSignedOut = signedOut;
  history.api = api;
  history.onSignedOut = signedOut;
  $("#key-hint").textContent = `Key ${key.slice(0, 12)}…`;
  $("#nav").hidden = false;
  $("#who").hidden = false;
  route();
}

function route() {
  if (!api) return signedOut();
  const hash = location.hash.startsWith("#/") ? location.hash : "#/create";
  const match = hash.match(/^#\/generations\/([0-9a-fA-F-]{36})$/);
  if (match) {
    show("detail");
    detail.open(match[1]);
    focusView("detail");
    return;
  }
  detail.close();
  const view = hash === "#/history" ? "history" : "create";
  show(view);
  if (view === "history") history.reload();
  focusView(view);
}

$("#sign-in-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const input = $("#api-key");
  const key = input.value.trim();
  input.removeAttribute("aria-invalid");
  if (!key) {
    say($("#api-key-error"), "Paste an API key first.");
    input.setAttribute("aria-invalid", "true");
    input.focus();
    return;
  }
  const button = event.target.querySelector("button[type=submit]");
  button.disabled = true;
  say($("#api-key-error"), "");
  try {
    // Any call tells whether the key is live: the smallest one.
    await new Api(key).list({ pageSize: 1 });
  } catch (error) {
    say($("#api-key-error"), explain(error));
    input.setAttribute("aria-invalid", "true");
    input.focus();
    return;
  } finally {
    button.disabled = false;
  }
  input.value = "";
  keep(key, $("#remember").checked);
  signedIn(key);
});

$("#sign-out").addEventListener("click", () => {
  signedOut();
  history && history.list.replaceChildren();
  $("#create-result").replaceChildren();
});

// Views are "#/..." hashes. The skip link moves the focus without
// touching the hash (Back still leads to the previous view).
$(".skip").addEventListener("click", (event) => {
  event.preventDefault();
  $("#main").focus();
});
window.addEventListener("hashchange", () => {
  if (api && (location.hash === "" || location.hash.startsWith("#/"))) route();
});

const key = storedKey();
if (key) signedIn(key);
else signedOut();
