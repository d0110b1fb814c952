/**
 * Verifying a webhook delivery on the receiving side: `verifyWebhook(rawBody, headers, secrets)`.
 *
 * A delivery carries two signatures of the same raw body (docs/reference.md §5.5). When the
 * Standard Webhooks headers (`webhook-id`, `webhook-timestamp`, `webhook-signature`) are present
 * they decide, timestamp tolerance included; otherwise `X-CauseFlow-Signature` is checked (it
 * signs the body only, so it cannot tell a replay from a delivery). Several secrets may be given,
 * for a rotation. Signatures are checked by Web Crypto's `verify`, in constant time, and every
 * entry is checked against every secret so that timing says nothing about which one matched.
 * The same rules as the Python SDK's `causeflow_sdk.verify`; examples/receivers/vectors.json
 * holds the cases both must agree on.
 *
 * @module
 */

import {
  base64Decode,
  base64Encode,
  hexDecode,
  hexEncode,
  hmacSign,
  hmacVerify,
  ownBytes,
  utf8,
} from "./crypto.js";
import { WebhookVerificationError } from "./errors.js";
import type { Envelope } from "./generated/events.js";

/** How far `webhook-timestamp` may be from now, as the Standard Webhooks libraries allow. */
export const DEFAULT_TOLERANCE_SECONDS = 300;
/** The prefix of generated secrets; the rest is the base64 of the Standard Webhooks key. */
export const SECRET_PREFIX = "whsec_";

/** The body exactly as received: bytes (a Node.js Buffer is a Uint8Array), or their text. */
export type RawBody = string | Uint8Array | ArrayBuffer;

/** Request headers in any of the forms frameworks hand them over; names in any case. */
export type WebhookHeaders =
  | Headers
  | Iterable<readonly [string, string]>
  | Record<string, string | readonly string[] | undefined>;

export interface VerifyOptions {
  /** Seconds `webhook-timestamp` may be away from `now`, either way (default 300). */
  toleranceSeconds?: number;
  /** The receiver's clock: Unix seconds or a Date (default: now). */
  now?: number | Date;
}

/** Which signature verified: Standard Webhooks, or the hex `X-CauseFlow-Signature`. */
export type SignatureScheme = "standard" | "causeflow";

function lowered(headers: WebhookHeaders): Map<string, string> {
  const found = new Map<string, string>();
  const entries: Iterable<readonly [string, unknown]> =
    typeof (headers as Iterable<unknown>)[Symbol.iterator] === "function"
      ? (headers as Iterable<readonly [string, string]>)
      : Object.entries(headers);
  for (const [name, value] of entries) {
    if (value === undefined || value === null) continue;
    const text = Array.isArray(value) ? value.join(" ") : String(value);
    found.set(name.toLowerCase(), text);
  }
  return found;
}

/** The Standard Webhooks key of `secret`: the base64 after `whsec_`, else its UTF-8 bytes. */
export function standardKey(secret: string): Uint8Array {
  return keyOf(secret);
}

function keyOf(secret: string): Uint8Array<ArrayBuffer> {
  if (!secret.startsWith(SECRET_PREFIX)) {
    if (!secret) throw new TypeError("a signing secret must not be empty");
    return utf8(secret);
  }
  const key = base64Decode(secret.slice(SECRET_PREFIX.length));
  if (key === null) throw new TypeError("a secret starting with 'whsec_' must continue in base64");
  if (key.length === 0) throw new TypeError("a secret starting with 'whsec_' must not be empty");
  return key;
}

function secretList(secrets: string | readonly string[]): string[] {
  const items = typeof secrets === "string" ? [secrets] : [...secrets];
  if (items.length === 0) throw new TypeError("give at least one signing secret");
  for (const secret of items) keyOf(secret); // a malformed secret is a configuration error
  return items;
}

function bodyBytes(body: RawBody): Uint8Array<ArrayBuffer> {
  if (typeof body === "string") return utf8(body);
  if (body instanceof Uint8Array || body instanceof ArrayBuffer) return ownBytes(body);
  throw new TypeError("pass the raw request body (bytes or text), before any JSON parsing");
}

function standardMessage(id: string, timestamp: number, body: Uint8Array): Uint8Array<ArrayBuffer> {
  const prefix = utf8(`${id}.${timestamp}.`);
  const message = new Uint8Array(prefix.length + body.length);
  message.set(prefix);
  message.set(body, prefix.length);
  return message;
}

function nowSeconds(now: number | Date | undefined): number {
  if (now === undefined) return Date.now() / 1000;
  const seconds = now instanceof Date ? now.getTime() / 1000 : now;
  // NaN compares false with everything: it would let any timestamp through.
  if (!Number.isFinite(seconds)) throw new TypeError("now must be a valid Date or finite number");
  return seconds;
}

function toleranceOf(options: VerifyOptions): number {
  const tolerance = options.toleranceSeconds ?? DEFAULT_TOLERANCE_SECONDS;
  if (!(tolerance >= 0)) throw new TypeError("toleranceSeconds must be a number >= 0");
  return tolerance;
}

/**
 * Check the signature only; resolve to the scheme that matched. Rejects with
 * `WebhookVerificationError` when the request does not verify, and with a TypeError for
 * unusable secrets or options (a NaN clock or tolerance), or a body that is not raw.
 */
export async function verifyWebhookSignature(
  rawBody: RawBody,
  headers: WebhookHeaders,
  secrets: string | readonly string[],
  options: VerifyOptions = {},
): Promise<SignatureScheme> {
  const body = bodyBytes(rawBody);
  const keys = secretList(secrets);
  toleranceOf(options); // unusable options are configuration errors, whatever the headers
  nowSeconds(options.now);
  const found = lowered(headers);
  const signature = found.get("webhook-signature");
  if (signature !== undefined) {
    await checkStandard(body, found, signature, keys, options);
    return "standard";
  }
  const hex = found.get("x-causeflow-signature");
  if (hex !== undefined) {
    await checkHex(body, hex, keys);
    return "causeflow";
  }
  throw new WebhookVerificationError(
    "missing_signature",
    "missing signature headers (webhook-signature or X-CauseFlow-Signature)",
  );
}

async function checkStandard(
  body: Uint8Array<ArrayBuffer>,
  found: Map<string, string>,
  signature: string,
  secrets: string[],
  options: VerifyOptions,
): Promise<void> {
  const id = found.get("webhook-id");
  const stamp = found.get("webhook-timestamp")?.trim();
  if (!id || !stamp) {
    const missing = !id ? "webhook-id" : "webhook-timestamp";
    throw new WebhookVerificationError("missing_header", `missing ${missing} header`);
  }
  if (!/^\d+$/.test(stamp)) {
    throw new WebhookVerificationError("invalid_timestamp", "webhook-timestamp is not an integer");
  }
  const timestamp = Number(stamp);
  const tolerance = toleranceOf(options);
  const distance = nowSeconds(options.now) - timestamp;
  if (Math.abs(distance) > tolerance) {
    throw new WebhookVerificationError(
      "timestamp_out_of_tolerance",
      `webhook-timestamp is ${Math.trunc(distance)} s away from now (tolerance ` +
        `${Math.trunc(tolerance)} s): stale or replayed`,
    );
  }
  const message = standardMessage(id, timestamp, body);
  let matched = false;
  for (const entry of signature.split(/\s+/)) {
    const given = entry.startsWith("v1,") ? canonicalBase64(entry.slice(3)) : null;
    if (given === null) continue;
    for (const secret of secrets) {
      // No early exit: every pair is checked.
      matched = (await hmacVerify(keyOf(secret), given, message)) || matched;
    }
  }
  if (!matched) {
    throw new WebhookVerificationError(
      "signature_mismatch",
      "webhook-signature does not match any secret",
    );
  }
}

// The digest of an entry, or null when the entry is not the one encoding the sender produces
// (the Python SDK compares the text, so no other spelling of the same bytes may pass here).
function canonicalBase64(text: string): Uint8Array<ArrayBuffer> | null {
  const bytes = base64Decode(text);
  return bytes !== null && bytes.length === 32 && base64Encode(bytes) === text ? bytes : null;
}

async function checkHex(
  body: Uint8Array<ArrayBuffer>,
  header: string,
  secrets: string[],
): Promise<void> {
  const value = header.trim();
  const given = value.startsWith("sha256=") ? hexDecode(value.slice(7)) : null;
  let matched = false;
  if (given !== null && given.length === 32) {
    for (const secret of secrets) {
      matched = (await hmacVerify(utf8(secret), given, body)) || matched;
    }
  }
  if (!matched) {
    throw new WebhookVerificationError(
      "signature_mismatch",
      "X-CauseFlow-Signature does not match any secret",
    );
  }
}

const utf8Strict = new TextDecoder("utf-8", { fatal: true });

function envelopeOf(body: Uint8Array): Envelope {
  let parsed: unknown;
  try {
    parsed = JSON.parse(utf8Strict.decode(body));
  } catch {
    parsed = undefined;
  }
  if (!isEnvelope(parsed)) {
    throw new WebhookVerificationError(
      "invalid_body",
      "the signature is valid but the body is not a CauseFlow event",
    );
  }
  return parsed;
}

function isEnvelope(value: unknown): value is Envelope {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return false;
  const v = value as Record<string, unknown>;
  const strings = ["id", "event", "timestamp", "tenantId"].every((k) => typeof v[k] === "string");
  const data = typeof v.data === "object" && v.data !== null && !Array.isArray(v.data);
  const test = v.test === undefined || v.test === null || typeof v.test === "boolean";
  return strings && data && test;
}

/**
 * Verify a delivery and resolve to its event.
 *
 * `rawBody` is the request body exactly as received (bytes, or their text; never a parsed and
 * re-serialized object), `headers` the request headers (a `Headers`, Node.js's
 * `req.headers`, or any record, names in any case), `secrets` the subscription's secret or
 * several during a rotation. Rejects with `WebhookVerificationError` (answer 400 then).
 */
export async function verifyWebhook(
  rawBody: RawBody,
  headers: WebhookHeaders,
  secrets: string | readonly string[],
  options: VerifyOptions = {},
): Promise<Envelope> {
  await verifyWebhookSignature(rawBody, headers, secrets, options);
  return envelopeOf(bodyBytes(rawBody));
}

export interface SignOptions {
  /** The delivery id (`msg_…`), the same on every attempt. */
  webhookId: string;
  /** Unix seconds of the attempt (default: now). */
  timestamp?: number;
}

/**
 * The signature headers the service sends with `body` (docs/reference.md §5.4): for testing a
 * receiver. `secrets[0]` is the current secret; during a rotation the others sign too.
 */
export async function signWebhook(
  rawBody: RawBody,
  secrets: string | readonly string[],
  options: SignOptions,
): Promise<Record<string, string>> {
  const body = bodyBytes(rawBody);
  const keys = secretList(secrets);
  const timestamp = Math.trunc(options.timestamp ?? Date.now() / 1000);
  const message = standardMessage(options.webhookId, timestamp, body);
  const entries: string[] = [];
  for (const secret of keys) {
    entries.push("v1," + base64Encode(await hmacSign(keyOf(secret), message)));
  }
  const hex = hexEncode(await hmacSign(utf8(keys[0] as string), body));
  return {
    "X-CauseFlow-Signature": `sha256=${hex}`,
    "webhook-id": options.webhookId,
    "webhook-timestamp": String(timestamp),
    "webhook-signature": entries.join(" "),
  };
}
