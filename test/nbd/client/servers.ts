/**
 * Real NBD servers for the client's interop tests: nbdkit, qemu-nbd and nbd-server, started in the
 * foreground (or, for nbd-server, with a PID file) on a loopback endpoint and stopped by PID.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { freePort, sleep, tmpDir } from '../../helpers/peers.js';

/** The process exists and is not a zombie waiting to be reaped. */
function alive(pid: number): boolean {
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

/** A running server. */
export interface RunningServer {
  /** URI of its export. */
  readonly uri: string;
  /** Stops the server (SIGTERM, then SIGKILL) and waits for it to exit. */
  stop(): Promise<void>;
  /** Starts the same server again on the same endpoint. */
  restart(): Promise<void>;
  /** Kills the server with SIGKILL: a crash, with no chance to finish anything. */
  crash(): Promise<void>;
  /** Sends SIGTERM and waits (up to 10 s) for the server to exit on its own terms. */
  terminate(): Promise<void>;
}

/** Polls until something accepts connections on the endpoint (bounded). */
export async function waitForEndpoint(endpoint: { path: string } | { port: number }, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = 'path' in endpoint ? connect(endpoint.path) : connect(endpoint.port, '127.0.0.1');
      s.once('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`server did not start listening within ${timeoutMs} ms`);
    await sleep(20);
  }
}

async function kill(child: ChildProcess | undefined, signal: NodeJS.Signals = 'SIGTERM', graceMs = 3000): Promise<void> {
  if (child === undefined || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill(signal);
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
  await exited;
  clearTimeout(timer);
}

/** A foreground server process that can be killed and restarted on the same endpoint. */
class ForegroundServer implements RunningServer {
  readonly uri: string;
  readonly #cmd: string;
  readonly #args: readonly string[];
  readonly #endpoint: { path: string } | { port: number };
  #child: ChildProcess | undefined;
  #stderr = '';

  constructor(cmd: string, args: readonly string[], uri: string, endpoint: { path: string } | { port: number }) {
    this.#cmd = cmd;
    this.#args = args;
    this.uri = uri;
    this.#endpoint = endpoint;
  }

  async restart(): Promise<void> {
    await this.stop();
    // A killed server leaves its socket file behind; a restart script removes it first.
    if ('path' in this.#endpoint) rmSync(this.#endpoint.path, { force: true });
    const child = spawn(this.#cmd, this.#args, { stdio: ['ignore', 'ignore', 'pipe'] });
    this.#child = child;
    this.#stderr = '';
    child.stderr?.on('data', (b: Buffer) => (this.#stderr = (this.#stderr + b.toString()).slice(-4000)));
    const failed = new Promise<never>((_, reject) =>
      child.once('exit', (code) => reject(new Error(`${this.#cmd} exited with ${code}: ${this.#stderr}`))),
    );
    failed.catch(() => {});
    await Promise.race([waitForEndpoint(this.#endpoint), failed]);
  }

  async stop(): Promise<void> {
    const child = this.#child;
    this.#child = undefined;
    await kill(child);
  }

  async crash(): Promise<void> {
    const child = this.#child;
    this.#child = undefined;
    await kill(child, 'SIGKILL');
  }

  async terminate(): Promise<void> {
    const child = this.#child;
    this.#child = undefined;
    await kill(child, 'SIGTERM', 10_000);
  }
}

/** `nbdkit -f -U SOCK [filters…] PLUGIN ARGS…` on a fresh Unix socket. */
export async function startNbdkit(pluginArgs: readonly string[], dir = tmpDir('bgc-')): Promise<RunningServer & { socket: string; removeDir(): void }> {
  const socket = join(dir.path, 'nbdkit.sock');
  const server = new ForegroundServer('nbdkit', ['-f', '-U', socket, ...pluginArgs], `nbd+unix:///?socket=${socket}`, { path: socket });
  await server.restart();
  return Object.assign(server, { socket, removeDir: dir.remove });
}

/** `qemu-nbd -f raw -k SOCK FILE` (optionally extra flags) on a fresh Unix socket. */
export async function startQemuNbd(
  file: string,
  extra: readonly string[] = [],
  dir = tmpDir('bgc-'),
): Promise<RunningServer & { socket: string; removeDir(): void }> {
  const socket = join(dir.path, 'qemu.sock');
  const server = new ForegroundServer('qemu-nbd', ['-f', 'raw', '-k', socket, '--persistent', ...extra, file], `nbd+unix:///?socket=${socket}`, {
    path: socket,
  });
  await server.restart();
  return Object.assign(server, { socket, removeDir: dir.remove });
}

/**
 * nbd-server 3.24 exporting `file` as `exportName` on a loopback port. It daemonises (in `-d`
 * mode it would serve a single client), so it is stopped through its PID file.
 */
export async function startNbdServer(file: string, exportName = 'disk', dir = tmpDir('bgc-')): Promise<RunningServer & { removeDir(): void }> {
  const port = await freePort();
  const cfg = join(dir.path, 'nbd-server.conf');
  const pidFile = join(dir.path, 'nbd-server.pid');
  writeFileSync(
    cfg,
    `[generic]\nuser = ${process.getuid?.() === 0 ? 'root' : process.env.USER ?? 'nobody'}\ngroup = ${process.getgid?.() === 0 ? 'root' : 'nogroup'}\n` +
      `listenaddr = 127.0.0.1\nport = ${port}\nallowlist = true\n\n[${exportName}]\nexportname = ${file}\nflush = true\nfua = true\ntrim = true\n`,
  );
  let pid: number | undefined;
  // nbd-server takes over a second to act on SIGTERM; tests do not need its goodbye, so it is
  // killed outright (the per-client children exit when their client disconnects).
  const stop = async (): Promise<void> => {
    if (pid === undefined) return;
    const p = pid;
    pid = undefined;
    try {
      process.kill(p, 'SIGKILL');
    } catch {
      return;
    }
    for (let i = 0; i < 250 && alive(p); i++) await sleep(10);
  };
  const restart = async (): Promise<void> => {
    await stop();
    const child = spawn('nbd-server', ['-C', cfg, '-p', pidFile], { stdio: 'ignore' });
    await new Promise<void>((resolve) => child.once('exit', () => resolve()));
    await waitForEndpoint({ port });
    pid = Number(readFileSync(pidFile, 'utf8').trim());
  };
  await restart();
  return { uri: `nbd://127.0.0.1:${port}/${exportName}`, stop, restart, crash: stop, terminate: stop, removeDir: dir.remove };
}
