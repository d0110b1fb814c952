/**
 * `EventStream`: the notification stream (`GET /v1/notifications/stream`) as an async iterator
 * that survives drops, over `fetch`, so that it sends headers in Node.js and browsers alike.
 *
 * It remembers the id of the last event it yielded; when the connection ends (a server
 * restart, a network drop, a slow-consumer cut, silence past the idle timeout) it reconnects
 * with capped, jittered exponential backoff and sends `Last-Event-ID`, so the service replays
 * what was missed: nothing is lost or repeated (docs/reference.md §4.4). A `reset` from the
 * service (the cursor is unknown, purged, or too far behind) is yielded as a `StreamReset`:
 * events were skipped, so the caller should refetch the state it keeps. Credentials that stop
 * working (401/403) and refused filters (4xx) end the iteration with `CauseFlowAPIError`; 429,
 * 5xx and connection errors are retried.
 *
 * In a browser that holds no API key, `ticket` names a stream ticket or a function that gets
 * one (from the application's own backend, which calls `createStreamTicket()`): it is sent as
 * `?token=`, with the resume point as `?lastEventId=`, so the request carries no credential
 * header at all; a function is asked again when the ticket nears its expiry or is refused.
 *
 * @module
 */

import { CauseFlowAPIError, CauseFlowConnectionError, apiError } from "./errors.js";
import type { Envelope } from "./generated/events.js";
import { type Transport, describe } from "./http.js";
import { type Backoff, SseParser, reconnectDelay } from "./sse.js";
import type { StreamTicket } from "./types.js";

export const STREAM_PATH = "/v1/notifications/stream";
/** The service pings every 30 s by default; silence for longer than this means a dead link. */
export const DEFAULT_IDLE_TIMEOUT_MS = 75_000;
/** A ticket is fetched again this long before it expires. */
const TICKET_MARGIN_MS = 30_000;

/**
 * The service could not resume from `lastEventId` (`reason`: `cursor_expired` or
 * `too_far_behind`): events may have been missed. Refetch state, then keep iterating.
 */
export class StreamReset {
  readonly kind = "reset";
  readonly reason: string;
  readonly lastEventId: string | undefined;

  constructor(reason: string, lastEventId: string | undefined) {
    this.reason = reason;
    this.lastEventId = lastEventId;
  }
}

/** One event as it came off the wire: `data` is the envelope's JSON text, byte for byte. */
export interface RawEvent {
  id: string;
  event: string;
  data: string;
}

/** A stream ticket, or a function that gets a fresh one (e.g. from the application's backend). */
export type TicketSource = string | (() => Promise<string | StreamTicket>);

export interface StreamOptions {
  /** Only these event types (`?events=`). */
  events?: readonly string[];
  /** Only this incident's events (`?incidentId=`). */
  incidentId?: string;
  /** Resume after this event; without it the stream starts with events committed from now. */
  lastEventId?: string;
  /** Authenticate with a stream ticket (`?token=`) instead of the client's credential. */
  ticket?: TicketSource;
  backoff?: Partial<Backoff>;
  /** Reconnect when no byte arrives for this long (default 75 s). */
  idleTimeoutMs?: number;
  /** Consecutive failed reconnects before the last error is thrown (default: never). */
  maxReconnects?: number;
  /** Called each time the stream is live, with the id it resumed from. */
  onConnect?: (lastEventId: string | undefined) => void;
  /** Called before each wait to reconnect, with what ended the connection (undefined: it
   * ended cleanly, e.g. the server shut down) and the delay. */
  onDisconnect?: (error: unknown, delayMs: number) => void;
  /** Closes the stream. */
  signal?: AbortSignal;
  /** Jitter source in [0, 1] (default Math.random). */
  random?: () => number;
}

interface Attempt {
  live: boolean;
  freshTicket: boolean;
}

/** Iterate with `for await (const item of stream)`: an `Envelope` or a `StreamReset`. */
export class EventStream implements AsyncIterable<Envelope | StreamReset> {
  /** The resume point: the id of the last event yielded. */
  lastEventId: string | undefined;
  private readonly t: Transport;
  private readonly options: StreamOptions;
  private readonly backoff: Backoff;
  private readonly stop = new AbortController();
  private ticketCache: { ticket: string; refreshAt: number } | undefined;

  constructor(transport: Transport, options: StreamOptions = {}) {
    this.t = transport;
    this.options = options;
    this.lastEventId = options.lastEventId;
    this.backoff = { baseMs: 500, maxMs: 30_000, ...options.backoff };
    const outer = options.signal;
    if (outer?.aborted) this.close();
    else outer?.addEventListener("abort", () => this.close(), { once: true });
  }

  get closed(): boolean {
    return this.stop.signal.aborted;
  }

  /** Stop: the current connection is closed and iteration ends. */
  close(): void {
    if (!this.closed) this.stop.abort(new Error("the stream was closed"));
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<Envelope | StreamReset, void, undefined> {
    for await (const item of this.raw()) {
      if (item instanceof StreamReset) {
        yield item;
        continue;
      }
      try {
        yield JSON.parse(item.data) as Envelope;
      } catch (error) {
        throw new CauseFlowConnectionError(`event ${item.id} is not JSON`, { cause: error });
      }
    }
  }

  /** Like iterating the stream, but events come as `RawEvent` (the exact text of each). */
  async *raw(): AsyncGenerator<RawEvent | StreamReset, void, undefined> {
    let failures = 0;
    while (!this.closed) {
      const attempt: Attempt = { live: false, freshTicket: false };
      let error: unknown;
      try {
        yield* this.connection(attempt);
      } catch (caught) {
        if (this.closed) return;
        error = this.retryable(caught, attempt);
      }
      if (this.closed) return;
      if (attempt.live) failures = 0; // it was up: the backoff starts over
      if (error !== undefined && failures >= (this.options.maxReconnects ?? Infinity)) throw error;
      const delay = this.delay(failures, error);
      failures += 1;
      this.options.onDisconnect?.(error, delay);
      await this.sleep(delay);
    }
  }

  private delay(failures: number, error: unknown): number {
    const jitter = (this.options.random ?? Math.random)();
    const delay = reconnectDelay(failures, this.backoff, jitter);
    if (error instanceof CauseFlowAPIError && error.retryAfter !== undefined) {
      return Math.max(delay, Math.min(error.retryAfter * 1000, this.backoff.maxMs));
    }
    return delay;
  }

  /** The error to wait on before reconnecting; throws the ones that end the stream. */
  private retryable(error: unknown, attempt: Attempt): unknown {
    if (!(error instanceof CauseFlowAPIError)) {
      if (error instanceof CauseFlowConnectionError) return error;
      return new CauseFlowConnectionError(`stream lost: ${describe(error)}`, { cause: error });
    }
    if (error.status === 429 || error.status >= 500) return error;
    const renewable = typeof this.options.ticket === "function" && !attempt.freshTicket;
    if (error.status === 401 && renewable) {
      this.ticketCache = undefined; // expired or revoked: ask for another one
      return error;
    }
    throw error;
  }

  private async *connection(attempt: Attempt): AsyncGenerator<RawEvent | StreamReset> {
    const controller = new AbortController();
    const stop = () => controller.abort(this.stop.signal.reason);
    this.stop.signal.addEventListener("abort", stop, { once: true });
    try {
      const response = await this.open(controller, attempt);
      yield* this.frames(response, controller, attempt);
    } finally {
      this.stop.signal.removeEventListener("abort", stop);
      controller.abort();
    }
  }

  private async open(controller: AbortController, attempt: Attempt): Promise<Response> {
    const ticket = await this.ticket(attempt);
    const query: Record<string, string | readonly string[] | undefined> = {
      events: this.options.events?.length ? this.options.events : undefined,
      incidentId: this.options.incidentId,
    };
    const headers: Record<string, string> = { ...this.t.headers(ticket === undefined) };
    headers.Accept = "text/event-stream";
    if (ticket !== undefined) {
      // No custom header at all, so that a browser sends a simple request.
      query.token = ticket;
      query.lastEventId = this.lastEventId;
    } else if (this.lastEventId) {
      headers["Last-Event-ID"] = this.lastEventId;
    }
    const url = this.t.url(STREAM_PATH, query);
    // The client's timeout bounds the wait for the answer's head; the body may last for days.
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      controller.abort();
    }, this.t.timeoutMs);
    try {
      const init = { headers, signal: controller.signal };
      const response = await this.t.fetch(url, init, () => timedOut);
      if (response.status !== 200) {
        const text = await response.text().catch(() => "");
        throw apiError(response.status, text, response.headers);
      }
      if (response.body === null) throw new CauseFlowConnectionError("the stream has no body");
      return response;
    } finally {
      clearTimeout(timer);
    }
  }

  private async ticket(attempt: Attempt): Promise<string | undefined> {
    const source = this.options.ticket;
    if (source === undefined || typeof source === "string") return source;
    if (this.ticketCache !== undefined && Date.now() < this.ticketCache.refreshAt) {
      return this.ticketCache.ticket;
    }
    const got = await source();
    attempt.freshTicket = true;
    const ticket = typeof got === "string" ? got : got.ticket;
    const expires = typeof got === "string" ? NaN : Date.parse(got.expiresAt);
    const refreshAt = Number.isNaN(expires) ? Infinity : expires - TICKET_MARGIN_MS;
    this.ticketCache = { ticket, refreshAt };
    return ticket;
  }

  private async *frames(
    response: Response,
    controller: AbortController,
    attempt: Attempt,
  ): AsyncGenerator<RawEvent | StreamReset> {
    const reader = (response.body as ReadableStream<Uint8Array>).getReader();
    const decoder = new TextDecoder();
    const parser = new SseParser();
    try {
      for (;;) {
        const chunk = await this.read(reader, controller);
        if (chunk === undefined) return;
        if (!attempt.live) {
          // The first bytes (retry + comment) mean the stream is registered on the server.
          attempt.live = true;
          this.options.onConnect?.(this.lastEventId);
        }
        for (const frame of parser.feed(decoder.decode(chunk, { stream: true }))) {
          if (frame.event === "reset") {
            yield resetOf(frame.data, this.lastEventId);
          } else if (frame.event !== "ping" && frame.id) {
            this.lastEventId = frame.id;
            yield { id: frame.id, event: frame.event, data: frame.data };
          }
          if (this.closed) return;
        }
      }
    } finally {
      reader.cancel().catch(() => undefined);
    }
  }

  /** The next chunk, or undefined at the end; silence past the idle timeout is an error. */
  private async read(
    reader: ReadableStreamDefaultReader<Uint8Array>,
    controller: AbortController,
  ): Promise<Uint8Array | undefined> {
    const idleMs = this.options.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS;
    let idle = false;
    const timer = setTimeout(() => {
      idle = true;
      controller.abort();
    }, idleMs);
    try {
      const { done, value } = await reader.read();
      return done ? undefined : value;
    } catch (error) {
      if (this.closed) throw error;
      const reason = idle ? `no data for ${idleMs} ms` : describe(error);
      throw new CauseFlowConnectionError(`stream lost: ${reason}`, { cause: error });
    } finally {
      clearTimeout(timer);
    }
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.stop.signal.removeEventListener("abort", done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.stop.signal.addEventListener("abort", done, { once: true });
    });
  }
}

function resetOf(data: string, fallback: string | undefined): StreamReset {
  try {
    const parsed = JSON.parse(data) as { reason?: unknown; lastEventId?: unknown };
    const reason = typeof parsed.reason === "string" && parsed.reason ? parsed.reason : "reset";
    const last = typeof parsed.lastEventId === "string" ? parsed.lastEventId : fallback;
    return new StreamReset(reason, last || fallback);
  } catch {
    return new StreamReset("reset", fallback);
  }
}
