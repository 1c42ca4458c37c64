/**
 * Helpers for interop tests against real NBD peers (qemu-io, qemu-img, nbdkit, nbdinfo, nbdcopy,
 * nbdsh, fio, …): locate a peer, skip — or, in CI, fail — when it is missing, run a command with a
 * hard timeout, and find a free TCP port or a Unix socket path.
 *
 * CI must never skip silently: when `CI=true` a missing peer throws at collection time, so the run
 * goes red instead of green-with-holes.
 */
import { spawn, spawnSync } from 'node:child_process';
import { accessSync, constants, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';

const found = new Map<string, string | undefined>();

/** Absolute path of an executable on PATH, or undefined. Cached. */
export function peer(name: string): string | undefined {
  if (found.has(name)) return found.get(name);
  let path: string | undefined;
  if (name === 'python3-nbd') path = pythonWithNbd();
  else {
    for (const dir of (process.env.PATH ?? '').split(delimiter)) {
      if (dir === '') continue;
      const candidate = join(dir, name);
      try {
        accessSync(candidate, constants.X_OK);
        path = candidate;
        break;
      } catch {
        // not here
      }
    }
  }
  found.set(name, path);
  return path;
}

/**
 * A python3 that can `import nbd` (python3-libnbd installs into the system interpreter, which a
 * pyenv shim may hide). Pseudo-peer name: `python3-nbd`.
 */
function pythonWithNbd(): string | undefined {
  for (const candidate of ['/usr/bin/python3', 'python3']) {
    const r = spawnSync(candidate, ['-c', 'import nbd'], { stdio: 'ignore', timeout: 10_000 });
    if (r.status === 0) return candidate;
  }
  return undefined;
}

/** True when running in CI, where missing peers are an error rather than a skip. */
export const inCi = process.env.CI === 'true';

/**
 * Looks up peers for a test file. Returns their paths when all are present. When one is missing:
 * in CI throws (CI must never skip); elsewhere prints why and returns undefined, so the file does
 * `const p = requirePeers('qemu-io', 'qemu-img'); describe.skipIf(!p)(…)`.
 */
export function requirePeers<const N extends string>(...names: N[]): Record<N, string> | undefined {
  const paths = {} as Record<N, string>;
  const missing: string[] = [];
  for (const name of names) {
    const p = peer(name);
    if (p === undefined) missing.push(name);
    else paths[name] = p;
  }
  if (missing.length === 0) return paths;
  const why = `missing NBD peer(s): ${missing.join(', ')}`;
  if (inCi) throw new Error(`${why} — CI must not skip interop tests; install them in .ci/`);
  console.warn(`[skip] ${why}`);
  return undefined;
}

/** One peer; see {@link requirePeers}. */
export function requirePeer(name: string): string | undefined {
  return requirePeers(name)?.[name];
}

/** Result of {@link run}. */
export interface RunResult {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
  readonly timedOut: boolean;
}

export interface RunOptions {
  /** Kill the whole process group after this long (default 30 s). */
  readonly timeoutMs?: number;
  readonly input?: string | Uint8Array;
  readonly env?: NodeJS.ProcessEnv;
  readonly cwd?: string;
}

/**
 * Runs a command, capturing output, with a hard timeout. The child leads its own process group so a
 * timeout also kills whatever it spawned (nbdinfo `-- [ server ]`, nbdkit `--run`).
 */
export function run(cmd: string, args: readonly string[], options: RunOptions = {}): Promise<RunResult> {
  const timeoutMs = options.timeoutMs ?? 30_000;
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, {
      cwd: options.cwd,
      env: options.env ?? process.env,
      stdio: ['pipe', 'pipe', 'pipe'],
      detached: true,
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      killGroup(child.pid);
    }, timeoutMs);
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({
        code,
        signal,
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: Buffer.concat(err).toString('utf8'),
        timedOut,
      });
    });
    child.stdin.on('error', () => {});
    if (options.input !== undefined) child.stdin.end(options.input);
    else child.stdin.end();
  });
}

/** Like {@link run} but rejects unless the command exits 0; the error carries its output. */
export async function runOk(cmd: string, args: readonly string[], options: RunOptions = {}): Promise<RunResult> {
  const r = await run(cmd, args, options);
  if (r.code !== 0) {
    throw new Error(
      `${cmd} ${args.join(' ')} failed: code ${r.code} signal ${r.signal}${r.timedOut ? ' (timed out)' : ''}\n` +
        `stdout: ${r.stdout.slice(0, 4000)}\nstderr: ${r.stderr.slice(0, 4000)}`,
    );
  }
  return r;
}

function killGroup(pid: number | undefined): void {
  if (pid === undefined) return;
  try {
    process.kill(-pid, 'SIGKILL');
  } catch {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
}

/** A TCP port on 127.0.0.1 that was free a moment ago (for peers that must bind it themselves). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const addr = s.address();
      const port = typeof addr === 'object' && addr !== null ? addr.port : 0;
      s.close(() => resolve(port));
    });
  });
}

/** A fresh temporary directory and a function that removes it. */
export function tmpDir(prefix = 'bg-nbd-'): { path: string; remove: () => void } {
  const path = mkdtempSync(join(tmpdir(), prefix));
  return { path, remove: () => rmSync(path, { recursive: true, force: true }) };
}

let socketCounter = 0;
/**
 * A Unix socket path that does not exist yet, short enough for sun_path (108 bytes), inside a
 * fresh temporary directory that `remove` deletes.
 */
export function tmpSocketPath(): { path: string; remove: () => void } {
  const dir = tmpDir('bgs-');
  return { path: join(dir.path, `s${socketCounter++}.sock`), remove: dir.remove };
}

/** Resolves after `ms` milliseconds. */
export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
