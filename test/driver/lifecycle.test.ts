/**
 * close() and its drain, and describeGraph, on drivers whose requests we hold open at will.
 */
import fc from 'fast-check';
import { describe, expect, it, vi } from 'vitest';
import { BlockDriver, describeGraph, type DriverDescription } from '../../src/driver.js';
import { MemoryDriver } from '../../src/drivers/memory.js';
import { BlockError, isBlockError } from '../../src/errors.js';
import { FilterDriver } from '../../src/filter.js';
import type { IoOptions } from '../../src/types.js';

/** A memory disk whose reads wait until the test releases them. */
class GatedDriver extends MemoryDriver {
  readonly #waiting: Array<(fail: boolean) => void> = [];
  closes = 0;
  closeError: unknown;

  get waiting(): number {
    return this.#waiting.length;
  }
  /** Lets every held read go on; `fail[i]` makes the i-th held read fail with EIO instead. */
  releaseAll(fail: readonly boolean[] = []): void {
    this.#waiting.splice(0).forEach((release, i) => release(fail[i] === true));
  }
  protected override async _read(offset: number, target: Uint8Array, options: IoOptions): Promise<void> {
    const fail = await new Promise<boolean>((resolve) => this.#waiting.push(resolve));
    if (fail) throw new BlockError('EIO', 'gated read failed on purpose');
    return super._read(offset, target, options);
  }
  protected override async _close(): Promise<void> {
    this.closes++;
    await super._close();
    if (this.closeError !== undefined) throw this.closeError;
  }
}

const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

async function codeOf(p: Promise<unknown>): Promise<string | undefined> {
  try {
    await p;
    return undefined;
  } catch (err) {
    expect(isBlockError(err), String(err)).toBe(true);
    return (err as { code: string }).code;
  }
}

describe('close and drain', () => {
  it('waits for held requests, refuses new ones meanwhile, then releases once', async () => {
    const d = new GatedDriver({ size: 4096 });
    await d.write(0, new Uint8Array([1, 2, 3]));
    const held = [d.read(0, 3), d.read(1, 2)];
    let closed = false;
    let events = 0;
    d.on('close', () => events++);
    const closing = d.close().then(() => (closed = true));
    expect(d.state).toBe('closing');
    expect(d.inFlight).toBe(2);
    expect(await codeOf(d.read(0, 1))).toBe('ESHUTDOWN');
    expect(await codeOf(d.write(0, new Uint8Array(1)))).toBe('ESHUTDOWN');
    await tick();
    await tick();
    expect(closed).toBe(false);
    expect(d.closes).toBe(0);
    d.releaseAll();
    expect([...(await held[0])]).toEqual([1, 2, 3]);
    expect([...(await held[1])]).toEqual([2, 3]);
    await closing;
    expect(d.state).toBe('closed');
    expect(d.closes).toBe(1);
    expect(events).toBe(1);
    await d.close();
    expect(d.closes).toBe(1);
  });

  it('settles every accepted request, and runs the reactions attached to it, before close() resolves', async () => {
    // How a caller waits: a handler on the promise, or an await; attached before or after close().
    const style = fc.constantFrom('then', 'await', 'finally');
    const request = fc.record({ fails: fc.boolean(), style, lateAttach: fc.boolean() });
    await fc.assert(
      fc.asyncProperty(fc.array(request, { maxLength: 8 }), fc.integer({ min: 0, max: 3 }), async (requests, waitTicks) => {
        const d = new GatedDriver({ size: 4096 });
        const seen: string[] = [];
        const started = requests.map((r, i) => ({ ...r, i, p: d.read(i, 1) }));
        const attach = (r: (typeof started)[number]): Promise<unknown> => {
          const mark = (): void => void seen.push(`request ${r.i}`);
          if (r.style === 'then') return r.p.then(mark, mark);
          if (r.style === 'finally') return r.p.finally(mark).catch(() => undefined);
          return (async () => {
            try {
              await r.p;
            } catch {
              // a rejected read is fine here: the point is when the caller gets to run
            }
            mark();
          })();
        };
        const early = started.filter((r) => !r.lateAttach).map(attach);
        const closing = d.close().then(() => seen.push('close'));
        const late = started.filter((r) => r.lateAttach).map(attach);
        for (let i = 0; i < waitTicks; i++) await tick();
        if (requests.length > 0) expect(seen, 'nothing settles while the requests are held').toEqual([]);
        d.releaseAll(requests.map((r) => r.fails));
        await Promise.all([...early, ...late, closing]);
        expect(seen).toHaveLength(requests.length + 1);
        expect(seen[seen.length - 1], `order: ${seen.join(', ')}`).toBe('close');
      }),
      { numRuns: 100 },
    );
  });

  it('close() needs no timer: it resolves under fake timers with requests in flight', async () => {
    vi.useFakeTimers(); // every timer faked, setImmediate included
    try {
      const d = new GatedDriver({ size: 4096 });
      const reads = [d.read(0, 4), d.read(8, 4)];
      let closed = false;
      const closing = d.close().then(() => (closed = true));
      await Promise.resolve();
      d.releaseAll();
      // A bounded number of microtask turns, and no timer is ever advanced.
      for (let i = 0; i < 20 && !closed; i++) await Promise.resolve();
      expect(closed).toBe(true);
      await Promise.all([...reads, closing]);
      expect(d.state).toBe('closed');
    } finally {
      vi.useRealTimers();
    }
  });

  it('rejects close (and asyncDispose) with a BlockError when releasing fails, and still ends closed', async () => {
    const d = new GatedDriver({ size: 4096 });
    d.closeError = new Error('socket would not close');
    const first = await d.close().catch((e: unknown) => e);
    expect(first).toMatchObject({ code: 'EIO', details: { op: 'close' } });
    expect((first as Error).cause).toBe(d.closeError);
    expect(d.state).toBe('closed');
    expect(await d.close().catch((e: unknown) => e)).toBe(first);
    expect(await d[Symbol.asyncDispose]().catch((e: unknown) => e)).toBe(first);
    expect(d.closes).toBe(1);
  });

  it('checks types first, then the state, then the signal, then the request', async () => {
    const d = new MemoryDriver({ size: 4096 });
    const aborted = AbortSignal.abort();
    expect(await codeOf(d.read(-1, 1, { signal: aborted }))).toBe('ECANCELED');
    await d.close();
    await expect((d.read as (o: unknown, n: number) => Promise<unknown>)('x', 1)).rejects.toBeInstanceOf(TypeError);
    expect(await codeOf(d.read(-1, 1, { signal: aborted }))).toBe('ESHUTDOWN');
  });

  it('a filter closes its child unless told not to', async () => {
    const owned = new MemoryDriver({ size: 4096 });
    await new FilterDriver(owned).close();
    expect(owned.state).toBe('closed');
    const shared = new MemoryDriver({ size: 4096 });
    await new FilterDriver(shared, { closeChild: false }).close();
    expect(shared.state).toBe('open');
    await shared.close();
  });

  it('a filter drains its own requests before it closes its child', async () => {
    const child = new GatedDriver({ size: 4096 });
    const filter = new FilterDriver(child);
    const held = filter.read(0, 4);
    const closing = filter.close();
    await tick();
    expect(child.state).toBe('open');
    child.releaseAll();
    expect((await held).length).toBe(4);
    await closing;
    expect(child.state).toBe('closed');
  });
});

describe('describeGraph', () => {
  it('describes a graph recursively as plain JSON', async () => {
    const leaf = new MemoryDriver({ size: 8192, name: 'disk0' });
    const top = new FilterDriver(new FilterDriver(leaf, { name: 'middle' }), { name: 'top' });
    const keysBefore = Object.keys(top);
    const g = describeGraph(top);
    expect(Object.keys(top)).toEqual(keysBefore);
    expect(JSON.parse(JSON.stringify(g))).toEqual(g);
    expect(g).toMatchObject({ name: 'top', class: 'FilterDriver', state: 'open', size: 8192, inFlight: 0 });
    expect(g.capabilities).toEqual(leaf.capabilities);
    expect(g.limits).toEqual(leaf.limits);
    expect(g.children[0].name).toBe('middle');
    const bottom = g.children[0].children[0];
    expect(bottom).toMatchObject({ name: 'disk0', class: 'MemoryDriver', children: [] });
    await top.close();
    expect(describeGraph(top).children[0].children[0].state).toBe('closed');
  });

  it('cuts a cycle instead of recursing forever', () => {
    class Loop extends MemoryDriver {
      override get children(): readonly BlockDriver[] {
        return [this];
      }
    }
    const g: DriverDescription = describeGraph(new Loop({ size: 512 }));
    expect(g.cycle).toBeUndefined();
    expect(g.children[0]).toMatchObject({ cycle: true, children: [] });
  });
});
