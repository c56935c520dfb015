// One generation: its state, live while it is pending (the watch), its
// files once complete, every field the API gives (fields added later, such
// as phase, priority or estimates, show when present and are never needed).

import { explain } from "./api.js";
import {
  bytes,
  duration,
  fill,
  h,
  KIND,
  MODEL,
  PHASE,
  phaseOf,
  PRIORITY,
  sameOriginUrl,
  STATUS,
  time,
  took,
  words,
} from "./dom.js";
import { FINAL, Watch } from "./watch.js";

const reducedMotion = matchMedia("(prefers-reduced-motion: reduce)");

export class GenerationView {
  /**
   * container: where it draws; api: the Api; announce(text): the page's
   * polite live region; onSignedOut(error): a key the API refuses.
   */
  constructor(container, { api, announce, onSignedOut }) {
    this.container = container;
    this.api = api;
    this.announce = announce;
    this.onSignedOut = onSignedOut;
    this.generation = null;
    this.watch = null;
    this.connection = "";
    this.clock = null;
    this.refreshedLinks = false;
  }

  /** Shows `generation` (when known) and follows it by id until it is final. */
  async open(id, generation = null) {
    this.close();
    this.id = id;
    this.refreshedLinks = false;
    if (generation) this.show(generation);
    else fill(this.container, h("p", { class: "placeholder" }, "Loading…"));
    if (generation && FINAL.has(generation.status)) return;
    if (!generation) {
      try {
        const current = await this.api.get(id);
        if (this.id !== id) return;
        this.show(current);
        if (FINAL.has(current.status)) return;
      } catch (error) {
        if (this.id !== id) return;
        if (error.status === 401) return this.onSignedOut(error);
        if (!error.transient) return fill(this.container, h("p", { class: "alert", role: "alert" }, explain(error)));
        // Unreachable for now: the watch below retries until it is back.
      }
    }
    this.follow(id);
  }

  follow(id) {
    this.watch = new Watch({
      url: this.api.watchUrl(id),
      headers: (extra) => this.api.headers(extra),
      onGeneration: (generation) => this.show(generation),
      onConnection: (state, info) => this.setConnection(state, info),
      onEnd: (outcome, error) => this.ended(id, outcome, error),
    }).start();
  }

  async ended(id, outcome, error) {
    this.watch = null;
    this.setConnection("");
    if (outcome === "failed") {
      if (error && error.status === 401) return this.onSignedOut(error);
      return this.showProblem(error ? explain(error) : "The live view stopped.");
    }
    if (outcome === "done" && this.id === id) {
      // Nothing more to stream: read the state the stream ended with.
      try {
        this.show(await this.api.get(id));
      } catch (problem) {
        this.showProblem(explain(problem));
      }
    }
  }

  /** Stops following and drawing (another generation, another view, sign-out). */
  close() {
    if (this.watch) this.watch.stop();
    this.watch = null;
    clearInterval(this.clock);
    this.clock = null;
    this.id = null;
    this.generation = null;
    this.connection = "";
  }

  setConnection(state, info = {}) {
    this.connection = state;
    this.connectionInfo = info;
    const line = this.container.querySelector(".connection");
    if (line) this.drawConnection(line);
  }

  drawConnection(line) {
    const pending = this.generation && !FINAL.has(this.generation.status);
    let text = "";
    if (pending && this.connection === "open") text = "Live";
    else if (pending && this.connection === "connecting") text = "Connecting…";
    else if (this.connection === "reconnecting" || this.connection === "retrying") {
      const error = this.connectionInfo && this.connectionInfo.error;
      text = "Connection lost, reconnecting…" + (error && error.status ? ` (${explain(error)})` : "");
    }
    line.textContent = text;
    line.dataset.state = this.connection;
  }

  showProblem(text) {
    const problem = this.container.querySelector(".problem");
    if (problem) {
      problem.textContent = text;
      problem.hidden = !text;
    }
  }

  show(g) {
    const before = this.generation;
    this.generation = g;
    const phase = phaseOf(g);
    if (!before || before.status !== g.status || phaseOf(before) !== phase) {
      this.announce(`${words(STATUS, g.status)}${phase ? `, ${words(PHASE, phase).toLowerCase()}` : ""}.`);
    }
    if (before && before.generationId === g.generationId && before.status === g.status) {
      // The same state with news (progress, queue, phase): only what changed
      // is drawn again, so a focused Cancel button keeps its focus.
      this.container.querySelector(".status").replaceWith(this.statusLine(g));
      this.container.querySelector(".progress").replaceWith(this.progress(g));
      this.container.querySelector(".facts").replaceWith(this.facts(g));
    } else {
      const hadFocus = this.container.contains(document.activeElement);
      fill(
        this.container,
        this.header(g),
        this.progress(g),
        h("p", { class: "alert problem", role: "alert", hidden: true }),
        g.status === "STATUS_FAILED"
          ? h("p", { class: "failure" }, h("strong", {}, "Why it failed: "), g.failureReason || "no reason given")
          : null,
        g.status === "STATUS_COMPLETE" ? this.assets(g) : null,
        this.facts(g),
      );
      if (hadFocus) this.container.querySelector(".status").focus();
    }
    this.tick();
    if (!FINAL.has(g.status) && !this.clock) this.clock = setInterval(() => this.tick(), 1000);
    if (FINAL.has(g.status)) {
      clearInterval(this.clock);
      this.clock = null;
    }
  }

  statusLine(g) {
    return h(
      "p",
      { class: `status status-${(g.status || "").replace("STATUS_", "").toLowerCase()}`, tabindex: -1 },
      words(STATUS, g.status),
      phaseOf(g) ? h("span", { class: "phase" }, ` · ${words(PHASE, phaseOf(g))}`) : null,
    );
  }

  header(g) {
    const pending = g.status === "STATUS_PENDING";
    return h(
      "div",
      { class: "head" },
      this.statusLine(g),
      h("p", { class: "prompt" }, g.prompt),
      h("p", { class: "connection" }),
      pending ? h("button", { type: "button", class: "danger", onclick: () => this.cancel() }, "Cancel") : null,
    );
  }

  progress(g) {
    if (g.status !== "STATUS_PENDING") {
      return h("div", { class: "progress" }, h("p", { class: "hint elapsed" }, this.elapsedText(g)));
    }
    const percent = typeof g.progress === "number" ? g.progress : null;
    const queued = typeof g.queuePosition === "number" && g.queuePosition > 0;
    return h(
      "div",
      { class: "progress" },
      h("label", { for: `progress-${g.generationId}` }, percent === null ? "Waiting to start" : `${percent} %`),
      h("progress", {
        id: `progress-${g.generationId}`,
        max: 100,
        value: percent === null ? null : percent,
        class: "bar-progress",
      }),
      queued ? h("p", { class: "queue" }, `Position ${g.queuePosition} in the queue`) : null,
      g.estimatedStartTime && !g.startTime ? h("p", { class: "hint" }, "Expected to start ", time(g.estimatedStartTime)) : null,
      g.estimatedCompleteTime ? h("p", { class: "hint" }, "Expected to finish ", time(g.estimatedCompleteTime)) : null,
      h("p", { class: "hint elapsed" }),
    );
  }

  /** The running time: since the start (or the create, before one), or how long it took. */
  elapsedText(g) {
    const from = Date.parse(g.startTime || g.createTime);
    if (Number.isNaN(from)) return "";
    if (FINAL.has(g.status)) {
      const end = Date.parse(g.completeTime || g.updateTime);
      return Number.isNaN(end) ? "" : `Took ${took(end - Date.parse(g.createTime))}`;
    }
    return `${g.startTime ? "Running for" : "Waiting for"} ${duration(Date.now() - from)}`;
  }

  tick() {
    const line = this.container.querySelector(".progress .elapsed");
    if (line && this.generation) line.textContent = this.elapsedText(this.generation);
    const connection = this.container.querySelector(".connection");
    if (connection) this.drawConnection(connection);
  }

  async cancel() {
    const button = this.container.querySelector(".head .danger");
    if (button) button.disabled = true;
    try {
      this.show(await this.api.cancel(this.generation.generationId));
      if (this.watch) this.watch.stop();
    } catch (error) {
      if (error.status === 401) return this.onSignedOut(error);
      if (button) button.disabled = false;
      this.showProblem(explain(error));
    }
  }

  assets(g) {
    const list = (g.assets && g.assets.length ? g.assets : g.images || []).map((asset, index) => this.asset(g, asset, index));
    return h("div", { class: "assets" }, list);
  }

  asset(g, asset, index) {
    const src = sameOriginUrl(asset.url);
    const animated = (asset.frameCount || 0) > 1;
    const name = `${g.generationId}-${index}.${(asset.contentType || "image/png").split("/")[1] || "png"}`;
    const label = animated ? `Video ${index + 1}` : `Image ${index + 1}`;
    const caption = [
      `${asset.width} × ${asset.height}`,
      animated ? `${asset.frameCount} frames, ${(asset.durationMs / 1000).toFixed(1)} s` : null,
      asset.byteSize ? bytes(asset.byteSize) : null,
    ]
      .filter(Boolean)
      .join(" · ");
    if (!src) return h("figure", {}, h("figcaption", {}, `${label}: a link this console does not open.`));
    const image = h("img", {
      src,
      alt: `${label} of “${g.prompt}”`,
      width: asset.width,
      height: asset.height,
      decoding: "async",
      class: animated ? "video" : "image",
      onerror: () => this.linkFailed(),
    });
    return h(
      "figure",
      { class: "asset" },
      animated ? this.player(image, label) : image,
      h(
        "figcaption",
        {},
        h("span", {}, caption),
        h("a", { href: src, download: name, class: "button" }, `Download ${label.toLowerCase()}`),
      ),
    );
  }

  /**
   * An animation with Pause/Play: paused, a still of it shows instead (an
   * img cannot be paused; a canvas draws an animated image's first frame).
   * It starts paused for readers who ask for reduced motion.
   */
  player(image, label) {
    const still = h("canvas", { class: "still", width: image.width, height: image.height, hidden: true, role: "img" });
    still.setAttribute("aria-label", `${image.alt} (paused)`);
    const button = h("button", { type: "button", class: "play", "aria-pressed": "false" }, `Pause ${label.toLowerCase()}`);
    const setPaused = (paused) => {
      if (paused) {
        if (image.complete && image.naturalWidth) still.getContext("2d").drawImage(image, 0, 0, still.width, still.height);
        else image.addEventListener("load", () => setPaused(button.getAttribute("aria-pressed") === "true"), { once: true });
      }
      still.hidden = !paused;
      image.hidden = paused;
      button.setAttribute("aria-pressed", String(paused));
      button.textContent = `${paused ? "Play" : "Pause"} ${label.toLowerCase()}`;
    };
    button.addEventListener("click", () => setPaused(button.getAttribute("aria-pressed") !== "true"));
    if (reducedMotion.matches) setPaused(true);
    return h("div", { class: "player" }, image, still, button);
  }

  /** A link that no longer opens (expired): read the generation once for fresh ones. */
  async linkFailed() {
    if (this.refreshedLinks || !this.generation) return;
    this.refreshedLinks = true;
    try {
      const fresh = await this.api.get(this.generation.generationId);
      this.generation = null; // draw the assets again, with the new links
      this.show(fresh);
    } catch (error) {
      this.showProblem(explain(error));
    }
  }

  facts(g) {
    const row = (name, value) => (value === null || value === undefined || value === "" ? null : [h("dt", {}, name), h("dd", {}, value)]);
    return h(
      "dl",
      { class: "facts" },
      row("Id", h("code", {}, g.generationId)),
      row("Model", words(MODEL, g.model)),
      row("Kind", words(KIND, g.kind)),
      row("Size", g.width && g.height ? `${g.width} × ${g.height}` : null),
      row("Priority", g.priority ? words(PRIORITY, g.priority) : null),
      row("Attempts", String(g.attempts ?? 0)),
      row("Failure reason", g.failureReason || null),
      row("Created", time(g.createTime)),
      row("Started", time(g.startTime)),
      row("Updated", time(g.updateTime)),
      row("Finished", time(g.completeTime)),
    );
  }
}
