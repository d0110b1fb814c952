/**
 * The HTTP layer: base URL, credentials, JSON, timeouts and error mapping over `fetch`.
 *
 * Every non-2xx answer becomes `CauseFlowAPIError` (from the service's error shape); a request
 * that gets no usable answer becomes `CauseFlowConnectionError`. Requests are not retried here:
 * a POST is safe to send again only with the same `Idempotency-Key`, which the caller chooses.
 *
 * @module
 */

import { CauseFlowConnectionError, apiError } from "./errors.js";

/** A `fetch` function: the platform's, or one the caller brings (a proxy agent, a test). */
export type FetchLike = (input: string, init?: RequestInit) => Promise<Response>;

export interface ClientOptions {
  /** Where the service answers, e.g. `https://causeflow.example.com`. */
  baseUrl: string;
  /** An API key (`cflo_…`), sent as `X-API-Key`. */
  apiKey?: string;
  /** A JWT, sent as `Authorization: Bearer`. */
  token?: string;
  /** Milliseconds each request may take (default 30 s); the stream's connect phase too. */
  timeoutMs?: number;
  /** The `fetch` to use (default: the global one). */
  fetch?: FetchLike;
  /** Extra headers for every request. */
  headers?: Record<string, string>;
}

/** Per-call options of every method. */
export interface RequestOptions {
  /** Aborts the request. */
  signal?: AbortSignal;
  /** Overrides the client's timeout for this call. */
  timeoutMs?: number;
}

/** Per-call options of methods that POST: the `Idempotency-Key` (docs/reference.md §2.5). */
export interface PostOptions extends RequestOptions {
  /** Up to 255 characters; the same key and request get the stored answer, run once. */
  idempotencyKey?: string;
}

export type QueryValue = string | number | boolean | Date | readonly string[] | null | undefined;

interface Call extends PostOptions {
  query?: Record<string, QueryValue> | undefined;
  body?: unknown;
}

export const DEFAULT_TIMEOUT_MS = 30_000;

/** A signal that aborts on `timeoutMs` or when `outer` aborts; `clear()` when done. */
export function deadline(timeoutMs: number, outer?: AbortSignal) {
  const controller = new AbortController();
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    controller.abort(new Error(`no answer within ${timeoutMs} ms`));
  }, timeoutMs);
  const forward = () => controller.abort(outer?.reason);
  if (outer?.aborted) forward();
  else outer?.addEventListener("abort", forward, { once: true });
  return {
    signal: controller.signal,
    timedOut: () => timedOut,
    clear: () => {
      clearTimeout(timer);
      outer?.removeEventListener("abort", forward);
    },
  };
}

function queryValue(value: QueryValue): string | undefined {
  if (value === undefined || value === null) return undefined;
  if (value instanceof Date) return value.toISOString();
  if (Array.isArray(value)) return value.join(",");
  return String(value);
}

/** Base URL, credentials and `fetch`, shared by every resource of one client. */
export class Transport {
  readonly baseUrl: string;
  readonly timeoutMs: number;
  readonly credentials: Record<string, string>;
  private readonly extraHeaders: Record<string, string>;
  private readonly fetchFn: FetchLike;

  constructor(options: ClientOptions) {
    if (options.apiKey && options.token) throw new TypeError("give apiKey or token, not both");
    this.baseUrl = options.baseUrl.replace(/\/+$/, "");
    this.timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.credentials = {};
    if (options.apiKey) this.credentials["X-API-Key"] = options.apiKey;
    if (options.token) this.credentials.Authorization = `Bearer ${options.token}`;
    this.extraHeaders = { ...options.headers };
    // Bound, because browsers refuse a `fetch` called on another object ("Illegal invocation").
    this.fetchFn = options.fetch ?? globalThis.fetch.bind(globalThis);
  }

  /** The absolute URL of `path` with the query's non-empty values. */
  url(path: string, query: Record<string, QueryValue> = {}): string {
    const params = new URLSearchParams();
    for (const [name, value] of Object.entries(query)) {
      const text = queryValue(value);
      if (text !== undefined) params.append(name, text);
    }
    const search = params.toString();
    return this.baseUrl + path + (search ? `?${search}` : "");
  }

  /** Headers of every request: the extra ones, then the credential (`withCredential`). */
  headers(withCredential = true): Record<string, string> {
    return withCredential ? { ...this.extraHeaders, ...this.credentials } : { ...this.extraHeaders };
  }

  /** `fetch`, with connection failures as CauseFlowConnectionError. */
  async fetch(url: string, init: RequestInit, timedOut: () => boolean = () => false) {
    const f = this.fetchFn;
    try {
      return await f(url, init);
    } catch (error) {
      if (init.signal?.aborted && !timedOut()) throw init.signal.reason ?? error;
      const reason = timedOut() ? "timed out" : describe(error);
      throw new CauseFlowConnectionError(`${init.method ?? "GET"} ${url}: ${reason}`, {
        cause: error,
      });
    }
  }

  /** Send one request; resolve to the decoded JSON answer (undefined for an empty body). */
  async request<T>(method: string, path: string, call: Call = {}): Promise<T> {
    const headers: Record<string, string> = { ...this.headers(), Accept: "application/json" };
    let body: string | undefined;
    if (call.body !== undefined) {
      body = JSON.stringify(call.body);
      headers["Content-Type"] = "application/json";
    }
    if (call.idempotencyKey !== undefined) headers["Idempotency-Key"] = call.idempotencyKey;
    const url = this.url(path, call.query);
    const limit = deadline(call.timeoutMs ?? this.timeoutMs, call.signal);
    try {
      const init: RequestInit = { method, headers, body, signal: limit.signal, redirect: "manual" };
      const response = await this.fetch(url, init, limit.timedOut);
      const text = await this.read(response, `${method} ${url}`, limit.timedOut);
      if (!response.ok) throw apiError(response.status, text, response.headers);
      return parse<T>(text, `${method} ${url}`);
    } finally {
      limit.clear();
    }
  }

  private async read(response: Response, what: string, timedOut: () => boolean): Promise<string> {
    try {
      return await response.text();
    } catch (error) {
      const reason = timedOut() ? "timed out" : describe(error);
      throw new CauseFlowConnectionError(`${what}: ${reason}`, { cause: error });
    }
  }
}

function parse<T>(text: string, what: string): T {
  if (!text) return undefined as T;
  try {
    return JSON.parse(text) as T;
  } catch (error) {
    throw new CauseFlowConnectionError(`${what}: the answer is not JSON`, { cause: error });
  }
}

/** A short reason for a failed fetch; undici hides the useful part in `cause`. */
export function describe(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const cause = (error as { cause?: unknown }).cause;
  const detail = cause instanceof Error ? cause.message : "";
  return detail && detail !== error.message ? `${error.message} (${detail})` : error.message;
}
