// Edge cases a receiver or a client meets in the wild: signatures that must not verify, SSE
// framing corner cases, a server that repeats a cursor, and error answers that are not JSON.
import assert from "node:assert/strict";
import { describe, it } from "node:test";

import {
  CauseFlowAPIError,
  CauseFlowClient,
  CauseFlowConnectionError,
  WebhookVerificationError,
  signWebhook,
  verifyWebhookSignature,
} from "../src/index.js";
import { SseParser } from "../src/sse.js";
import { fakeFetch, json } from "./helpers.js";

const SECRET = "whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
const OTHER = "whsec_HxwdHh8AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBk=";
const NOW = 1_795_768_974;
const BODY = '{"id":"evt_1","event":"x","timestamp":"t","tenantId":"ten","data":{"n":"é—😀"}}';

async function reason(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof WebhookVerificationError) return error.reason;
    if (error instanceof TypeError) return "type_error";
    throw error;
  }
  return "accepted";
}

async function signed(body: string | Uint8Array = BODY, secrets: string | string[] = SECRET) {
  return signWebhook(body, secrets, { webhookId: "msg_1", timestamp: NOW });
}

function standardOnly(h: Record<string, string>): Record<string, string> {
  const { ["X-CauseFlow-Signature"]: _, ...rest } = h;
  return rest;
}

describe("verifyWebhook refuses", () => {
  it("a signature made for another body, id or timestamp", async () => {
    const h = standardOnly(await signed());
    const opts = { now: NOW };
    assert.equal(await reason(verifyWebhookSignature(BODY, h, SECRET, opts)), "accepted");
    assert.equal(await reason(verifyWebhookSignature(BODY + " ", h, SECRET, opts)), "signature_mismatch");
    const id = { ...h, "webhook-id": "msg_2" };
    assert.equal(await reason(verifyWebhookSignature(BODY, id, SECRET, opts)), "signature_mismatch");
    const ts = { ...h, "webhook-timestamp": String(NOW + 1) };
    assert.equal(await reason(verifyWebhookSignature(BODY, ts, SECRET, opts)), "signature_mismatch");
    assert.equal(await reason(verifyWebhookSignature(BODY, h, OTHER, opts)), "signature_mismatch");
  });

  it("v1 entries of the wrong length, other versions, and a bad entry alone", async () => {
    const h = standardOnly(await signed());
    const good = h["webhook-signature"] as string;
    const b64 = good.slice(3);
    const tries = [
      `v1,${b64.slice(0, 40)}`,
      `v1,${b64}AAAA`,
      `v1,${b64.slice(0, -1)}`,
      `v1a,${b64}`,
      `V1,${b64}`,
      `v2,${b64}`,
      `v1,${b64.replace(/=$/, "")}`,
      `v1, ${b64}`,
      `v1,${b64.toLowerCase()}`,
      `v1,AAAA v2,${b64}`,
      `${b64}`,
      "",
      " ",
    ];
    for (const sig of tries) {
      const got = await reason(
        verifyWebhookSignature(BODY, { ...h, "webhook-signature": sig }, SECRET, { now: NOW }),
      );
      assert.notEqual(got, "accepted", sig);
    }
  });

  it("whitespace and case in header names and values", async () => {
    const h = standardOnly(await signed());
    const upper = Object.fromEntries(Object.entries(h).map(([k, v]) => [k.toUpperCase(), v]));
    assert.equal(await reason(verifyWebhookSignature(BODY, upper, SECRET, { now: NOW })), "accepted");
    const spaced = { ...h, "webhook-signature": `  v1,AAAA   ${h["webhook-signature"]}\t` };
    assert.equal(await reason(verifyWebhookSignature(BODY, spaced, SECRET, { now: NOW })), "accepted");
    for (const stamp of [`${NOW}x`, `-${NOW}`, `+${NOW}`, `${NOW}.0`, `${NOW} 1`, "", "0x10", "1e9"]) {
      const got = await reason(
        verifyWebhookSignature(BODY, { ...h, "webhook-timestamp": stamp }, SECRET, { now: NOW }),
      );
      assert.notEqual(got, "accepted", stamp);
    }
    const huge = { ...h, "webhook-timestamp": "9".repeat(400) };
    assert.equal(await reason(verifyWebhookSignature(BODY, huge, SECRET, { now: NOW })), "timestamp_out_of_tolerance");
  });

  it("header arrays: one good entry among several, several ids", async () => {
    const h = standardOnly(await signed());
    const arr = { ...h, "webhook-signature": ["v1,AAAA", h["webhook-signature"] as string] };
    assert.equal(await reason(verifyWebhookSignature(BODY, arr, SECRET, { now: NOW })), "accepted");
    const ids = { ...h, "webhook-id": ["msg_1", "msg_2"] };
    assert.equal(await reason(verifyWebhookSignature(BODY, ids, SECRET, { now: NOW })), "signature_mismatch");
    const bad = { ...h, "webhook-signature": ["v1,AAAA"] };
    assert.equal(await reason(verifyWebhookSignature(BODY, bad, SECRET, { now: NOW })), "signature_mismatch");
  });

  it("timestamps outside tolerance either way, inside at the edge", async () => {
    const h = standardOnly(await signed());
    const at = (now: number) => reason(verifyWebhookSignature(BODY, h, SECRET, { now }));
    assert.equal(await at(NOW + 300), "accepted");
    assert.equal(await at(NOW - 300), "accepted");
    assert.equal(await at(NOW + 301), "timestamp_out_of_tolerance");
    assert.equal(await at(NOW - 301), "timestamp_out_of_tolerance");
    assert.equal(await at(NOW + 300.5), "timestamp_out_of_tolerance");
  });

  it("an unusable clock or tolerance instead of accepting any timestamp", async () => {
    const h = standardOnly(await signWebhook(BODY, SECRET, { webhookId: "msg_1", timestamp: 1000 }));
    const opts = [
      { now: new Date("not a date") },
      { now: NaN },
      { toleranceSeconds: NaN },
      { toleranceSeconds: Number(undefined) },
      { toleranceSeconds: -1 },
    ];
    const infinite = await reason(verifyWebhookSignature(BODY, h, SECRET, { toleranceSeconds: Infinity }));
    assert.equal(infinite, "accepted");
    for (const o of opts) {
      const got = await reason(verifyWebhookSignature(BODY, h, SECRET, o));
      assert.equal(got, "type_error", JSON.stringify(o));
    }
  });

  it("secrets with and without whsec_, and empty lists", async () => {
    const plain = "plain-secret";
    const hp = standardOnly(await signed(BODY, plain));
    assert.equal(await reason(verifyWebhookSignature(BODY, hp, plain, { now: NOW })), "accepted");
    assert.equal(await reason(verifyWebhookSignature(BODY, hp, `whsec_${plain}`, { now: NOW })), "type_error");
    const hs = standardOnly(await signed());
    assert.equal(await reason(verifyWebhookSignature(BODY, hs, SECRET.slice(6), { now: NOW })), "signature_mismatch");
    assert.equal(await reason(verifyWebhookSignature(BODY, hs, [], { now: NOW })), "type_error");
    assert.equal(await reason(verifyWebhookSignature(BODY, hs, "", { now: NOW })), "type_error");
    assert.equal(await reason(verifyWebhookSignature(BODY, hs, "whsec_", { now: NOW })), "type_error");
    assert.equal(await reason(verifyWebhookSignature(BODY, hs, [OTHER, SECRET], { now: NOW })), "accepted");
  });

  it("the raw bytes: string, Uint8Array, a pooled Buffer slice, and re-decoded text", async () => {
    const bytes = new TextEncoder().encode(BODY);
    const h = await signed(bytes);
    const pool = Buffer.alloc(bytes.length + 16, 0x41);
    pool.set(bytes, 7);
    const slice = pool.subarray(7, 7 + bytes.length);
    for (const body of [BODY, bytes, Buffer.from(bytes), slice, bytes.buffer.slice(0)]) {
      assert.equal(await reason(verifyWebhookSignature(body, h, SECRET, { now: NOW })), "accepted");
      const hex = { "X-CauseFlow-Signature": h["X-CauseFlow-Signature"] as string };
      assert.equal(await reason(verifyWebhookSignature(body, hex, SECRET)), "accepted");
    }
    const latin1 = Buffer.from(bytes).toString("latin1");
    assert.equal(await reason(verifyWebhookSignature(latin1, h, SECRET, { now: NOW })), "signature_mismatch");
    const invalid = Uint8Array.from([...bytes, 0xff]);
    const hi = await signed(invalid);
    assert.equal(await reason(verifyWebhookSignature(invalid, hi, SECRET, { now: NOW })), "accepted");
    const asText = new TextDecoder().decode(invalid);
    assert.equal(await reason(verifyWebhookSignature(asText, hi, SECRET, { now: NOW })), "signature_mismatch");
  });

  it("hex scheme: upper case, short, prefix tricks", async () => {
    const h = await signed();
    const hex = (h["X-CauseFlow-Signature"] as string).slice(7);
    for (const v of [`sha256=${hex.toUpperCase()}`, `sha256=${hex.slice(2)}`, hex, `sha1=${hex}`, `sha256=${hex}00`, `SHA256=${hex}`]) {
      assert.notEqual(await reason(verifyWebhookSignature(BODY, { "x-causeflow-signature": v }, SECRET)), "accepted", v);
    }
    assert.equal(await reason(verifyWebhookSignature(BODY, { "x-causeflow-signature": ` sha256=${hex} ` }, SECRET)), "accepted");
  });
});

describe("SseParser corner cases", () => {
  function all(chunks: string[]) {
    const p = new SseParser();
    const frames = chunks.flatMap((c) => p.feed(c));
    return { p, frames };
  }

  it("CRLF, LF and CR, split anywhere", () => {
    const text = "id: 1\r\ndata: a\r\n\r\nid: 2\ndata: b\n\nid: 3\rdata: c\r\r";
    const expected = [
      { event: "message", data: "a", id: "1" },
      { event: "message", data: "b", id: "2" },
      { event: "message", data: "c", id: "3" },
    ];
    for (let i = 0; i <= text.length; i += 1) {
      for (let j = i; j <= text.length; j += 1) {
        const { frames } = all([text.slice(0, i), text.slice(i, j), text.slice(j)]);
        assert.deepEqual(frames, expected, `split at ${i},${j}`);
      }
    }
  });

  it("retry, comments, NUL ids, no-data frames, field without colon", () => {
    const { p, frames } = all([
      ": hi\nretry: 3000\nretry: x\nretry: 12a\n\n",
      "id: a\0b\ndata\n\n",
      "event: e\nid: ok\n\n",
      "data:x\ndata: y\n\n",
    ]);
    assert.equal(p.retryMs, 3000);
    assert.deepEqual(frames, [
      { event: "message", data: "", id: undefined },
      { event: "message", data: "x\ny", id: undefined },
    ]);
  });

  it("multi-byte UTF-8 split between network chunks (decoded in stream mode)", () => {
    const bytes = new TextEncoder().encode("data: é—😀\n\n");
    for (let i = 0; i <= bytes.length; i += 1) {
      const d = new TextDecoder();
      const p = new SseParser();
      const frames = [
        ...p.feed(d.decode(bytes.slice(0, i), { stream: true })),
        ...p.feed(d.decode(bytes.slice(i), { stream: true })),
      ];
      assert.deepEqual(frames, [{ event: "message", data: "é—😀", id: undefined }], `at ${i}`);
    }
  });
});

describe("pagination and errors against a misbehaving server", () => {
  it("a server that answers the same cursor again does not loop forever", async () => {
    let calls = 0;
    const { fetch } = fakeFetch(() => {
      calls += 1;
      if (calls > 50) throw new Error("looping");
      return json(200, { items: [{ id: "inc_1" }], cursor: "same", count: 1 });
    });
    const client = new CauseFlowClient({ baseUrl: "http://x.test", apiKey: "k", fetch });
    await assert.rejects(client.incidents.list().toArray(), (e: Error) => e instanceof CauseFlowConnectionError && /again/.test(e.message));
    assert.ok(calls <= 3, `calls: ${calls}`);
  });

  it("a cycle of cursors (a, b, a) ends too, after yielding each page once", async () => {
    const next: Record<string, string> = { start: "a", a: "b", b: "a" };
    let calls = 0;
    const { fetch } = fakeFetch(({ url }) => {
      calls += 1;
      if (calls > 50) throw new Error("looping");
      const at = url.searchParams.get("cursor") ?? "start";
      return json(200, { items: [{ id: at }], cursor: next[at], count: 1 });
    });
    const client = new CauseFlowClient({ baseUrl: "http://x.test", apiKey: "k", fetch });
    const seen: string[] = [];
    const walk = async () => {
      for await (const item of client.incidents.list()) seen.push(item.id);
    };
    await assert.rejects(walk(), CauseFlowConnectionError);
    assert.deepEqual(seen, ["start", "a", "b"]);
  });

  it("a non-JSON error answer keeps its status and text", async () => {
    const { fetch } = fakeFetch(() => new Response("<html>Bad Gateway</html>", { status: 502, headers: { "Retry-After": "7" } }));
    const client = new CauseFlowClient({ baseUrl: "http://x.test", apiKey: "k", fetch });
    const error = await client.incidents.get("inc_1").catch((e: unknown) => e);
    assert.ok(error instanceof CauseFlowAPIError);
    assert.equal(error.status, 502);
    assert.equal(error.code, "http_502");
    assert.equal(error.retryAfter, 7);
    assert.match(error.message, /Bad Gateway/);
  });

  it("a JSON error answer that is not the error shape", async () => {
    for (const body of ["[]", "null", '{"error":{"code":"x"}}', '"text"', '{"error":"x"}']) {
      const { fetch } = fakeFetch(() => new Response(body, { status: 400 }));
      const client = new CauseFlowClient({ baseUrl: "http://x.test", apiKey: "k", fetch });
      const error = await client.incidents.get("inc_1").catch((e: unknown) => e);
      assert.ok(error instanceof CauseFlowAPIError, body);
      assert.equal(typeof error.code, "string");
      assert.equal(typeof error.body.message, "string");
    }
  });
});
