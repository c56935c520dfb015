// What a page has that Node lacks, for docs/clients.md's browser examples
// (node --import ./browser_globals.mjs example.mjs): the WHATWG EventSource,
// and the values the examples take from the page, given as PAGE_<name>.
import { EventSource } from "eventsource";

globalThis.EventSource = EventSource;
for (const [name, value] of Object.entries(process.env)) {
  if (name.startsWith("PAGE_")) {
    globalThis[name.slice("PAGE_".length)] = value;
  }
}
