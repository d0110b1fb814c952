/**
 * Cursor pagination (docs/reference.md §8.6) as async iteration.
 *
 * A list method returns a `Paginator`: `for await (const item of paginator)` walks every page,
 * fetching the next one only when the loop reaches it; `pages()` yields whole pages and
 * `page(cursor)` fetches one. The cursor is keyed on the sort order, so items added meanwhile do
 * not shift the pages. A cursor the walk has already followed ends it with
 * `CauseFlowConnectionError`: a keyset cursor only moves forward, so a repeat would loop forever.
 *
 * @module
 */

import { CauseFlowConnectionError } from "./errors.js";

/** One page of a list. `cursor` is null on the last page. */
export interface Page<T> {
  items: T[];
  cursor: string | null;
  count: number;
}

export type PageFetcher<T> = (cursor: string | undefined) => Promise<Page<T>>;

export class Paginator<T> implements AsyncIterable<T> {
  private readonly fetchPage: PageFetcher<T>;

  constructor(fetchPage: PageFetcher<T>) {
    this.fetchPage = fetchPage;
  }

  /** One page: the first, or the one `cursor` (from an earlier page) points at. */
  page(cursor?: string): Promise<Page<T>> {
    return this.fetchPage(cursor);
  }

  /** Every page in turn, from the first (or from `cursor`). */
  async *pages(cursor?: string): AsyncGenerator<Page<T>, void, undefined> {
    let next = cursor;
    const followed = new Set<string>();
    for (;;) {
      if (next !== undefined) followed.add(next);
      const page = await this.fetchPage(next);
      yield page;
      if (!page.cursor || page.items.length === 0) return;
      if (followed.has(page.cursor)) {
        throw new CauseFlowConnectionError(
          `the service answered cursor ${page.cursor} again: the pages would repeat forever`,
        );
      }
      next = page.cursor;
    }
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<T, void, undefined> {
    for await (const page of this.pages()) yield* page.items;
  }

  /** Every item, collected (`max` stops early): for short lists and tests. */
  async toArray(max = Infinity): Promise<T[]> {
    const items: T[] = [];
    if (max <= 0) return items;
    for await (const item of this) {
      items.push(item);
      if (items.length >= max) break;
    }
    return items;
  }
}
