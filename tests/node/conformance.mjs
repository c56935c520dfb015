// A Node service's use of the API, as a team that never saw our code writes
// it: @grpc/grpc-js with @grpc/proto-loader loading protos/ and gen/include,
// and the eventsource package (the WHATWG EventSource) on a signed watch link.
// Run by tests/e2e/test_node_client.py against a real stack; asserts as it
// goes and prints what it saw as one JSON line.
//
//   LEO_API_TARGET  host:port of the gRPC API (Envoy)
//   LEO_API_KEY      an API key
//   LEO_PROTO_DIRS   the include set, separated by the platform's path delimiter
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { existsSync } from "node:fs";
import path from "node:path";

import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { EventSource } from "eventsource";
import protobuf from "protobufjs";

const includeDirs = process.env.LEO_PROTO_DIRS.split(path.delimiter);
const options = { includeDirs, longs: String, enums: String, defaults: true, oneofs: true };
const definition = protoLoader.loadSync(
  ["leo/generation/v1/generation.proto", "google/rpc/error_details.proto"],
  options,
);
const api = grpc.loadPackageDefinition(definition);
const client = new api.leo.generation.v1.GenerationService(
  process.env.LEO_API_TARGET,
  grpc.credentials.createInsecure(),
);
const metadata = new grpc.Metadata();
metadata.set("authorization", `Bearer ${process.env.LEO_API_KEY}`);

const call = (method, request) =>
  new Promise((resolve, reject) =>
    client[method](request, metadata, { deadline: Date.now() + 10_000 }, (error, response) =>
      error ? reject(error) : resolve(response),
    ),
  );
const stream = (method, request) =>
  new Promise((resolve, reject) => {
    const messages = [];
    client[method](request, metadata)
      .on("data", (message) => messages.push(message))
      .on("error", reject)
      .on("end", () => resolve(messages));
  });
const FINAL = new Set(["STATUS_COMPLETE", "STATUS_FAILED", "STATUS_CANCELLED"]);
const seen = {};

// Create, watch to the final state, get.
const requestId = randomUUID();
const { generation: created, watchUrl } = await call("CreateGeneration", {
  prompt: "a lighthouse at dusk",
  width: 64,
  height: 64,
  requestId,
});
assert.equal(created.status, "STATUS_PENDING");
const again = await call("CreateGeneration", { prompt: "a lighthouse at dusk", width: 64, height: 64, requestId });
assert.equal(again.generation.generationId, created.generationId);
const states = await stream("WatchGeneration", { generationId: created.generationId });
assert.equal(states.at(-1).generation.status, "STATUS_COMPLETE");
assert.ok(states.every((message) => /^[\w-]{22}$/.test(message.eventId)));
const { generation: done } = await call("GetGeneration", { generationId: created.generationId });
assert.equal(done.assets.length, 2);
seen.watched = states.map((message) => message.generation.status);

// Download: the file streamed over gRPC (google.api.HttpBody chunks), and
// the same bytes from its signed link over HTTP, without a key.
const chunks = await stream("GetGenerationAsset", { generationId: done.generationId, index: 0 });
const file = Buffer.concat(chunks.map((chunk) => chunk.data));
assert.equal(chunks[0].contentType, "image/png");
assert.deepEqual([...file.subarray(0, 4)], [0x89, 0x50, 0x4e, 0x47]);
const linked = await fetch(done.assets[0].url);
assert.equal(linked.headers.get("content-type"), "image/png");
assert.ok(Buffer.from(await linked.arrayBuffer()).equals(file));
seen.downloaded = file.length;

// List, a page at a time: three pages of one.
for (const prompt of ["a paper boat", "a red kite"]) {
  await call("CreateGeneration", { prompt, width: 64, height: 64 });
}
const listed = [];
let pageToken = "";
do {
  const page = await call("ListGenerations", { pageSize: 1, pageToken });
  assert.ok(page.generations.length <= 1);
  listed.push(...page.generations.map((generation) => generation.generationId));
  pageToken = page.nextPageToken;
} while (pageToken);
assert.equal(listed.length, 3);
assert.equal(listed.at(-1), created.generationId); // newest first
seen.pages = listed.length;

// Cancel a PENDING generation.
const { generation: pending } = await call("CreateGeneration", { prompt: "never mind", width: 64, height: 64 });
const { generation: cancelled } = await call("CancelGeneration", { generationId: pending.generationId });
assert.equal(cancelled.status, "STATUS_CANCELLED");

// Rotate the webhook secret.
const { secret } = await call("RotateWebhookSecret", {});
assert.match(secret, /^whsec_/);

// An error and its details: google.rpc.Status in grpc-status-details-bin.
const refused = await call("CreateGeneration", { prompt: "a lighthouse", width: 1004 }).catch((error) => error);
assert.equal(refused.code, grpc.status.INVALID_ARGUMENT);
const errors = new protobuf.Root();
errors.resolvePath = (origin, target) => protoPath(target);
errors.loadSync(["google/rpc/status.proto", "google/rpc/error_details.proto"]);
const status = errors.lookupType("google.rpc.Status").decode(refused.metadata.get("grpc-status-details-bin")[0]);
const details = Object.fromEntries(
  status.details.map((any) => {
    const name = any.type_url.split("/").pop();
    return [name, errors.lookupType(name).decode(any.value)];
  }),
);
assert.deepEqual(
  details["google.rpc.BadRequest"].fieldViolations.map((v) => [v.field, v.description]),
  [["width", "must be a multiple of 8 from 64 to 2048 (or 0 for the default)"]],
);
assert.equal(details["google.rpc.ErrorInfo"].reason, "FIELD_VIOLATION");
seen.error = { code: refused.code, reason: details["google.rpc.ErrorInfo"].reason };

// A browser's EventSource on the signed watch link (no key): every state
// with its id; after the final one it reconnects with Last-Event-ID, gets
// 204 and stops.
const requests = [];
const events = await new Promise((resolve, reject) => {
  const received = [];
  const source = new EventSource(watchUrl, {
    fetch: async (url, init) => {
      const response = await fetch(url, init);
      requests.push({ lastEventId: init.headers["Last-Event-ID"] ?? null, status: response.status });
      return response;
    },
  });
  source.onmessage = (event) => received.push({ id: event.lastEventId, data: JSON.parse(event.data) });
  source.onerror = () => {
    if (source.readyState === EventSource.CLOSED) {
      resolve(received);
    } else if (requests.length > 3) {
      source.close();
      reject(new Error(`still reconnecting: ${JSON.stringify(requests)}`));
    }
  };
});
assert.ok(FINAL.has(events.at(-1).data.generation.status));
assert.ok(events.every((event) => event.id === event.data.eventId));
assert.deepEqual(requests, [
  { lastEventId: null, status: 200 },
  { lastEventId: events.at(-1).id, status: 204 },
]);
seen.eventSource = requests;

client.close();
console.log(JSON.stringify(seen));

// Where an imported proto is: the first include directory that has it
// (protobufjs has google/protobuf itself).
function protoPath(name) {
  const found = includeDirs.map((dir) => path.join(dir, name)).find((file) => existsSync(file));
  return found ?? name;
}
