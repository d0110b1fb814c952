// CauseFlowClient over a fake fetch: requests as the API wants them (paths, queries,
// credentials, bodies, Idempotency-Key), pagination, and errors in the service's shape.
import assert from "node:assert/strict";
import { describe, it } from "node:test";

import {
  CauseFlowAPIError,
  CauseFlowClient,
  CauseFlowConnectionError,
  type Incident,
} from "../src/index.js";
import { fakeFetch, json } from "./helpers.js";

const BASE = "http://causeflow.test/";

function incident(n: number): Incident {
  return {
    id: `inc_${String(n).padStart(26, "0")}`,
    title: `incident ${n}`,
    description: null,
    severity: "high",
    status: "open",
    source: "manual",
    fingerprint: null,
    service: null,
    environment: null,
    alertCount: 0,
    createdAt: "2026-11-27T08:42:53.123Z",
    updatedAt: "2026-11-27T08:42:53.123Z",
    resolvedAt: null,
  };
}

describe("pagination", () => {
  it("walks every page as the loop goes, passing the cursor back", async () => {
    const all = [1, 2, 3, 4, 5].map(incident);
    const { fetch, seen } = fakeFetch(({ url }) => {
      const start = Number(url.searchParams.get("cursor") ?? "0");
      const items = all.slice(start, start + 2);
      const next = start + 2 < all.length ? String(start + 2) : null;
      return json(200, { items, cursor: next, count: items.length });
    });
    const cf = new CauseFlowClient({ baseUrl: BASE, apiKey: "cflo_k", fetch });
    const got: string[] = [];
    for await (const item of cf.incidents.list({ status: ["open", "triaging"], limit: 2 })) {
      got.push(item.id);
      if (got.length === 1) assert.equal(seen.length, 1, "the second page waits for the loop");
    }
    assert.deepEqual(got, all.map((i) => i.id));
    assert.deepEqual(seen.map((r) => r.url.searchParams.get("cursor")), [null, "2", "4"]);
    assert.equal(seen[0]?.url.pathname, "/v1/incidents");
    assert.equal(seen[0]?.url.searchParams.get("status"), "open,triaging");
    assert.equal(seen[0]?.url.searchParams.get("limit"), "2");
    assert.equal(seen[0]?.headers.get("x-api-key"), "cflo_k");

    const pages = [];
    for await (const page of cf.incidents.list({ limit: 2 }).pages()) pages.push(page.count);
    assert.deepEqual(pages, [2, 2, 1]);
    assert.equal((await cf.incidents.list().toArray(3)).length, 3);
  });

  it("stops on an empty page even if a cursor came with it", async () => {
    const { fetch, seen } = fakeFetch(() => json(200, { items: [], cursor: "again", count: 0 }));
    const cf = new CauseFlowClient({ baseUrl: BASE, fetch });
    assert.deepEqual(await cf.deliveries.list().toArray(), []);
    assert.equal(seen.length, 1);
  });
});

describe("requests", () => {
  it("sends bodies, Idempotency-Key, a bearer token and encoded ids", async () => {
    const { fetch, seen } = fakeFetch(({ method }) => (method === "DELETE" ? new Response(null, { status: 204 }) : json(201, { id: "x" })));
    const cf = new CauseFlowClient({ baseUrl: BASE, token: "jwt.token.here", fetch });
    await cf.events.publish("investigation.progress", {
      incidentId: "inc_01JD8X5Q3N4M2K1H0G9F8E7D6A",
      message: "looking",
      agentName: "a",
      stepIndex: 1,
      totalSteps: 2,
    }, { idempotencyKey: "k-1", test: true });
    await cf.webhookSubscriptions.rotateSecret("sub_1/..", {}, { idempotencyKey: "k-2" });
    assert.equal(await cf.webhookSubscriptions.delete("sub_1"), undefined);
    await cf.deliveries.list({ since: new Date(Date.UTC(2026, 10, 27)), event: ["a.b", "c.d"] }).page();
    const [publish, rotate, del, search] = seen;
    assert.equal(publish?.method, "POST");
    assert.equal(publish?.headers.get("authorization"), "Bearer jwt.token.here");
    assert.equal(publish?.headers.get("idempotency-key"), "k-1");
    assert.equal(publish?.headers.get("content-type"), "application/json");
    assert.deepEqual(JSON.parse(publish?.body ?? ""), {
      event: "investigation.progress",
      data: {
        incidentId: "inc_01JD8X5Q3N4M2K1H0G9F8E7D6A",
        message: "looking",
        agentName: "a",
        stepIndex: 1,
        totalSteps: 2,
      },
      test: true,
    });
    assert.equal(rotate?.url.pathname, "/v1/webhook-subscriptions/sub_1%2F../rotate-secret");
    assert.equal(rotate?.headers.get("idempotency-key"), "k-2");
    assert.equal(del?.method, "DELETE");
    assert.equal(search?.url.searchParams.get("since"), "2026-11-27T00:00:00.000Z");
    assert.equal(search?.url.searchParams.get("event"), "a.b,c.d");
  });

  it("refuses two credentials", () => {
    assert.throws(() => new CauseFlowClient({ baseUrl: BASE, apiKey: "a", token: "b" }), TypeError);
  });
});

describe("errors", () => {
  it("are CauseFlowAPIError in the service's shape", async () => {
    const body = {
      error: "validation_error",
      message: "the request is not valid",
      details: { errors: [{ path: "severity", message: "Input should be 'critical'" }] },
    };
    const { fetch } = fakeFetch(() => json(422, body));
    const cf = new CauseFlowClient({ baseUrl: BASE, fetch });
    const error = await cf.incidents.create({ title: "t", severity: "high" }).catch((e: unknown) => e);
    assert.ok(error instanceof CauseFlowAPIError);
    assert.equal(error.status, 422);
    assert.equal(error.code, "validation_error");
    assert.equal(error.message, "422 validation_error: the request is not valid");
    assert.deepEqual(error.fieldErrors, body.details.errors);
    assert.deepEqual(error.body, body);
  });

  it("carry Retry-After, and a code for answers that are not in the shape", async () => {
    const answers = [
      json(429, { error: "rate_limit_exceeded", message: "slow down" }, { "Retry-After": "7" }),
      new Response("<html>bad gateway</html>", { status: 502 }),
    ];
    const { fetch } = fakeFetch(() => answers.shift() as Response);
    const cf = new CauseFlowClient({ baseUrl: BASE, fetch });
    const limited = await cf.deliveries.get("msg_1").catch((e: unknown) => e);
    assert.ok(limited instanceof CauseFlowAPIError && limited.retryAfter === 7);
    const gateway = await cf.deliveries.get("msg_1").catch((e: unknown) => e);
    assert.ok(gateway instanceof CauseFlowAPIError);
    assert.equal(gateway.code, "http_502");
    assert.equal(gateway.details, undefined);
  });

  it("are CauseFlowConnectionError without an answer, or on a timeout", async () => {
    const refused = new CauseFlowClient({
      baseUrl: BASE,
      fetch: async () => {
        throw new TypeError("fetch failed", { cause: new Error("connect ECONNREFUSED") });
      },
    });
    const error = await refused.incidents.get("inc_1").catch((e: unknown) => e);
    assert.ok(error instanceof CauseFlowConnectionError);
    assert.match(error.message, /ECONNREFUSED/);

    const hanging = new CauseFlowClient({
      baseUrl: BASE,
      timeoutMs: 50,
      fetch: (_url, init) =>
        new Promise((_resolve, reject) => {
          init?.signal?.addEventListener("abort", () => reject(init.signal?.reason));
        }),
    });
    const late = await hanging.incidents.get("inc_1").catch((e: unknown) => e);
    assert.ok(late instanceof CauseFlowConnectionError);
    assert.match(late.message, /timed out/);

    const notJson = new CauseFlowClient({ baseUrl: BASE, fetch: async () => new Response("<html>") });
    assert.ok((await notJson.incidents.get("inc_1").catch((e: unknown) => e)) instanceof CauseFlowConnectionError);
  });

  it("let the caller's own abort through as it is", async () => {
    const controller = new AbortController();
    const cf = new CauseFlowClient({
      baseUrl: BASE,
      fetch: (_url, init) =>
        new Promise((_resolve, reject) => {
          init?.signal?.addEventListener("abort", () => reject(init.signal?.reason));
        }),
    });
    const pending = cf.incidents.get("inc_1", { signal: controller.signal });
    controller.abort(new Error("user gave up"));
    await assert.rejects(pending, /user gave up/);
  });
});
