/**
 * The Server-Sent Events wire format as a client reads it, and the reconnect delay (pure code,
 * so the stream can run over `fetch` in Node.js and browsers alike, with headers).
 *
 * `SseParser` follows the WHATWG event-stream rules: lines end at CRLF, LF or CR; `:` starts a
 * comment; `data:` lines join with LF; a blank line dispatches; `id:` names the event; `retry:`
 * the reconnection time. `reconnectDelay` is capped exponential backoff with jitter.
 *
 * @module
 */

/** One dispatched event; `id` is this frame's own `id:` line (undefined without one). */
export interface SseFrame {
  event: string;
  data: string;
  id: string | undefined;
}

/** Incremental: `feed` decoded text as it arrives, get back the frames it completes. */
export class SseParser {
  /** The last `retry:` value the server sent, in milliseconds. */
  retryMs: number | undefined;
  private buffer = "";
  private afterCr = false;
  private started = false;
  private data: string[] = [];
  private eventName = "";
  private id: string | undefined;

  feed(chunk: string): SseFrame[] {
    let text = chunk;
    if (!this.started && text) {
      this.started = true;
      if (text.startsWith("\ufeff")) text = text.slice(1);
    }
    if (this.afterCr && text) {
      // A CRLF split across two chunks: the LF belongs to the CR already seen.
      this.afterCr = false;
      if (text.startsWith("\n")) text = text.slice(1);
    }
    const buffer = this.buffer + text;
    const frames: SseFrame[] = [];
    let pos = 0;
    const eol = /\r\n|\r|\n/g;
    for (let match = eol.exec(buffer); match !== null; match = eol.exec(buffer)) {
      if (match[0] === "\r" && eol.lastIndex === buffer.length) this.afterCr = true;
      this.line(buffer.slice(pos, match.index), frames);
      pos = eol.lastIndex;
    }
    this.buffer = buffer.slice(pos);
    return frames;
  }

  private line(line: string, frames: SseFrame[]): void {
    if (!line) {
      const frame = { event: this.eventName || "message", data: this.data.join("\n"), id: this.id };
      const hasData = this.data.length > 0;
      this.data = [];
      this.eventName = "";
      this.id = undefined;
      if (hasData) frames.push(frame); // a frame without data dispatches nothing
      return;
    }
    if (line.startsWith(":")) return;
    const colon = line.indexOf(":");
    const name = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (name === "data") this.data.push(value);
    else if (name === "event") this.eventName = value;
    else if (name === "id" && !value.includes("\0")) this.id = value;
    else if (name === "retry" && /^\d+$/.test(value)) this.retryMs = Number(value);
  }
}

export interface Backoff {
  /** Delay before the first reconnect after a drop, before jitter (default 500 ms). */
  baseMs: number;
  /** The longest delay (default 30 s). */
  maxMs: number;
}

/**
 * Milliseconds to wait before reconnect number `attempt` (0 for the first after a drop):
 * `baseMs * 2**attempt`, at most `maxMs`, scaled by `jitter` in [0, 1] to between half and all
 * of it, so that clients dropped together by a restart do not come back in one wave.
 */
export function reconnectDelay(attempt: number, backoff: Backoff, jitter: number): number {
  if (attempt < 0) throw new RangeError("attempt must be >= 0");
  if (!(jitter >= 0 && jitter <= 1)) throw new RangeError("jitter must be within [0, 1]");
  const raw = Math.min(backoff.maxMs, backoff.baseMs * 2 ** Math.min(attempt, 32));
  return raw * (0.5 + 0.5 * jitter);
}
