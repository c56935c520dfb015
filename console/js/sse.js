// The text/event-stream format as the HTML standard parses it
// (https://html.spec.whatwg.org/multipage/server-sent-events.html), for a
// reader built on fetch: EventSource cannot send an Authorization header.

/**
 * Feed it decoded text as it arrives (any split, any line ending: \n, \r\n
 * or \r); it returns the events each piece completed, as
 * {type, data, lastEventId}. `lastEventId` and `retry` (milliseconds, or
 * null) hold what the stream set so far.
 */
export class EventStreamParser {
  constructor() {
    this.buffer = "";
    this.started = false;
    this.lastEventId = "";
    this.retry = null;
    this.data = [];
    this.type = "";
  }

  push(text) {
    this.buffer += text;
    if (!this.started && this.buffer.length) {
      this.started = true;
      if (this.buffer[0] === "\ufeff") this.buffer = this.buffer.slice(1);
    }
    const events = [];
    for (;;) {
      const end = this.buffer.search(/[\r\n]/);
      if (end < 0) break;
      // A \r last in the buffer may be the first half of \r\n: wait for more.
      if (this.buffer[end] === "\r" && end === this.buffer.length - 1) break;
      const line = this.buffer.slice(0, end);
      const width = this.buffer.startsWith("\r\n", end) ? 2 : 1;
      this.buffer = this.buffer.slice(end + width);
      const event = this.line(line);
      if (event) events.push(event);
    }
    return events;
  }

  line(line) {
    if (line === "") return this.dispatch();
    if (line[0] === ":") return null;
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value[0] === " ") value = value.slice(1);
    if (field === "data") this.data.push(value);
    else if (field === "event") this.type = value;
    else if (field === "id" && !value.includes("\0")) this.lastEventId = value;
    else if (field === "retry" && /^\d+$/.test(value)) this.retry = Number(value);
    return null;
  }

  dispatch() {
    const data = this.data;
    const type = this.type || "message";
    this.data = [];
    this.type = "";
    if (!data.length) return null;
    return { type, data: data.join("\n"), lastEventId: this.lastEventId };
  }
}
