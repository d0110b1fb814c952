// Against a real server: the client publishes an event, the service delivers it signed to a
// receiver on node:http, which verifies it with verifyWebhook; then retries, a rotation, the
// delivery search, statistics, subscription CRUD, pagination, idempotency and typed errors.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { type IncomingHttpHeaders, createServer } from "node:http";
import type { AddressInfo } from "node:net";

import {
  CauseFlowAPIError,
  type Envelope,
  SECRET_PREFIX,
  verifyWebhook,
} from "../../src/index.js";
import { clientFromEnv, run, waitFor } from "./support.js";

interface Received {
  headers: IncomingHttpHeaders;
  body: Buffer;
}

function newSecret(): string {
  return SECRET_PREFIX + randomBytes(32).toString("base64");
}

/** A receiver that keeps what it gets and answers 204 to what verifies with `secrets()`. */
async function receiver(secrets: () => string[]) {
  const received: Received[] = [];
  const verified: Envelope[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (chunk: Buffer) => chunks.push(chunk));
    req.on("end", () => {
      const body = Buffer.concat(chunks);
      received.push({ headers: req.headers, body });
      verifyWebhook(body, req.headers, secrets()).then(
        (event) => {
          verified.push(event);
          res.writeHead(204).end();
        },
        () => res.writeHead(400).end(),
      );
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}/hooks`, received, verified, close: () => server.close() };
}

async function main(): Promise<void> {
  const cf = clientFromEnv();
  const secret = newSecret();
  let accepted = [secret];
  const hooks = await receiver(() => accepted);
  try {
    const sub = await cf.webhookSubscriptions.create(
      { url: hooks.url, events: ["investigation.*"], secret, description: "ts sdk" },
      { idempotencyKey: `sub-${secret}` },
    );
    assert.equal(sub.secret, secret);
    const again = await cf.webhookSubscriptions.create(
      { url: hooks.url, events: ["investigation.*"], secret, description: "ts sdk" },
      { idempotencyKey: `sub-${secret}` },
    );
    assert.equal(again.id, sub.id, "the same Idempotency-Key gets the stored answer");

    const incident = await cf.incidents.create({ title: "Checkout is slow — p99 at 2.4 s", severity: "high" });
    const data = { incidentId: incident.id, message: "reading logs", agentName: "ts", stepIndex: 1, totalSteps: 3 };
    const published = await cf.events.publish("investigation.progress", data, { idempotencyKey: `evt-${secret}` });
    const replayed = await cf.events.publish("investigation.progress", data, { idempotencyKey: `evt-${secret}` });
    assert.equal(replayed.id, published.id);
    assert.equal(published.data.incidentId, incident.id);

    // The delivery arrives signed and verifies with the subscription's secret.
    const event = await waitFor("the verified delivery", async () => hooks.verified.find((e) => e.id === published.id));
    assert.deepEqual(event, published);
    const first = hooks.received.find((r) => r.body.toString("utf8").includes(published.id)) as Received;
    await assert.rejects(verifyWebhook(first.body, first.headers, [newSecret()]), { name: "WebhookVerificationError" });
    const tampered = Buffer.from(first.body.toString("utf8").replace("reading logs", "reading lies"));
    await assert.rejects(verifyWebhook(tampered, first.headers, [secret]), { reason: "signature_mismatch" });

    // The delivery search, its detail, the subscription's deliveries and statistics.
    const found = await cf.deliveries.list({ eventId: published.id }).toArray();
    assert.equal(found.length, 1);
    const delivery = found[0]!;
    assert.equal(delivery.subscriptionId, sub.id);
    assert.equal(delivery.id, first.headers["webhook-id"]);
    const detail = await waitFor("a succeeded delivery", async () => {
      const d = await cf.deliveries.get(delivery.id);
      return d.status === "succeeded" ? d : undefined;
    });
    assert.equal(detail.attemptLog.length, 1);
    assert.equal(detail.attemptLog[0]?.statusCode, 204);
    const ofSub = await cf.webhookSubscriptions.deliveries(sub.id, { event: ["investigation.progress"] }).toArray();
    assert.deepEqual(ofSub.map((d) => d.id), [delivery.id]);
    const stats = await cf.webhookSubscriptions.stats(sub.id);
    assert.equal(stats.subscriptionId, sub.id);
    assert.ok(stats.lastHour.attempts >= 1 && stats.lastHour.succeeded >= 1);

    // A retry is the same delivery again: same webhook-id, verified again.
    await cf.deliveries.retry(delivery.id, { idempotencyKey: `retry-${secret}` });
    await waitFor("the retried delivery", async () =>
      hooks.received.filter((r) => r.headers["webhook-id"] === delivery.id).length === 2 ? true : undefined);

    // A rotation: the old secret keeps signing during the overlap, the new one signs too.
    const rotated = await cf.webhookSubscriptions.rotateSecret(sub.id);
    assert.notEqual(rotated.secret, secret);
    const test = await cf.webhookSubscriptions.test(sub.id, { event: "investigation.completed" });
    const testCall = await waitFor("the test delivery", async () => hooks.received.find((r) => r.headers["webhook-id"] === test.id));
    const viaOld = await verifyWebhook(testCall.body, testCall.headers, [secret]);
    const viaNew = await verifyWebhook(testCall.body, testCall.headers, [rotated.secret]);
    assert.equal(viaOld.test, true);
    assert.equal(viaNew.event, "investigation.completed");
    accepted = [rotated.secret];

    // Subscription CRUD and pagination.
    const patched = await cf.webhookSubscriptions.update(sub.id, { description: null, enabled: true });
    assert.equal(patched.description, null);
    assert.ok((await cf.webhookSubscriptions.list({ limit: 1 }).toArray()).some((s) => s.id === sub.id));
    const made = [];
    for (const n of [1, 2, 3]) made.push((await cf.incidents.create({ title: `paged ${n}`, severity: "low" })).id);
    const pages = [];
    for await (const page of cf.incidents.list({ severity: ["low"], limit: 2 }).pages()) pages.push(page.items.map((i) => i.id));
    assert.ok(pages.length >= 2, "more than one page");
    const walked = [];
    for await (const item of cf.incidents.list({ severity: "low", limit: 2, sort: "createdAt" })) walked.push(item.id);
    assert.deepEqual(walked.slice(-3), made);
    const full = await cf.incidents.get(incident.id);
    assert.ok(full.events.some((e) => e.id === published.id));
    const moved = await cf.incidents.update(incident.id, { status: "resolved" });
    assert.equal(moved.status, "resolved");

    // Errors in the service's shape.
    await cf.webhookSubscriptions.delete(sub.id);
    const gone = await cf.webhookSubscriptions.get(sub.id).catch((e: unknown) => e);
    assert.ok(gone instanceof CauseFlowAPIError && gone.status === 404 && gone.code === "subscription_not_found", String(gone));
    const invalid = await cf.incidents.create({ title: "", severity: "high" }).catch((e: unknown) => e);
    assert.ok(invalid instanceof CauseFlowAPIError && invalid.code === "validation_error");
    assert.deepEqual(invalid.fieldErrors.map((f) => f.path), ["title"]);
    const expired = await cf.events.list({ after: "evt_01M86BJ2JKYYK596NGYA1DQ91K" }).page().catch((e: unknown) => e);
    assert.ok(expired instanceof CauseFlowAPIError && expired.status === 410 && expired.code === "cursor_expired");
  } finally {
    hooks.close();
  }
}

run(main);
