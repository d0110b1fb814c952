// Against a real server: the stream follows the log across a restart of the server (the test
// stops it and starts it again on the same data and port when asked), resuming with
// Last-Event-ID so that every event arrives exactly once; a reset for an unknown resume point;
// and a browser-style stream authenticated by tickets alone.
import assert from "node:assert/strict";

import { CauseFlowClient, type Envelope, StreamReset } from "../../src/index.js";
import { ask, clientFromEnv, env, run, within } from "./support.js";

const FAST = { backoff: { baseMs: 100, maxMs: 500 } };

function userData(n: number) {
  return { userId: `usr_01JD8X5Q3N4M2K1H0G9F8E7D${String(n).padStart(2, "0")}`, email: `u${n}@example.com`, role: "member" as const };
}

async function acrossRestart(cf: CauseFlowClient): Promise<void> {
  let n = 0;
  const publish = async () => (await cf.events.publish("user.created", userData((n += 1)), { test: true })).id;
  const connects: (string | undefined)[] = [];
  const stream = cf.stream({ ...FAST, events: ["user.created"], onConnect: (last) => connects.push(last) });
  const items = stream[Symbol.asyncIterator]();
  const next = async () => {
    const item = await within(20_000, "the next event", items.next());
    assert.ok(!item.done && !(item.value instanceof StreamReset), "an event");
    return (item.value as Envelope).id;
  };
  const first = next();
  while (connects.length === 0) await new Promise((resolve) => setTimeout(resolve, 20));
  const before = [await publish(), await publish(), await publish()];
  const received = [await first, await next(), await next()];
  // The iterator runs only when asked for the next item: the restart cuts its connection and
  // these events are committed before it reconnects, so they can reach it only by replay.
  assert.equal(await ask("restart"), "restarted");
  const after = [await publish(), await publish(), await publish()];
  assert.deepEqual(connects, [undefined], "not back yet");
  received.push(await next(), await next(), await next());
  const live = await publish();
  received.push(await next());
  stream.close();
  assert.deepEqual(received, [...before, ...after, live], "every event once, in order");
  assert.deepEqual(connects, [undefined, before[2]], "resumed from the last event seen");
}

async function reset(cf: CauseFlowClient): Promise<void> {
  const unknown = "evt_01M86BJ2JKYYK596NGYA1DQ91K";
  const stream = cf.stream({ ...FAST, events: ["trigger.created"], lastEventId: unknown });
  const first = await within(10_000, "the reset", stream[Symbol.asyncIterator]().next());
  stream.close();
  assert.ok(first.value instanceof StreamReset);
  assert.equal(first.value.reason, "cursor_expired");
  assert.equal(first.value.lastEventId, unknown);
}

async function withTickets(cf: CauseFlowClient): Promise<void> {
  // A page holds no key: it asks its backend (here: `cf`) for tickets.
  const page = new CauseFlowClient({ baseUrl: env("CAUSEFLOW_URL") });
  const refused = await page.incidents.list().page().catch((e: unknown) => e);
  assert.equal((refused as { status?: number }).status, 401);
  let tickets = 0;
  const connected: (string | undefined)[] = [];
  const stream = page.stream({
    ...FAST,
    events: ["user.deleted"],
    ticket: () => {
      tickets += 1;
      return cf.createStreamTicket();
    },
    onConnect: (last) => connected.push(last),
  });
  const items = stream[Symbol.asyncIterator]();
  const first = items.next();
  while (connected.length === 0) await new Promise((resolve) => setTimeout(resolve, 20));
  const sent = await cf.events.publish("user.deleted", { userId: userData(99).userId, email: "gone@example.com" }, { test: true });
  const got = await within(10_000, "the ticket stream's event", first);
  stream.close();
  assert.equal((got.value as Envelope).id, sent.id);
  assert.equal(tickets, 1);
}

run(async () => {
  const cf = clientFromEnv();
  await reset(cf);
  await withTickets(cf);
  await acrossRestart(cf);
});
