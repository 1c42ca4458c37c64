/**
 * Keeps rewriteCorrupted from undoing a caller's write.
 *
 * A voting read that found an outvoted copy writes the winner back to that child. Two races could
 * make that write-back older than the caller's own data:
 * 1. a caller's write to an overlapping range is in flight while the read runs, or starts before
 *    the write-back is sent: the winner may already be stale. Such a write marks the read, and a
 *    marked read sends no write-back (the child stays outvoted until a later read repairs it);
 * 2. a caller's write starts while a write-back to an overlapping range is in flight: storage may
 *    reorder the two. Such a write waits for the write-back to settle before it is sent.
 * Nothing is tracked for reads without rewriteCorrupted, and a write that overlaps no write-back
 * is sent at once, so the common path costs a scan of two (usually empty) sets.
 */

interface Range {
  readonly offset: number;
  readonly end: number;
}

/** A voting read's claim on its range; `overlapped` turns true when a caller's write touches it. */
export interface RewriteWatch extends Range {
  overlapped: boolean;
}

const overlaps = (a: Range, b: Range): boolean => a.offset < b.end && b.offset < a.end;

/** Tracks caller writes in flight, voting reads that may write back, and write-backs in flight. */
export class RewriteGuard {
  readonly #writes = new Set<Range>();
  readonly #watches = new Set<RewriteWatch>();
  readonly #rewrites = new Map<Range, Promise<void>>();

  /**
   * Registers a caller's write. Returns `done` to call when it settles and, when a write-back to an
   * overlapping range is in flight, `ready`: the write must not be sent before it resolves.
   */
  beginWrite(offset: number, length: number): { done: () => void; ready?: Promise<void> } {
    const range: Range = { offset, end: offset + length };
    this.#writes.add(range);
    for (const w of this.#watches) if (overlaps(w, range)) w.overlapped = true;
    const done = (): void => void this.#writes.delete(range);
    if (this.#rewrites.size === 0) return { done };
    const pending = [...this.#rewrites].filter(([r]) => overlaps(r, range)).map(([, p]) => p);
    return pending.length === 0 ? { done } : { done, ready: Promise.all(pending).then(() => undefined) };
  }

  /** Starts watching a voting read's range; writes already in flight over it count. */
  watch(offset: number, length: number): RewriteWatch {
    const watch: RewriteWatch = { offset, end: offset + length, overlapped: false };
    for (const r of this.#writes) if (overlaps(watch, r)) watch.overlapped = true;
    this.#watches.add(watch);
    return watch;
  }

  unwatch(watch: RewriteWatch): void {
    this.#watches.delete(watch);
  }

  /**
   * Runs a write-back for a watched read, unless a caller's write has marked it (then returns
   * false without running it). Writes starting meanwhile wait for it.
   */
  async rewrite(watch: RewriteWatch, run: () => Promise<void>): Promise<boolean> {
    if (watch.overlapped) return false;
    const range: Range = { offset: watch.offset, end: watch.end };
    const running = run();
    // The map holds a promise that never rejects, so waiting writers are not failed by a write-back.
    this.#rewrites.set(range, running.catch(() => undefined));
    try {
      await running;
    } finally {
      this.#rewrites.delete(range);
    }
    return true;
  }
}
