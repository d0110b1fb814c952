/**
 * Web Crypto and byte helpers shared by webhook verification and signing.
 *
 * Web Crypto (`crypto.subtle`) is the one HMAC implementation that browsers and Node.js share.
 * Node.js 18 keeps it in `node:crypto` rather than on `globalThis` (a global from Node.js 19 on),
 * so it is looked up there as a fallback; browsers offer it in secure contexts (https, localhost).
 *
 * @module
 */

let located: Promise<SubtleCrypto> | undefined;

/** The platform's SubtleCrypto, found once. */
export function subtle(): Promise<SubtleCrypto> {
  located ??= locate();
  return located;
}

async function locate(): Promise<SubtleCrypto> {
  const global = (globalThis as { crypto?: Crypto }).crypto;
  if (global?.subtle) return global.subtle;
  // A variable specifier, so that browser bundlers leave this Node.js-only import alone.
  const specifier = "node:crypto";
  try {
    const mod = (await import(/* webpackIgnore: true */ /* @vite-ignore */ specifier)) as {
      webcrypto?: Crypto;
    };
    if (mod.webcrypto?.subtle) return mod.webcrypto.subtle;
  } catch {
    // not Node.js
  }
  throw new Error(
    "Web Crypto (crypto.subtle) is not available: use Node.js 18 or newer, or a browser page " +
      "served over https",
  );
}

const encoder = new TextEncoder();

/** UTF-8 bytes of `text`, in a buffer of their own. */
export function utf8(text: string): Uint8Array<ArrayBuffer> {
  return new Uint8Array(encoder.encode(text));
}

/** `bytes` copied into a buffer of their own (Web Crypto refuses shared buffers). */
export function ownBytes(bytes: Uint8Array | ArrayBuffer): Uint8Array<ArrayBuffer> {
  return new Uint8Array(bytes instanceof ArrayBuffer ? bytes.slice(0) : bytes);
}

/** Standard base64 with `=` padding. */
export function base64Encode(bytes: Uint8Array): string {
  let binary = "";
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return btoa(binary);
}

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

/** Standard base64 (missing padding tolerated) to bytes; null when it is not base64. */
export function base64Decode(text: string): Uint8Array<ArrayBuffer> | null {
  const padded = text + "=".repeat((4 - (text.length % 4)) % 4);
  if (!BASE64.test(padded) || padded.length % 4 !== 0) return null;
  try {
    const binary = atob(padded);
    const bytes = new Uint8Array(binary.length);
    for (let i = 0; i < binary.length; i += 1) bytes[i] = binary.charCodeAt(i);
    return bytes;
  } catch {
    return null;
  }
}

/** Lower-case hex to bytes; null unless it is exactly that. */
export function hexDecode(text: string): Uint8Array<ArrayBuffer> | null {
  if (text.length % 2 !== 0 || !/^[0-9a-f]*$/.test(text)) return null;
  const bytes = new Uint8Array(text.length / 2);
  for (let i = 0; i < bytes.length; i += 1) bytes[i] = parseInt(text.slice(2 * i, 2 * i + 2), 16);
  return bytes;
}

/** Lower-case hex of `bytes`. */
export function hexEncode(bytes: Uint8Array): string {
  return Array.from(bytes, (byte) => byte.toString(16).padStart(2, "0")).join("");
}

const KEY_CACHE_LIMIT = 64;
const keys = new Map<string, Promise<CryptoKey>>();

/** An HMAC-SHA256 key for `raw`, imported once per distinct key (a few are kept). */
export function hmacKey(raw: Uint8Array<ArrayBuffer>): Promise<CryptoKey> {
  const id = base64Encode(raw);
  let key = keys.get(id);
  if (key === undefined) {
    if (keys.size >= KEY_CACHE_LIMIT) keys.clear();
    key = subtle().then((s) =>
      s.importKey("raw", raw, { name: "HMAC", hash: "SHA-256" }, false, ["sign", "verify"]),
    );
    keys.set(id, key);
  }
  return key;
}

/** HMAC-SHA256 of `message` under `raw`. */
export async function hmacSign(
  raw: Uint8Array<ArrayBuffer>,
  message: Uint8Array<ArrayBuffer>,
): Promise<Uint8Array<ArrayBuffer>> {
  const s = await subtle();
  return new Uint8Array(await s.sign("HMAC", await hmacKey(raw), message));
}

/** Whether `signature` is the HMAC-SHA256 of `message` under `raw`, checked by Web Crypto (in
 * constant time, unlike a comparison of strings). */
export async function hmacVerify(
  raw: Uint8Array<ArrayBuffer>,
  signature: Uint8Array<ArrayBuffer>,
  message: Uint8Array<ArrayBuffer>,
): Promise<boolean> {
  const s = await subtle();
  return s.verify("HMAC", await hmacKey(raw), signature, message);
}
