// The key owner's generations, newest first, a page at a time with the
// API's page tokens (ListGenerations), filtered by status.

import { explain } from "./api.js";
import { fill, h, KIND, say, STATUS, time, words } from "./dom.js";

export class History {
  constructor(section, { api, onSignedOut }) {
    this.section = section;
    this.api = api;
    this.onSignedOut = onSignedOut;
    this.list = section.querySelector("#history-list");
    this.status = section.querySelector("#status-filter");
    this.pageSize = section.querySelector("#page-size");
    this.newer = section.querySelector("#history-newer");
    this.older = section.querySelector("#history-older");
    this.pageLabel = section.querySelector("#history-page");
    this.error = section.querySelector("#history-error");
    this.summary = section.querySelector("#history-status");
    // The token of each page shown so far ("" for the first) and the next one.
    this.tokens = [""];
    this.next = "";
    this.loading = null;

    this.status.addEventListener("change", () => this.reload());
    this.pageSize.addEventListener("change", () => this.reload());
    section.querySelector("#history-refresh").addEventListener("click", () => this.load());
    section.querySelector("#history-filter").addEventListener("submit", (event) => {
      event.preventDefault();
      this.reload();
    });
    this.older.addEventListener("click", () => {
      this.tokens.push(this.next);
      this.load();
    });
    this.newer.addEventListener("click", () => {
      this.tokens.pop();
      this.load();
    });
  }

  /** From the first page (a filter or page size changed). */
  reload() {
    this.tokens = [""];
    return this.load();
  }

  async load() {
    if (this.loading) this.loading.abort();
    const controller = new AbortController();
    this.loading = controller;
    say(this.error, "");
    this.summary.textContent = "Loading…";
    this.section.setAttribute("aria-busy", "true");
    try {
      const page = await this.api.list(
        {
          status: this.status.value,
          pageSize: this.pageSize.value,
          pageToken: this.tokens[this.tokens.length - 1],
        },
        controller.signal,
      );
      this.draw(page.generations || [], page.nextPageToken || "");
    } catch (error) {
      if (error.name === "AbortError") return;
      if (error.status === 401) return this.onSignedOut(error);
      this.summary.textContent = "";
      say(this.error, explain(error));
    } finally {
      if (this.loading === controller) {
        this.loading = null;
        this.section.removeAttribute("aria-busy");
      }
    }
  }

  draw(generations, next) {
    this.next = next;
    const page = this.tokens.length;
    this.newer.disabled = page === 1;
    this.older.disabled = !next;
    this.pageLabel.textContent = `Page ${page}`;
    this.summary.textContent = generations.length
      ? `${generations.length} generation${generations.length === 1 ? "" : "s"} on this page.`
      : page === 1
        ? "No generations yet."
        : "No more generations.";
    fill(this.list, generations.map((g) => this.item(g)));
  }

  item(g) {
    return h(
      "li",
      { class: "card" },
      h("a", { href: `#/generations/${encodeURIComponent(g.generationId)}`, class: "prompt" }, g.prompt),
      h(
        "p",
        { class: "meta" },
        h("span", { class: `status status-${(g.status || "").replace("STATUS_", "").toLowerCase()}` }, words(STATUS, g.status)),
        ` · ${words(KIND, g.kind)} · ${g.width} × ${g.height} · `,
        time(g.createTime),
      ),
    );
  }
}
