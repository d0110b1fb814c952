// EventStream over a fake fetch whose bodies the test writes: resume with Last-Event-ID,
// reset, retries and backoff, fatal refusals, tickets, the idle timeout and closing.
import assert from "node:assert/strict";
import { describe, it } from "node:test";

import {
  CauseFlowAPIError,
  CauseFlowClient,
  CauseFlowConnectionError,
  type Envelope,
  StreamReset,
  type StreamOptions,
} from "../src/index.js";
import { type Handler, fakeFetch, json } from "./helpers.js";

const OPENER = "retry: 3000\n: stream open\n\n";
const FAST: StreamOptions = { backoff: { baseMs: 1, maxMs: 5 }, random: () => 0 };

function frame(n: number): string {
  const id = `evt_${n}`;
  const envelope = { id, event: "user.created", timestamp: "t", tenantId: "ten_1", data: { n } };
  return `id: ${id}\nevent: user.created\ndata: ${JSON.stringify(envelope)}\n\n`;
}

/** A 200 SSE answer that sends `parts` and then ends, or stays open with `hold`. */
function sse(parts: string[], hold = false, signal?: AbortSignal): Response {
  const encoder = new TextEncoder();
  const body = new ReadableStream<Uint8Array>({
    start(controller) {
      for (const part of parts) controller.enqueue(encoder.encode(part));
      if (!hold) controller.close();
      signal?.addEventListener("abort", () => controller.error(signal.reason));
    },
  });
  return new Response(body, { status: 200, headers: { "Content-Type": "text/event-stream" } });
}

function client(handler: Handler, apiKey: string | undefined = "cflo_k") {
  const { fetch, seen } = fakeFetch(handler);
  const options = apiKey === undefined ? { baseUrl: "http://cf.test", fetch } : { baseUrl: "http://cf.test", apiKey, fetch };
  return { cf: new CauseFlowClient(options), seen };
}

async function take<T>(iterator: AsyncIterator<T>, n: number): Promise<T[]> {
  const items: T[] = [];
  while (items.length < n) {
    const next = await iterator.next();
    if (next.done) break;
    items.push(next.value);
  }
  return items;
}

function ids(items: (Envelope | StreamReset)[]): string[] {
  return items.map((item) => (item instanceof StreamReset ? `reset:${item.reason}` : item.id));
}

describe("EventStream", () => {
  it("resumes after a drop with Last-Event-ID and sees every event once", async () => {
    const bodies = [
      [OPENER, frame(1), "event: ping\ndata: {}\n\n", frame(2)],
      [OPENER, frame(3)],
    ];
    const { cf, seen } = client(({ signal }) => sse(bodies.shift() ?? [OPENER], false, signal));
    const connects: (string | undefined)[] = [];
    const drops: unknown[] = [];
    const stream = cf.stream({
      ...FAST,
      events: ["user.created", "user.deleted"],
      incidentId: "inc_1",
      onConnect: (last) => connects.push(last),
      onDisconnect: (error) => drops.push(error),
    });
    const got = await take(stream[Symbol.asyncIterator](), 3);
    stream.close();
    assert.deepEqual(ids(got), ["evt_1", "evt_2", "evt_3"]);
    assert.deepEqual(connects, [undefined, "evt_2"]);
    assert.equal(drops[0], undefined, "a clean end is no error");
    assert.equal(seen[0]?.headers.get("last-event-id"), null);
    assert.equal(seen[1]?.headers.get("last-event-id"), "evt_2");
    assert.equal(seen[1]?.headers.get("x-api-key"), "cflo_k");
    assert.equal(seen[0]?.url.pathname, "/v1/notifications/stream");
    assert.equal(seen[0]?.url.searchParams.get("events"), "user.created,user.deleted");
    assert.equal(seen[0]?.url.searchParams.get("incidentId"), "inc_1");
    assert.equal(stream.lastEventId, "evt_3");
  });

  it("yields a reset and keeps the old resume point until the next event", async () => {
    const reset = 'event: reset\ndata: {"reason":"cursor_expired","lastEventId":"evt_old"}\n\n';
    const bodies = [[OPENER, reset], [OPENER, reset, frame(7)]];
    const { cf, seen } = client(() => sse(bodies.shift() ?? [OPENER]));
    const stream = cf.stream({ ...FAST, lastEventId: "evt_old" });
    const got = await take(stream[Symbol.asyncIterator](), 3);
    stream.close();
    assert.deepEqual(ids(got), ["reset:cursor_expired", "reset:cursor_expired", "evt_7"]);
    const first = got[0] as StreamReset;
    assert.equal(first.lastEventId, "evt_old");
    assert.deepEqual(seen.map((r) => r.headers.get("last-event-id")), ["evt_old", "evt_old"]);
  });

  it("ends on a refused credential or filter", async () => {
    for (const [status, code] of [[401, "invalid_api_key"], [403, "forbidden"], [422, "validation_error"]] as const) {
      const { cf } = client(() => json(status, { error: code, message: "no" }));
      const error = await take(cf.stream(FAST)[Symbol.asyncIterator](), 1).catch((e: unknown) => e);
      assert.ok(error instanceof CauseFlowAPIError && error.code === code, String(error));
    }
  });

  it("retries 429, 5xx and refused connections with backoff, honouring Retry-After", async () => {
    let calls = 0;
    const { cf } = client(() => {
      calls += 1;
      if (calls === 1) return json(429, { error: "too_many_streams", message: "wait" }, { "Retry-After": "5" });
      if (calls === 2) return json(503, { error: "service_unavailable", message: "db" });
      if (calls === 3) throw new TypeError("fetch failed");
      return sse([OPENER, frame(1)], true);
    });
    const delays: number[] = [];
    const stream = cf.stream({ backoff: { baseMs: 1, maxMs: 40 }, random: () => 1, onDisconnect: (_e, d) => delays.push(d) });
    assert.deepEqual(ids(await take(stream[Symbol.asyncIterator](), 1)), ["evt_1"]);
    stream.close();
    assert.deepEqual(delays, [40, 2, 4], "Retry-After (capped at maxMs), then doubling");
  });

  it("gives up after maxReconnects consecutive failures", async () => {
    const { cf, seen } = client(() => {
      throw new TypeError("fetch failed", { cause: new Error("ECONNREFUSED") });
    });
    const error = await take(cf.stream({ ...FAST, maxReconnects: 2 })[Symbol.asyncIterator](), 1).catch((e: unknown) => e);
    assert.ok(error instanceof CauseFlowConnectionError);
    assert.match(error.message, /ECONNREFUSED/);
    assert.equal(seen.length, 3);
  });

  it("reconnects when the line goes silent past the idle timeout", async () => {
    const bodies = [[OPENER, frame(1)], [OPENER, frame(2)]];
    const { cf, seen } = client(({ signal }) => sse(bodies.shift() ?? [OPENER], true, signal));
    const drops: unknown[] = [];
    const stream = cf.stream({ ...FAST, idleTimeoutMs: 50, onDisconnect: (e) => drops.push(e) });
    assert.deepEqual(ids(await take(stream[Symbol.asyncIterator](), 2)), ["evt_1", "evt_2"]);
    stream.close();
    assert.ok(drops[0] instanceof CauseFlowConnectionError);
    assert.match(String(drops[0]), /no data for 50 ms/);
    assert.equal(seen[1]?.headers.get("last-event-id"), "evt_1");
  });

  it("authenticates with tickets only, renewing a refused one", async () => {
    const tickets = ["t1", "t2", "t3"];
    const uses = new Map<string, number>();
    const { cf, seen } = client(({ url }) => {
      const token = url.searchParams.get("token") ?? "";
      uses.set(token, (uses.get(token) ?? 0) + 1);
      // Each ticket works once, then has "expired"; the third comes from a revoked key.
      if (token === "t3") return json(401, { error: "invalid_api_key", message: "revoked" });
      if ((uses.get(token) ?? 0) > 1) return json(401, { error: "token_expired", message: "old" });
      return sse([OPENER, frame(seen.length)]);
    });
    const stream = cf.stream({ ...FAST, ticket: async () => ({ ticket: tickets.shift() as string, expiresAt: new Date(Date.now() + 600_000).toISOString() }) });
    const iterator = stream[Symbol.asyncIterator]();
    assert.deepEqual(ids(await take(iterator, 2)), ["evt_1", "evt_3"]);
    const error = await take(iterator, 1).catch((e: unknown) => e);
    assert.ok(error instanceof CauseFlowAPIError && error.code === "invalid_api_key");
    assert.deepEqual(seen.map((r) => r.url.searchParams.get("token")), ["t1", "t1", "t2", "t2", "t3"]);
    for (const request of seen) {
      assert.equal(request.headers.get("x-api-key"), null, "no credential header with a ticket");
      assert.equal(request.headers.get("last-event-id"), null, "the resume point goes in the query");
    }
    assert.deepEqual(seen.map((r) => r.url.searchParams.get("lastEventId")), [null, "evt_1", "evt_1", "evt_3", "evt_3"]);
  });

  it("stops when closed, when the loop breaks and on its signal", async () => {
    const aborted: boolean[] = [];
    const { cf } = client(({ signal }) => {
      signal?.addEventListener("abort", () => aborted.push(true));
      return sse([OPENER, frame(1)], true, signal);
    });
    const stream = cf.stream(FAST);
    const iterator = stream[Symbol.asyncIterator]();
    await iterator.next();
    const pending = iterator.next();
    stream.close();
    assert.deepEqual(await pending, { done: true, value: undefined });

    for await (const item of cf.stream(FAST)) {
      assert.ok(!(item instanceof StreamReset));
      break;
    }
    const controller = new AbortController();
    const third = cf.stream({ ...FAST, signal: controller.signal })[Symbol.asyncIterator]();
    await third.next();
    setTimeout(() => controller.abort(), 10);
    assert.equal((await third.next()).done, true);
    assert.equal(aborted.length, 3, "every connection was aborted");
  });
});
