// The SSE parser (WHATWG rules, fed in arbitrary pieces) and the reconnect delay.
import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { type SseFrame, SseParser, reconnectDelay } from "../src/index.js";

const STREAM =
  "\ufeffretry: 3000\r\n: stream open\r\n\r\n" +
  "id: evt_1\nevent: incident.created\ndata: {\"a\":1}\n\n" +
  "event: ping\ndata: {}\n\n" +
  "data: line one\rdata:line two\r\r" +
  "id: bad\0id\nid\nevent: reset\ndata: {\"reason\":\"cursor_expired\"}\n\n" +
  "event: nothing\n\n" +
  "id: evt_2\ndata\n\n";

function feedAll(parts: string[]): { frames: SseFrame[]; parser: SseParser } {
  const parser = new SseParser();
  const frames = parts.flatMap((part) => parser.feed(part));
  return { frames, parser };
}

const EXPECTED: SseFrame[] = [
  { event: "incident.created", data: '{"a":1}', id: "evt_1" },
  { event: "ping", data: "{}", id: undefined },
  { event: "message", data: "line one\nline two", id: undefined },
  { event: "reset", data: '{"reason":"cursor_expired"}', id: "" },
  { event: "message", data: "", id: "evt_2" },
];

describe("SseParser", () => {
  it("reads a whole stream at once", () => {
    const { frames, parser } = feedAll([STREAM]);
    assert.deepEqual(frames, EXPECTED);
    assert.equal(parser.retryMs, 3000);
  });

  it("reads the same frames whatever the chunking, CRLF split included", () => {
    for (const size of [1, 2, 3, 7, 64]) {
      const parts: string[] = [];
      for (let i = 0; i < STREAM.length; i += size) parts.push(STREAM.slice(i, i + size));
      assert.deepEqual(feedAll(parts).frames, EXPECTED, `chunks of ${size}`);
    }
    assert.deepEqual(feedAll(["data: x\r", "\n", "\r\n"]).frames, [
      { event: "message", data: "x", id: undefined },
    ]);
  });

  it("keeps an unfinished frame until its blank line", () => {
    const parser = new SseParser();
    assert.deepEqual(parser.feed("id: evt_9\ndata: {}\n"), []);
    assert.deepEqual(parser.feed("\n"), [{ event: "message", data: "{}", id: "evt_9" }]);
  });
});

describe("reconnectDelay", () => {
  const backoff = { baseMs: 500, maxMs: 30_000 };

  it("doubles from the base up to the cap, jittered to between half and all", () => {
    assert.equal(reconnectDelay(0, backoff, 1), 500);
    assert.equal(reconnectDelay(0, backoff, 0), 250);
    assert.equal(reconnectDelay(3, backoff, 1), 4000);
    assert.equal(reconnectDelay(10, backoff, 1), 30_000);
    assert.equal(reconnectDelay(1000, backoff, 0.5), 22_500);
  });

  it("refuses nonsense", () => {
    assert.throws(() => reconnectDelay(-1, backoff, 0), RangeError);
    assert.throws(() => reconnectDelay(0, backoff, 2), RangeError);
  });
});
