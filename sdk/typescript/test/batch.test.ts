// events.publishBatch over a fake fetch: the body and headers POST /v1/events/batch wants, the
// envelopes in the order given, and a refused batch rejecting with the service's error.
import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { type BatchEvent, CauseFlowAPIError, CauseFlowClient } from "../src/index.js";
import { fakeFetch, json } from "./helpers.js";

const BASE = "http://causeflow.test/";
const INCIDENT = "inc_01JD8X5Q3N4M2K1H0G9F8E7D6A";

function envelope(index: number, event: BatchEvent) {
  return {
    id: `evt_${String(index).padStart(26, "0")}`,
    event: event.event,
    timestamp: "2026-11-27T08:42:53.123Z",
    tenantId: "ten_01JD8X5Q3N4M2K1H0G9F8E7D6A",
    data: event.data,
  };
}

const EVENTS: BatchEvent[] = [
  {
    event: "investigation.progress",
    data: { incidentId: INCIDENT, message: "looking", agentName: "a", stepIndex: 1, totalSteps: 2 },
  },
  { event: "knowledge.pattern_extracted", data: { patternId: "ptn_1", incidentId: INCIDENT, summary: "s" }, test: true },
];

describe("events.publishBatch", () => {
  it("posts the events in one request and resolves to their envelopes in order", async () => {
    const { fetch, seen } = fakeFetch(() =>
      json(200, { items: EVENTS.map((e, index) => ({ index, status: 201, event: envelope(index, e) })) }),
    );
    const cf = new CauseFlowClient({ baseUrl: BASE, apiKey: "cflo_key", fetch });
    const published = await cf.events.publishBatch(EVENTS, { idempotencyKey: "batch-1" });
    assert.deepEqual(
      published.map((e) => e.event),
      ["investigation.progress", "knowledge.pattern_extracted"],
    );
    assert.equal(published[1]?.id, envelope(1, EVENTS[1]!).id);
    const [request] = seen;
    assert.equal(request?.method, "POST");
    assert.equal(request?.url.pathname, "/v1/events/batch");
    assert.equal(request?.headers.get("idempotency-key"), "batch-1");
    assert.deepEqual(JSON.parse(request?.body ?? ""), {
      events: [
        { event: EVENTS[0]!.event, data: EVENTS[0]!.data },
        { event: EVENTS[1]!.event, data: EVENTS[1]!.data, test: true },
      ],
    });
  });

  it("rejects with the service's error when the batch is refused", async () => {
    const body = {
      error: "validation_error",
      message: "events of the batch are not valid; none was published",
      details: { errors: [{ path: "events.1.data.summary", message: "Field required" }] },
    };
    const { fetch } = fakeFetch(() => json(422, body));
    const cf = new CauseFlowClient({ baseUrl: BASE, apiKey: "cflo_key", fetch });
    await assert.rejects(cf.events.publishBatch(EVENTS), (error: unknown) => {
      assert.ok(error instanceof CauseFlowAPIError);
      assert.equal(error.status, 422);
      assert.deepEqual(error.details, body.details);
      return true;
    });
  });
});
