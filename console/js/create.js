// The create form: what it sends (only fields the API has), the API's
// field violations beside the fields they name, its other errors in words.

import { explain, uuid4 } from "./api.js";
import { say, seconds } from "./dom.js";

// The API's field name (BadRequest.fieldViolations[].field, proto or JSON
// spelling) -> the id of the control it is shown beside.
const FIELD_CONTROLS = {
  prompt: "prompt",
  model: "model",
  kind: "kind",
  width: "width",
  height: "height",
  webhook_url: "webhook-url",
  webhookUrl: "webhook-url",
  priority: "priority",
};

export class CreateForm {
  /** onCreated(generation): a generation was accepted; onSignedOut(error): the key was refused. */
  constructor(form, { api, onCreated, onSignedOut }) {
    this.form = form;
    this.api = api;
    this.onCreated = onCreated;
    this.onSignedOut = onSignedOut;
    this.submit = form.querySelector("#generate");
    this.error = form.querySelector("#create-error");
    this.size = form.querySelector("#size");
    this.custom = form.querySelector("#custom-size");
    this.prompt = form.querySelector("#prompt");
    // The request id of a create whose answer never came, kept while the
    // fields stay the same: sending it again cannot make a second generation.
    this.pending = null;
    this.cooldown = null;

    form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.send();
    });
    this.prompt.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
        event.preventDefault();
        form.requestSubmit();
      }
    });
    this.prompt.addEventListener("input", () => {
      form.querySelector("#prompt-count").textContent = String(this.prompt.value.length);
    });
    this.size.addEventListener("change", () => this.sizeChanged());
    this.sizeChanged();
  }

  sizeChanged() {
    const custom = this.size.value === "custom";
    this.custom.hidden = !custom;
    if (!custom) {
      const [width, height] = this.size.value.split("x");
      this.form.querySelector("#width").value = width;
      this.form.querySelector("#height").value = height;
    }
  }

  /** The request body: numbers as typed (the API, not the console, decides what is valid). */
  fields() {
    const value = (id) => this.form.querySelector(`#${id}`).value;
    const number = (id) => {
      const text = value(id).trim();
      return text === "" ? 0 : Number(text);
    };
    const body = {
      prompt: value("prompt"),
      model: value("model"),
      kind: this.form.querySelector("input[name=kind]:checked").value,
      width: number("width"),
      height: number("height"),
    };
    const webhook = value("webhook-url").trim();
    if (webhook) body.webhookUrl = webhook;
    // Normal is the API's default: left out, a Normal create is the same
    // request as before the API had priorities.
    const priority = value("priority");
    if (priority !== "PRIORITY_NORMAL") body.priority = priority;
    return body;
  }

  clearErrors() {
    say(this.error, "");
    for (const message of this.form.querySelectorAll(".error")) say(message, "");
    for (const control of this.form.querySelectorAll("[aria-invalid]")) control.removeAttribute("aria-invalid");
  }

  /** Each violation beside its field; the first such field gets the focus. */
  showViolations(violations) {
    let first = null;
    const unplaced = [];
    for (const { field, description } of violations) {
      let id = FIELD_CONTROLS[field];
      // A preset's width or height is shown beside the size menu.
      if ((id === "width" || id === "height") && this.custom.hidden) id = "size";
      const message = id && this.form.querySelector(`#${id}-error`);
      if (!message) {
        unplaced.push(`${field}: ${description}`);
        continue;
      }
      say(message, message.hidden ? description : `${message.textContent} ${description}`);
      const control = this.form.querySelector(`#${id}`) || this.form.querySelector(`fieldset[aria-describedby="${id}-error"] input`);
      if (control) {
        control.setAttribute("aria-invalid", "true");
        first = first || control;
      }
    }
    say(this.error, ["Some fields need a change: see the notes beside them.", ...unplaced].join(" "));
    if (first) first.focus();
  }

  async send() {
    if (this.submit.disabled) return;
    this.clearErrors();
    const body = this.fields();
    const fingerprint = JSON.stringify(body);
    if (!this.pending || this.pending.fingerprint !== fingerprint) this.pending = { fingerprint, requestId: uuid4() };
    this.submit.disabled = true;
    this.submit.textContent = "Sending…";
    try {
      const generation = await this.api.create({ ...body, requestId: this.pending.requestId });
      this.pending = null;
      this.onCreated(generation);
    } catch (error) {
      if (!error.transient) this.pending = null;
      if (error.status === 401) return this.onSignedOut(error);
      if (error.violations && error.violations.length) this.showViolations(error.violations);
      else say(this.error, explain(error));
      if (error.retryAfterS) return this.waitBeforeRetry(error.retryAfterS);
    } finally {
      if (!this.cooldown) {
        this.submit.textContent = "Generate";
        this.submit.disabled = false;
      }
    }
  }

  /** The API said when to try again: the button says it too, and waits. */
  waitBeforeRetry(delayS) {
    const until = Date.now() + delayS * 1000;
    this.submit.disabled = true;
    const step = () => {
      const left = (until - Date.now()) / 1000;
      if (left <= 0) {
        clearInterval(this.cooldown);
        this.cooldown = null;
        this.submit.disabled = false;
        this.submit.textContent = "Generate";
        return;
      }
      this.submit.textContent = `Generate (in ${seconds(left)})`;
    };
    this.cooldown = setInterval(step, 250);
    step();
  }
}
