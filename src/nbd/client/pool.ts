/**
 * The connections of one client and what happens to requests when they fail.
 *
 * Requests go to the usable connection with the fewest in flight. When a connection ends
 * unexpectedly its unanswered requests go to another usable connection; with none left they are
 * held for `reconnectDelay` ms while a background loop reconnects with backoff, and replayed in
 * submission order once a connection is back. After the delay, held and new requests fail with
 * EIO ("NBD connection lost") until a connection is back.
 *
 * Replaying is safe because every NBD command is idempotent at a fixed offset: a write replayed
 * after the server already did it writes the same bytes again. The one caveat is overlapping
 * writes in flight at the same time: the server may have executed them in either order before the
 * drop, and the replay executes them again in submission order. Callers that need an order between
 * two overlapping writes must, as with any block device, wait for the first before sending the
 * second. Even that does not hold across a drop: the server may still be executing the original
 * of a write whose replay we acknowledged, and it can land after a later write (docs/nbd-client.md,
 * "Replay risks"; NBD offers no way to wait for a dead connection's requests).
 */
import { reportListenerError } from '../../listener-error.js';
import { abortCode } from '../../abort-code.js';
import { performance } from 'node:perf_hooks';
import { BlockError } from '../../errors.js';
import { backoffDelay } from './backoff.js';
import { NbdConnection, type ConnectionHost, type ConnectionSettings } from './connection.js';
import { LeastOutstanding } from './dispatch.js';
import type { NegotiatedExport } from './negotiate.js';
import type { ResolvedClientOptions } from './options.js';
import type { NbdRequest } from './request.js';

/** `disconnected`: the client lost a connection (emitted once per outage). */
export interface NbdDisconnectedEvent {
  readonly error: BlockError;
}
/** `reconnecting`: attempt number `attempt` of this outage starts after `delayMs`. */
export interface NbdReconnectingEvent {
  readonly attempt: number;
  readonly delayMs: number;
  /** Why the previous attempt failed (absent before the first). */
  readonly error?: BlockError;
}
/** `reconnected`: every connection is back, after `attempt` attempts. */
export interface NbdReconnectedEvent {
  readonly attempt: number;
}

/** Events the pool raises through its client. */
export interface PoolEvents {
  disconnected: [NbdDisconnectedEvent];
  reconnecting: [NbdReconnectingEvent];
  reconnected: [NbdReconnectedEvent];
}

type Emit = <K extends keyof PoolEvents>(event: K, ...args: PoolEvents[K]) => void;

class Slot {
  conn: NbdConnection | undefined;
  /** The loop reopening this slot, while it is empty. */
  loop: Promise<void> | undefined;
  get usable(): boolean {
    return this.conn?.usable ?? false;
  }
  get outstanding(): number {
    return this.conn?.outstanding ?? 0;
  }
}

/** The set of connections behind an NbdClient. */
export class ConnectionPool implements ConnectionHost {
  readonly #settings: ConnectionSettings;
  readonly #options: ResolvedClientOptions;
  readonly #picker = new LeastOutstanding();
  #slots: Slot[] = [];
  #profile: NegotiatedExport | undefined;
  #listener: Emit = () => {};
  #held: NbdRequest[] = [];
  #holdTimer: NodeJS.Timeout | undefined;
  /** Fails held requests past their requestTimeout (only sent ones have a deadline). */
  #heldSweep: NodeJS.Timeout | undefined;
  /** No usable connection and the hold window is over: fail requests at once. */
  #failFast = false;
  /** A `disconnected` was emitted and not yet followed by `reconnected`. */
  #outage = false;
  /** Connections made by reconnecting (see #replay: a loss counts only after a new one). */
  #connectionsMade = 0;
  #closing = false;
  readonly #stopReconnect = new AbortController();
  /** Reconnect loops waiting out a backoff: closing wakes them. */
  readonly #sleepers = new Set<() => void>();

  constructor(settings: ConnectionSettings, options: ResolvedClientOptions) {
    this.#settings = settings;
    this.#options = options;
  }

  /**
   * Opens the first connection, then (if the server allows multi-conn) the others. Fails, closing
   * whatever it opened, if any of them fails.
   */
  async start(): Promise<NegotiatedExport> {
    const first = await NbdConnection.open(this.#settings, this);
    const profile = first.negotiated;
    this.#profile = profile;
    const multi = (profile.transmissionFlags & 0x100) !== 0;
    const count = multi ? this.#options.connections : 1;
    const rest = await Promise.allSettled(Array.from({ length: count - 1 }, () => this.#openMatching(this.#settings)));
    const opened = [first, ...rest.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []))];
    const failed = rest.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    const dropped = opened.some((c) => !c.usable);
    if (failed !== undefined || dropped) {
      await Promise.all(opened.map((c) => c.disconnect()));
      throw failed !== undefined
        ? failed.reason
        : new BlockError('EIO', 'nbd: a connection closed while the others were being opened', { details: { op: 'connect' } });
    }
    this.#slots = opened.map((conn) => Object.assign(new Slot(), { conn }));
    return profile;
  }

  /** Routes pool events to the client. */
  set emitter(emit: Emit) {
    this.#listener = emit;
  }

  /**
   * Raises an event. A listener that throws must not break the pool: the throw would land in a
   * socket handler (an uncaught exception) or end the reconnect loop. It becomes a process warning.
   */
  #emit<K extends keyof PoolEvents>(event: K, ...args: PoolEvents[K]): void {
    try {
      this.#listener(event, ...args);
    } catch (err) {
      reportListenerError('nbd', event, err, 'BLOCKGRAPH_NBD_LISTENER');
    }
  }

  /** Connections currently usable. */
  get liveConnections(): number {
    return this.#slots.filter((s) => s.usable).length;
  }

  /** Connections the pool keeps open when healthy. */
  get connections(): number {
    return this.#slots.length;
  }

  /** Sends a request, or holds or fails it when no connection is usable. */
  dispatch(req: NbdRequest): void {
    const slots = this.#slots;
    const slot = slots.length === 1 ? slots[0] : slots[this.#picker.pick(slots)];
    const conn = slot?.conn;
    if (conn !== undefined && conn.usable) conn.send(req);
    else this.#holdOrFail(req);
  }

  /** Stops reconnecting; requests held for a reconnect fail with ESHUTDOWN. */
  beginClose(): void {
    if (this.#closing) return;
    this.#closing = true;
    this.#stopReconnect.abort();
    for (const wake of [...this.#sleepers]) wake();
    this.#clearHold();
    this.#failHeld((req) => new BlockError('ESHUTDOWN', `${req.driver}: ${req.op} abandoned: client closed while disconnected`, { details: req.details }));
  }

  /**
   * The close deadline passed with requests still unanswered: destroys every connection and fails
   * what is left with ESHUTDOWN.
   */
  async abortAll(): Promise<void> {
    this.beginClose();
    const error = (req: NbdRequest): BlockError =>
      new BlockError('ESHUTDOWN', `${req.driver}: ${req.label} abandoned: no reply before the close deadline`, {
        details: req.details,
      });
    await Promise.all(this.#slots.map((s) => s.conn?.abort(error)));
  }

  /** Disconnects every connection politely (after the client drained its requests). */
  async disconnectAll(): Promise<void> {
    this.beginClose();
    await Promise.all(this.#slots.map((s) => s.loop));
    await Promise.all(this.#slots.map((s) => s.conn?.disconnect()));
  }

  // ---- ConnectionHost ------------------------------------------------------------------------

  connectionLost(connection: NbdConnection, error: BlockError, unanswered: NbdRequest[]): void {
    const slot = this.#slots.find((s) => s.conn === connection);
    if (slot === undefined) return; // lost before start() adopted it, with nothing in flight
    slot.conn = undefined;
    if (!this.#outage) {
      this.#outage = true;
      this.#emit('disconnected', { error });
    }
    if (!this.#slots.some((s) => s.usable)) this.#startHold();
    for (const req of unanswered) this.#replay(req, false);
    this.#startReconnect();
  }

  requestRefusedByShutdown(_connection: NbdConnection, request: NbdRequest): void {
    if (!this.#slots.some((s) => s.usable)) this.#startHold();
    // Refused by a live connection: always counts, or a server that keeps refusing would loop.
    this.#replay(request, true);
  }

  /**
   * Sends a request again after its connection failed it, unless it has used up its replays or
   * its time: a server that breaks every connection must not keep requests pending for ever.
   */
  #replay(req: NbdRequest, counts: boolean): void {
    const limit = this.#options.replayLimit;
    // When the server goes away, every connection dies, but each still looks usable until its own
    // close event: a request replayed onto a sibling that was already dying is lost again in the
    // same outage. Such a loss counts only if a connection was made since the request's last loss
    // — each counted loss then needs a new connection, and the uncounted ones are bounded by the
    // connections that existed.
    if (counts || req.lostAt !== this.#connectionsMade) req.losses++;
    req.lostAt = this.#connectionsMade;
    if (req.losses > limit) {
      req.reject(
        new BlockError('EIO', `${req.driver}: ${req.label} failed: its connection was lost again after it was replayed ${req.losses - 1} times (replayLimit ${limit})`, {
          details: req.details,
        }),
      );
      return;
    }
    this.#dispatchInTime(req, performance.now());
  }

  /**
   * Sends a request again unless it is past its requestTimeout: sent again late, it would only
   * time out on the new connection and take that connection down.
   */
  #dispatchInTime(req: NbdRequest, now: number): void {
    const timeout = this.#options.requestTimeout;
    if (timeout > 0 && req.expired(timeout, now)) req.reject(req.timedOut(timeout));
    else this.dispatch(req);
  }

  // ---- holding -------------------------------------------------------------------------------

  #holdOrFail(req: NbdRequest): void {
    if (!this.#closing && this.#options.reconnect && this.#options.reconnectDelay > 0 && !this.#failFast) {
      if (req.signal?.aborted === true) {
        req.reject(cancelledWhileHeld(req, req.signal));
        return;
      }
      this.#startHold();
      // Replays keep submission order: a request coming back from a lost connection may be older
      // than requests already waiting.
      let i = this.#held.length;
      while (i > 0 && this.#held[i - 1].seq > req.seq) i--;
      this.#held.splice(i, 0, req);
      this.#watchHeld(req);
      return;
    }
    req.reject(this.#lostError(req));
  }

  /**
   * What may end a hold early. An abort: a held request is on no wire, so it can fail with
   * ECANCELED at once. Its requestTimeout: a request that was sent keeps its deadline while held,
   * as it would on a hung connection.
   */
  #watchHeld(req: NbdRequest): void {
    const signal = req.signal;
    if (signal !== undefined) {
      const onAbort = (): void => {
        if (this.#unhold(req)) req.reject(cancelledWhileHeld(req, signal));
      };
      req.onAbortWhileHeld = onAbort;
      signal.addEventListener('abort', onAbort, { once: true });
    }
    const timeout = this.#options.requestTimeout;
    if (timeout > 0 && req.sends > 0 && this.#heldSweep === undefined) {
      this.#heldSweep = setInterval(() => this.#expireHeld(timeout), Math.max(5, Math.min(1000, timeout / 4)));
      this.#heldSweep.unref();
    }
  }

  #expireHeld(timeout: number): void {
    const now = performance.now();
    for (const req of this.#held.filter((r) => r.expired(timeout, now))) {
      this.#unhold(req);
      req.reject(req.timedOut(timeout));
    }
    if (!this.#held.some((r) => r.sends > 0)) this.#stopHeldSweep();
  }

  #stopHeldSweep(): void {
    if (this.#heldSweep !== undefined) clearInterval(this.#heldSweep);
    this.#heldSweep = undefined;
  }

  /** Takes `req` out of the hold; false when it was not held. */
  #unhold(req: NbdRequest): boolean {
    const i = this.#held.indexOf(req);
    if (i < 0) return false;
    this.#held.splice(i, 1);
    released(req);
    return true;
  }

  #lostError(req: NbdRequest): BlockError {
    const why = this.#closing
      ? 'the client is closing'
      : !this.#options.reconnect
        ? 'reconnection is off'
        : this.#options.reconnectDelay > 0
          ? `not back within reconnectDelay (${this.#options.reconnectDelay} ms)`
          : 'reconnectDelay is 0';
    // Closing is the caller's doing, not the server's: ESHUTDOWN, as for everything else refused then.
    return new BlockError(this.#closing ? 'ESHUTDOWN' : 'EIO', `NBD connection lost: ${req.driver}: ${req.label} failed (${why})`, {
      details: req.details,
    });
  }

  #startHold(): void {
    const delay = this.#options.reconnectDelay;
    if (this.#holdTimer !== undefined || this.#failFast || this.#closing) return;
    if (delay === 0 || !this.#options.reconnect) {
      this.#failFast = true;
      return;
    }
    this.#holdTimer = setTimeout(() => {
      this.#holdTimer = undefined;
      this.#failFast = true;
      this.#failHeld((req) => this.#lostError(req));
    }, delay);
  }

  #clearHold(): void {
    if (this.#holdTimer !== undefined) clearTimeout(this.#holdTimer);
    this.#holdTimer = undefined;
  }

  #failHeld(error: (req: NbdRequest) => BlockError): void {
    const held = this.#held;
    this.#held = [];
    this.#stopHeldSweep();
    for (const req of held) {
      released(req);
      req.reject(error(req));
    }
  }

  /** A connection is usable again: release what was held, in submission order. */
  #connectionBack(): void {
    this.#clearHold();
    this.#failFast = false;
    const held = this.#held;
    this.#held = [];
    this.#stopHeldSweep();
    const now = performance.now();
    for (const req of held) {
      released(req);
      this.#dispatchInTime(req, now);
    }
  }

  // ---- reconnecting --------------------------------------------------------------------------

  /**
   * Every empty slot reconnects on its own schedule: one handshake that stalls (up to
   * connectTimeout) must not keep the other slots from coming back, nor a slot lost meanwhile from
   * starting at once.
   */
  #startReconnect(): void {
    if (!this.#options.reconnect || this.#closing) return;
    for (const slot of this.#slots) {
      if (slot.conn !== undefined || slot.loop !== undefined) continue;
      slot.loop = this.#reconnectSlot(slot)
        .catch((err: unknown) => {
          // Not expected (listeners are guarded); report it rather than leave a rejection unhandled.
          process.emitWarning(`nbd: the reconnect loop failed: ${err instanceof Error ? err.message : String(err)}`, { code: 'BLOCKGRAPH_NBD_RECONNECT' });
        })
        .finally(() => {
          slot.loop = undefined;
          // Lost again between adoption and the end of this loop: start over.
          if (slot.conn === undefined) this.#startReconnect();
        });
    }
  }

  async #reconnectSlot(slot: Slot): Promise<void> {
    let lastError: BlockError | undefined;
    for (let attempt = 1; !this.#closing; attempt++) {
      const delayMs = backoffDelay(attempt, this.#options.backoff);
      this.#emit('reconnecting', lastError === undefined ? { attempt, delayMs } : { attempt, delayMs, error: lastError });
      await this.#sleep(delayMs);
      if (this.#closing) return;
      let conn: NbdConnection;
      try {
        conn = await this.#openMatching({ ...this.#settings, signal: this.#stopReconnect.signal });
      } catch (err) {
        lastError = err as BlockError;
        continue;
      }
      if (this.#closing) {
        void conn.disconnect();
        return;
      }
      if (!conn.usable) {
        // It opened, then dropped before it was adopted; its connectionLost found no slot.
        lastError = new BlockError('EIO', 'nbd: a connection closed right after it was opened', { details: { op: 'connect' } });
        continue;
      }
      slot.conn = conn;
      this.#connectionsMade++;
      this.#connectionBack();
      if (this.#outage && this.#slots.every((s) => s.usable)) {
        this.#outage = false;
        this.#emit('reconnected', { attempt });
      }
      return;
    }
  }

  /** Opens a connection and checks it sees the same export as the first one. */
  async #openMatching(settings: ConnectionSettings): Promise<NbdConnection> {
    const conn = await NbdConnection.open(settings, this);
    const mismatch = this.#profile === undefined ? undefined : differs(this.#profile, conn.negotiated);
    if (mismatch !== undefined) {
      await conn.disconnect();
      throw new BlockError('EIO', `nbd: the server now offers a different export (${mismatch}); not using it`, { details: { op: 'connect' } });
    }
    return conn;
  }

  /** Waits `ms`, or less when closing begins. */
  #sleep(ms: number): Promise<void> {
    if (ms <= 0) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      timer.unref();
      const sleepers = this.#sleepers;
      function done(): void {
        clearTimeout(timer);
        sleepers.delete(done);
        resolve();
      }
      sleepers.add(done);
    });
  }

}

/** How two negotiations of the same export differ, if they do in a way the client relies on. */
function differs(a: NegotiatedExport, b: NegotiatedExport): string | undefined {
  if (a.size !== b.size) return `size ${a.size} → ${b.size}`;
  if (a.transmissionFlags !== b.transmissionFlags) return `flags 0x${a.transmissionFlags.toString(16)} → 0x${b.transmissionFlags.toString(16)}`;
  if (a.replyMode !== b.replyMode) return `replies ${a.replyMode} → ${b.replyMode}`;
  if ((a.metaContextId === undefined) !== (b.metaContextId === undefined)) return 'block status availability changed';
  const sa = a.blockSizes;
  const sb = b.blockSizes;
  if ((sa?.minimum ?? 1) !== (sb?.minimum ?? 1) || (sa?.maximum ?? 0) !== (sb?.maximum ?? 0)) return 'block sizes changed';
  return undefined;
}

/** A held request leaves the hold: its abort no longer concerns the pool. */
function released(req: NbdRequest): void {
  if (req.onAbortWhileHeld === undefined) return;
  req.signal?.removeEventListener('abort', req.onAbortWhileHeld);
  req.onAbortWhileHeld = undefined;
}

function cancelledWhileHeld(req: NbdRequest, signal: AbortSignal): BlockError {
  return new BlockError(abortCode(signal), `${req.driver}: ${req.label} aborted while waiting for a connection`, {
    cause: signal.reason,
    details: req.details,
  });
}
