// Shared by the integration scripts that tests/sdk_typescript/ runs against a real server:
// the client from the environment, polling, and the line protocol with the test.
import { createInterface } from "node:readline";

import { CauseFlowClient } from "../../src/index.js";

export function env(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`set ${name}`);
  return value;
}

export function clientFromEnv(): CauseFlowClient {
  return new CauseFlowClient({
    baseUrl: env("CAUSEFLOW_URL"),
    apiKey: env("CAUSEFLOW_API_KEY"),
    timeoutMs: 10_000,
  });
}

/** Poll `check` until it returns something, or fail after `timeoutMs`. */
export async function waitFor<T>(what: string, check: () => Promise<T | undefined>, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const found = await check();
    if (found !== undefined) return found;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** Resolves with `promise`, or rejects when it takes longer than `ms`. */
export function within<T>(ms: number, what: string, promise: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: nothing within ${ms} ms`)), ms);
  });
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}

const lines = createInterface({ input: process.stdin });
const pending: string[] = [];
const waiters: ((line: string) => void)[] = [];
lines.on("line", (line) => {
  const waiter = waiters.shift();
  if (waiter) waiter(line);
  else pending.push(line);
});

/** Ask the test to do something (one line on stdout) and wait for its answer (one on stdin). */
export async function ask(request: string): Promise<string> {
  console.log(`ASK ${request}`);
  const ready = pending.shift();
  if (ready !== undefined) return ready;
  return new Promise((resolve) => waiters.push(resolve));
}

/** Run `main`, print `OK` when it succeeds, and exit (stdin would keep the process alive). */
export function run(main: () => Promise<void>): void {
  main().then(
    () => {
      console.log("OK");
      process.exit(0);
    },
    (error: unknown) => {
      console.error(error);
      process.exit(1);
    },
  );
}
