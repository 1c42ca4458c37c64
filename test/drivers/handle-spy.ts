/**
 * Spies on the FileHandle of one FileDriver. Spying on FileHandle.prototype instead would also
 * count the calls of every other handle in the process — a driver of an earlier test still
 * finishing under load — which made counts flaky; a spy on the instance sees only its own.
 */
import { readlinkSync } from 'node:fs';
import * as fsp from 'node:fs/promises';
import { vi } from 'vitest';
import type { FileDriver } from '../../src/drivers/file.js';

type Method = (...args: unknown[]) => Promise<unknown>;

let proto: fsp.FileHandle | undefined;

/** FileHandle.prototype (Node does not export the class). */
export async function fileHandlePrototype(): Promise<fsp.FileHandle> {
  if (proto === undefined) {
    const probe = await fsp.open('/dev/null', 'r');
    proto = Object.getPrototypeOf(probe) as fsp.FileHandle;
    await probe.close();
  }
  return proto;
}

/**
 * The FileHandle a driver keeps privately: the one that served a one-byte read into a buffer no
 * other code can hold. The driver must be open, readable, and at least one byte long. Not
 * reentrant: await one call before the next (other drivers may do I/O meanwhile).
 */
export async function handleOf(driver: FileDriver): Promise<fsp.FileHandle> {
  const read = vi.spyOn(await fileHandlePrototype(), 'read');
  const marker = new Uint8Array(1);
  try {
    await driver.readInto(0, marker);
    const i = read.mock.calls.findIndex((args) => (args[0] as unknown) === marker);
    if (i < 0) throw new Error('handleOf: the driver did not read through a FileHandle');
    return read.mock.contexts[i] as fsp.FileHandle;
  } finally {
    read.mockRestore();
  }
}

/** Pass-through spies on one driver's handle, plus the real methods for custom implementations. */
export interface HandleSpy {
  readonly handle: fsp.FileHandle;
  readonly read: ReturnType<typeof vi.spyOn>;
  readonly write: ReturnType<typeof vi.spyOn>;
  readonly datasync: ReturnType<typeof vi.spyOn>;
  readonly realRead: Method;
  readonly realWrite: Method;
  readonly realDatasync: Method;
}

/** Installs pass-through spies on the read, write and datasync of `driver`'s own handle. */
export async function spyOnDriver(driver: FileDriver): Promise<HandleSpy> {
  const handle = await handleOf(driver);
  const p = await fileHandlePrototype();
  return {
    handle,
    read: vi.spyOn(handle, 'read'),
    write: vi.spyOn(handle, 'write'),
    datasync: vi.spyOn(handle, 'datasync'),
    realRead: p.read as unknown as Method,
    realWrite: p.write as unknown as Method,
    realDatasync: p.datasync as unknown as Method,
  };
}

/**
 * Records, for every `method` call on any FileHandle, the path its descriptor names (read from
 * /proc/self/fd at call time), so calls made before a driver exists — while `open` creates the
 * image — can still be attributed by path. Linux only.
 */
export async function pathsCalling(method: 'datasync' | 'sync'): Promise<string[]> {
  const p = await fileHandlePrototype();
  const real = p[method] as unknown as Method;
  const paths: string[] = [];
  vi.spyOn(p, method).mockImplementation(function (this: fsp.FileHandle, ...args: unknown[]) {
    try {
      paths.push(readlinkSync(`/proc/self/fd/${this.fd}`));
    } catch {
      paths.push('?');
    }
    return real.apply(this, args) as Promise<void>;
  } as never);
  return paths;
}
