// Shared by the unit tests: the repository's files, and a fake `fetch` that records requests.
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

/** A file of the repository, from the compiled test's place (build-test/test/). */
export function repoFile(path: string): string {
  return fileURLToPath(new URL(`../../../../${path}`, import.meta.url));
}

export function readJson<T>(path: string): T {
  return JSON.parse(readFileSync(repoFile(path), "utf8")) as T;
}

export interface Seen {
  url: URL;
  method: string;
  headers: Headers;
  body: string | undefined;
  signal: AbortSignal | undefined;
}

export type Handler = (request: Seen) => Response | Promise<Response>;

/** A `fetch` that answers with `handler` and keeps every request it saw. */
export function fakeFetch(handler: Handler) {
  const seen: Seen[] = [];
  const fetch = async (input: string, init: RequestInit = {}): Promise<Response> => {
    const request: Seen = {
      url: new URL(input),
      method: init.method ?? "GET",
      headers: new Headers(init.headers),
      body: typeof init.body === "string" ? init.body : undefined,
      signal: init.signal ?? undefined,
    };
    seen.push(request);
    if (request.signal?.aborted) throw request.signal.reason;
    return handler(request);
  };
  return { fetch, seen };
}

export function json(status: number, body: unknown, headers: Record<string, string> = {}) {
  const text = body === undefined ? null : JSON.stringify(body);
  return new Response(text, {
    status,
    headers: { "Content-Type": "application/json", ...headers },
  });
}
