// A CauseFlow webhook receiver in plain Node.js (node:http, node:crypto; no packages).
//
//   CAUSEFLOW_WEBHOOK_SECRET=whsec_… node examples/receivers/node/receiver.mjs [PORT]
//   node examples/receivers/node/receiver.mjs --selftest [VECTORS_JSON]
//
// CAUSEFLOW_WEBHOOK_SECRET may hold several secrets separated by commas (a rotation). A verified
// delivery is answered 204 and printed; one whose webhook-id was seen before is answered 204 and
// not processed again; anything else is answered 400. See docs/receivers.md.
import { createHmac, timingSafeEqual } from "node:crypto";
import { readFileSync } from "node:fs";
import { createServer } from "node:http";

const TOLERANCE_SECONDS = 300;
const SEEN_LIMIT = 10000; // ids kept in memory; a real receiver stores them (docs/receivers.md §4)

// Standard Webhooks key: the base64 after `whsec_`, else the secret's UTF-8 bytes.
function standardKey(secret) {
  if (!secret.startsWith("whsec_")) return Buffer.from(secret, "utf8");
  const rest = secret.slice("whsec_".length);
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(rest)) throw new Error("a whsec_ secret must continue in base64");
  return Buffer.from(rest, "base64");
}

export function hexSignature(secret, body) {
  return "sha256=" + createHmac("sha256", Buffer.from(secret, "utf8")).update(body).digest("hex");
}

export function standardSignature(secret, id, timestamp, body) {
  const mac = createHmac("sha256", standardKey(secret));
  mac.update(`${id}.${timestamp}.`, "utf8");
  mac.update(body);
  return "v1," + mac.digest("base64");
}

function same(a, b) {
  const x = Buffer.from(a, "utf8");
  const y = Buffer.from(b, "utf8");
  return x.length === y.length && timingSafeEqual(x, y);
}

// Throws an Error saying why unless `body` (a Buffer) verifies with one of `secrets`.
export function verify(body, headers, secrets, now = Date.now() / 1000) {
  const h = {};
  for (const [name, value] of Object.entries(headers)) h[name.toLowerCase()] = String(value);
  const signature = h["webhook-signature"];
  if (signature === undefined) {
    const hex = h["x-causeflow-signature"];
    if (hex === undefined) throw new Error("no signature header");
    if (!secrets.some((s) => same(hexSignature(s, body), hex.trim()))) {
      throw new Error("X-CauseFlow-Signature does not match");
    }
    return "causeflow";
  }
  const id = h["webhook-id"];
  const stamp = (h["webhook-timestamp"] ?? "").trim();
  if (!id || !/^\d+$/.test(stamp)) throw new Error("missing webhook-id or webhook-timestamp");
  const timestamp = Number(stamp);
  if (Math.abs(now - timestamp) > TOLERANCE_SECONDS) throw new Error("timestamp outside tolerance");
  const expected = secrets.map((s) => standardSignature(s, id, timestamp, body));
  let matched = false;
  for (const entry of signature.split(" ")) {
    if (!entry.startsWith("v1,")) continue;
    for (const candidate of expected) matched = same(candidate, entry) || matched;
  }
  if (!matched) throw new Error("webhook-signature does not match");
  return "standard";
}

function selftest(path) {
  const doc = JSON.parse(readFileSync(path, "utf8"));
  const failed = [];
  for (const v of doc.vectors) {
    const body = Buffer.from(v.body, "utf8");
    const std = v.secrets.map((s) => standardSignature(s, v.webhookId, v.timestamp, body)).join(" ");
    if (hexSignature(v.secrets[0], body) !== v.headers["X-CauseFlow-Signature"] ||
        std !== v.headers["webhook-signature"]) failed.push("signing: " + v.name);
  }
  for (const c of doc.checks) {
    let accepted = true;
    try {
      verify(Buffer.from(c.body, "utf8"), c.headers, c.secrets, c.now);
    } catch {
      accepted = false;
    }
    if (accepted !== c.valid) failed.push("check: " + c.name);
  }
  const total = doc.vectors.length + doc.checks.length;
  for (const name of failed) console.log("FAILED", name);
  console.log(`selftest: ${total - failed.length} of ${total} vectors and checks agree`);
  return failed.length ? 1 : 0;
}

function serve(port, secrets) {
  const seen = new Set();
  const server = createServer((req, res) => {
    const chunks = [];
    req.on("data", (chunk) => chunks.push(chunk));
    req.on("end", () => {
      const body = Buffer.concat(chunks);
      let event;
      try {
        verify(body, req.headers, secrets);
        event = JSON.parse(body.toString("utf8"));
      } catch (err) {
        console.log("rejected:", err.message);
        res.writeHead(400).end();
        return;
      }
      const delivery = req.headers["webhook-id"] ?? req.headers["x-causeflow-delivery"];
      res.writeHead(204).end(); // answer first, then work (here: print)
      if (seen.has(delivery)) return console.log("duplicate", delivery);
      seen.add(delivery);
      if (seen.size > SEEN_LIMIT) seen.delete(seen.values().next().value);
      console.log("verified", event.event, event.id, delivery);
    });
  });
  server.listen(port, "127.0.0.1", () => {
    console.log(`listening on http://127.0.0.1:${server.address().port}/hooks`);
  });
}

const args = process.argv.slice(2);
if (args[0] === "--selftest") {
  process.exit(selftest(args[1] ?? new URL("../vectors.json", import.meta.url)));
} else if (!process.env.CAUSEFLOW_WEBHOOK_SECRET) {
  console.error("set CAUSEFLOW_WEBHOOK_SECRET (several: comma-separated)");
  process.exit(2);
} else {
  serve(Number(args[0] ?? 3000), process.env.CAUSEFLOW_WEBHOOK_SECRET.split(","));
}
