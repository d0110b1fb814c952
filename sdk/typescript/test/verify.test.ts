// verifyWebhook against every vector and check of examples/receivers/vectors.json, plus
// tampering, stale and future timestamps, rotation, header and body forms, and bad secrets.
import assert from "node:assert/strict";
import { describe, it } from "node:test";

import {
  WebhookVerificationError,
  signWebhook,
  standardKey,
  verifyWebhook,
  verifyWebhookSignature,
} from "../src/index.js";
import { readJson } from "./helpers.js";

interface Vector {
  name: string;
  secrets: string[];
  webhookId: string;
  timestamp: number;
  body: string;
  headers: Record<string, string>;
}
interface Check {
  name: string;
  secrets: string[];
  now: number;
  body: string;
  headers: Record<string, string>;
  valid: boolean;
}
const doc = readJson<{ vectors: Vector[]; checks: Check[]; toleranceSeconds: number }>(
  "examples/receivers/vectors.json",
);
const first = doc.vectors[0] as Vector;
const SECRET = first.secrets[0] as string;
const NEW_SECRET = "whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

async function refusal(promise: Promise<unknown>): Promise<WebhookVerificationError> {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof WebhookVerificationError, String(error));
    return error;
  }
  assert.fail("expected a WebhookVerificationError");
}

describe("the vectors", () => {
  it("has checks and vectors to run", () => {
    assert.equal(doc.toleranceSeconds, 300);
    assert.ok(doc.checks.length >= 20 && doc.vectors.length >= 3);
  });

  for (const check of doc.checks) {
    it(`${check.valid ? "accepts" : "refuses"}: ${check.name}`, async () => {
      const body = Buffer.from(check.body, "utf8");
      const verdict = verifyWebhook(body, check.headers, check.secrets, { now: check.now });
      if (check.valid) {
        const event = await verdict;
        assert.equal(event.id, JSON.parse(check.body).id);
      } else {
        await refusal(verdict);
      }
    });
  }

  for (const vector of doc.vectors) {
    it(`signs as the service does: ${vector.name}`, async () => {
      const headers = await signWebhook(vector.body, vector.secrets, {
        webhookId: vector.webhookId,
        timestamp: vector.timestamp,
      });
      for (const name of ["X-CauseFlow-Signature", "webhook-id", "webhook-timestamp", "webhook-signature"]) {
        assert.equal(headers[name], vector.headers[name], name);
      }
    });
  }
});

describe("verifyWebhook", () => {
  const now = first.timestamp;

  it("returns the parsed envelope, from bytes, text, an ArrayBuffer or Headers", async () => {
    const bytes = new TextEncoder().encode(first.body);
    for (const body of [first.body, bytes, bytes.buffer.slice(0), Buffer.from(bytes)]) {
      const event = await verifyWebhook(body, first.headers, SECRET, { now });
      assert.equal(event.event, "incident.created");
      if (event.event === "incident.created") assert.equal(event.data.severity, "high");
    }
    const headers = new Headers(first.headers);
    assert.equal((await verifyWebhook(first.body, headers, [SECRET], { now })).tenantId,
      "ten_01JD8X5Q3N4M2K1H0G9F8E7D6B");
    assert.equal(await verifyWebhookSignature(first.body, headers, SECRET, { now }), "standard");
  });

  it("refuses a tampered body, id or signature", async () => {
    const tampered = first.body.replace('"high"', '"low" ');
    assert.equal((await refusal(verifyWebhook(tampered, first.headers, SECRET, { now }))).reason,
      "signature_mismatch");
    const otherId = { ...first.headers, "webhook-id": "msg_01JD8X5Q4B2C3D4E5F6G7H8J9L" };
    await refusal(verifyWebhook(first.body, otherId, SECRET, { now }));
    const sig = first.headers["webhook-signature"] as string;
    // The same digest spelled differently (no padding) is not what the service sends.
    const unpadded = { ...first.headers, "webhook-signature": sig.replace(/=$/, "") };
    await refusal(verifyWebhook(first.body, unpadded, SECRET, { now }));
    const flipped = sig.slice(0, 10) + (sig[10] === "A" ? "B" : "A") + sig.slice(11);
    await refusal(verifyWebhook(first.body, { ...first.headers, "webhook-signature": flipped }, SECRET, { now }));
  });

  it("refuses timestamps outside the tolerance, either way, and honours a custom one", async () => {
    for (const offset of [301, -301, 86_400]) {
      const error = await refusal(verifyWebhook(first.body, first.headers, SECRET, { now: now + offset }));
      assert.equal(error.reason, "timestamp_out_of_tolerance");
    }
    await verifyWebhook(first.body, first.headers, SECRET, { now: now + 300 });
    await verifyWebhook(first.body, first.headers, SECRET, { now: new Date((now - 300) * 1000) });
    await refusal(verifyWebhook(first.body, first.headers, SECRET, { now: now + 11, toleranceSeconds: 10 }));
    // The real clock: these vectors are dated, so they are stale (or early) now.
    await refusal(verifyWebhook(first.body, first.headers, SECRET));
  });

  it("accepts during a rotation with the old, the new or both secrets, refuses others", async () => {
    const id = "msg_01JD8X5Q4B2C3D4E5F6G7H8J9M";
    const headers = await signWebhook(first.body, [NEW_SECRET, SECRET], { webhookId: id, timestamp: now });
    for (const secrets of [[SECRET], [NEW_SECRET], [NEW_SECRET, SECRET], [SECRET, NEW_SECRET]]) {
      await verifyWebhook(first.body, headers, secrets, { now });
    }
    await refusal(verifyWebhook(first.body, headers, ["your-signing-secret"], { now }));
    // The hex scheme alone is made with the current (new) secret only.
    const hexOnly = { "X-CauseFlow-Signature": headers["X-CauseFlow-Signature"] as string };
    assert.equal(await verifyWebhookSignature(first.body, hexOnly, [SECRET, NEW_SECRET]), "causeflow");
    await refusal(verifyWebhook(first.body, hexOnly, SECRET));
  });

  it("says what is missing", async () => {
    const { "webhook-id": _id, ...noId } = first.headers;
    assert.equal((await refusal(verifyWebhook(first.body, noId, SECRET, { now }))).reason, "missing_header");
    const bad = { ...first.headers, "webhook-timestamp": "12e3" };
    assert.equal((await refusal(verifyWebhook(first.body, bad, SECRET, { now }))).reason, "invalid_timestamp");
    assert.equal((await refusal(verifyWebhook(first.body, {}, SECRET, { now }))).reason, "missing_signature");
  });

  it("refuses a genuine signature over something that is not an event", async () => {
    for (const body of ['{"hello": "world"}', "not json", "[1,2]"]) {
      const headers = await signWebhook(body, SECRET, { webhookId: "msg_x", timestamp: now });
      assert.equal(await verifyWebhookSignature(body, headers, SECRET, { now }), "standard");
      assert.equal((await refusal(verifyWebhook(body, headers, SECRET, { now }))).reason, "invalid_body");
    }
  });

  it("treats unusable secrets and parsed bodies as programming errors", async () => {
    await assert.rejects(verifyWebhook(first.body, first.headers, [], { now }), TypeError);
    await assert.rejects(verifyWebhook(first.body, first.headers, "whsec_!!!", { now }), TypeError);
    await assert.rejects(verifyWebhook(first.body, first.headers, "", { now }), TypeError);
    const parsed = JSON.parse(first.body) as unknown as string;
    await assert.rejects(verifyWebhook(parsed, first.headers, SECRET, { now }), TypeError);
    assert.equal(standardKey("whsec_AAECAw").length, 4); // missing padding is tolerated
  });
});
