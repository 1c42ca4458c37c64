/**
 * Starts an NbdServer over MemoryDrivers on a loopback port (or a Unix socket) for a test, and
 * tears everything down afterwards.
 */
import type { AddressInfo } from 'node:net';
import { afterEach } from 'vitest';
import { MemoryDriver } from '../../../src/drivers/memory.js';
import type { BlockDriver } from '../../../src/driver.js';
import { NbdServer, type NbdServerOptions } from '../../../src/nbd/server/index.js';
import { tmpSocketPath } from '../../helpers/peers.js';
import type { RawClient } from './raw-client.js';

export interface ServerFixture {
  readonly server: NbdServer;
  readonly port: number;
  /** `nbd://127.0.0.1:PORT/` + export name. */
  uri(exportName?: string): string;
  close(): Promise<void>;
}

export interface FixtureOptions extends NbdServerOptions {
  /** Exports to add: name → driver (default: '' → a 4 MiB MemoryDriver). */
  readonly exports?: Record<string, BlockDriver>;
  /** Also listen on a Unix socket; its path is returned as `socketPath`. */
  readonly unix?: boolean;
}

export async function startServer(options: FixtureOptions = {}): Promise<ServerFixture & { socketPath: string | undefined }> {
  const server = new NbdServer(options);
  const exports = options.exports ?? { '': new MemoryDriver({ size: 4 * 1024 * 1024 }) };
  for (const [name, driver] of Object.entries(exports)) server.addExport(name, driver);
  const addr = (await server.listen({ port: 0 })) as AddressInfo;
  let socket: { path: string; remove: () => void } | undefined;
  if (options.unix === true) {
    socket = tmpSocketPath();
    await server.listen({ path: socket.path });
  }
  return {
    server,
    port: addr.port,
    socketPath: socket?.path,
    uri: (name = '') => `nbd://127.0.0.1:${addr.port}/${encodeURIComponent(name)}`,
    close: async () => {
      await server.destroy();
      socket?.remove();
    },
  };
}

/** The server and raw clients one test file has open; see {@link serverScope}. */
export interface ServerScope {
  fixture: ServerFixture | undefined;
  readonly clients: RawClient[];
}

/**
 * Registers the teardown every server test file needs — destroy the test's raw clients, then
 * close its server — and returns the place the tests keep them.
 */
export function serverScope(): ServerScope {
  const scope: ServerScope = { fixture: undefined, clients: [] };
  afterEach(async () => {
    for (const c of scope.clients.splice(0)) c.destroy();
    await scope.fixture?.close();
    scope.fixture = undefined;
  });
  return scope;
}
