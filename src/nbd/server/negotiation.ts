/**
 * Option haggling, server side: answers one decoded option at a time and says what the connection
 * does next. Pure protocol policy — no sockets: replies go out through `send`, TLS upgrades and
 * disconnects are left to the connection.
 */
import {
  BaseAllocation,
  ClientFlag,
  encodeAck,
  encodeExportNameReply,
  encodeInfoBlockSize,
  encodeInfoDescription,
  encodeInfoExport,
  encodeInfoName,
  encodeMetaContextReply,
  encodeOptionError,
  encodeServerReply,
  Info,
  Opt,
  Rep,
  type InfoOption,
  type MetaContextOption,
  type NbdOption,
} from '../protocol/index.js';
import type { ExportEntry, ExportRegistry } from './export-registry.js';
import { blockSizes, needsBlockSizeInfo, transmissionFlags, type BlockSizes } from './export-flags.js';
import type { ResolvedServerOptions } from './options.js';

/** The id base:allocation carries in BLOCK_STATUS replies (any nonzero value would do). */
export const BASE_ALLOCATION_ID = 1;

/** What a connection needs to enter transmission. */
export interface SessionParams {
  readonly entry: ExportEntry;
  readonly flags: number;
  readonly structured: boolean;
  readonly extended: boolean;
  /** Context id of base:allocation when the client selected it for this export. */
  readonly allocationContext: number | undefined;
  readonly sizes: BlockSizes;
}

/** What the connection does after an option was answered. */
export type NegotiationStep =
  | { readonly kind: 'continue' }
  /** ABORT was acknowledged: close the connection. */
  | { readonly kind: 'abort' }
  /** STARTTLS was acknowledged: upgrade the socket, then call `tlsStarted()`. */
  | { readonly kind: 'startTls' }
  /** GO or EXPORT_NAME succeeded; every reply is sent. */
  | { readonly kind: 'transmission'; readonly session: SessionParams }
  /** The spec leaves no answer but a hard disconnect (EXPORT_NAME that cannot be served). */
  | { readonly kind: 'disconnect'; readonly reason: string };

/** Settings of a {@link Negotiator}. */
export interface NegotiatorConfig {
  readonly registry: ExportRegistry;
  readonly options: ResolvedServerOptions;
  /** undefined: NOTLS. Otherwise whether TLS is mandatory (FORCEDTLS) or optional. */
  readonly tls: { readonly required: boolean } | undefined;
  readonly isClosing: () => boolean;
  readonly send: (bytes: Buffer) => void;
}

const CONTINUE: NegotiationStep = Object.freeze({ kind: 'continue' });
const KNOWN_CLIENT_FLAGS = ClientFlag.FIXED_NEWSTYLE | ClientFlag.NO_ZEROES;

/** The negotiation state of one connection. */
export class Negotiator {
  readonly #config: NegotiatorConfig;
  #noZeroes = false;
  #tlsActive = false;
  #structured = false;
  #extended = false;
  /** Export named by the last successful SET_META_CONTEXT that selected base:allocation. */
  #allocationExport: string | undefined;

  constructor(config: NegotiatorConfig) {
    this.#config = config;
  }

  /** Checks the client flags; returns a reason to disconnect, or undefined. */
  clientFlags(flags: number): string | undefined {
    // The spec: a server MUST drop a client that sets a flag it does not know.
    if ((flags & ~KNOWN_CLIENT_FLAGS) !== 0) return `unknown client flags 0x${flags.toString(16)}`;
    this.#noZeroes = (flags & ClientFlag.NO_ZEROES) !== 0;
    return undefined;
  }

  /** TLS is now running: forget everything negotiated in plain text, as the spec requires. */
  tlsStarted(): void {
    this.#tlsActive = true;
    this.#structured = false;
    this.#extended = false;
    this.#allocationExport = undefined;
  }

  /** Negotiated state, for diagnostics. */
  get state(): { structuredReplies: boolean; extendedHeaders: boolean; tls: boolean } {
    return { structuredReplies: this.#structured, extendedHeaders: this.#extended, tls: this.#tlsActive };
  }

  /** Answers one option. */
  handle(option: NbdOption): NegotiationStep {
    const { tls } = this.#config;
    if (this.#config.isClosing()) {
      if (option.kind === 'abort') return this.#abort(option.code);
      // EXPORT_NAME has no error reply (also when it was malformed: parsed as invalid or too big).
      if (option.code === Opt.EXPORT_NAME) return { kind: 'disconnect', reason: 'server is shutting down' };
      return this.#error(option.code, Rep.ERR_SHUTDOWN, 'server is shutting down');
    }
    if (tls?.required === true && !this.#tlsActive) {
      // FORCEDTLS: only STARTTLS and ABORT are answered; EXPORT_NAME cannot be refused politely.
      if (option.kind === 'startTls') return this.#startTls(option.code);
      if (option.kind === 'abort') return this.#abort(option.code);
      if (option.code === Opt.EXPORT_NAME) return { kind: 'disconnect', reason: 'EXPORT_NAME before STARTTLS on a TLS-only server' };
      // A malformed STARTTLS is the option the client may send here: it learns what is wrong with it.
      if (option.kind === 'invalid' && option.code === Opt.STARTTLS) return this.#error(option.code, Rep.ERR_INVALID, option.reason);
      return this.#error(option.code, Rep.ERR_TLS_REQD, 'TLS is required; send NBD_OPT_STARTTLS first');
    }
    switch (option.kind) {
      case 'exportName':
        return this.#exportName(option.name);
      case 'abort':
        return this.#abort(option.code);
      case 'list':
        return this.#list(option.code);
      case 'startTls':
        return this.#startTls(option.code);
      case 'info':
      case 'go':
        return this.#infoOrGo(option);
      case 'structuredReply':
        if (this.#extended) return this.#error(option.code, Rep.ERR_EXT_HEADER_REQD, 'extended headers already negotiated');
        if (this.#structured) return this.#error(option.code, Rep.ERR_INVALID, 'structured replies already negotiated');
        this.#structured = true;
        return this.#ack(option.code);
      case 'extendedHeaders':
        if (this.#extended) return this.#error(option.code, Rep.ERR_INVALID, 'extended headers already negotiated');
        this.#extended = true;
        this.#structured = true;
        return this.#ack(option.code);
      case 'listMetaContext':
      case 'setMetaContext':
        return this.#metaContext(option);
      case 'unknown':
        return this.#error(option.code, Rep.ERR_UNSUP, `option ${option.code} is not supported`);
      case 'invalid':
        if (option.code === Opt.EXPORT_NAME) return { kind: 'disconnect', reason: `invalid EXPORT_NAME: ${option.reason}` };
        return this.#error(option.code, Rep.ERR_INVALID, option.reason);
      case 'tooBig':
        if (option.code === Opt.EXPORT_NAME) return { kind: 'disconnect', reason: 'EXPORT_NAME too long' };
        return this.#error(option.code, Rep.ERR_TOO_BIG, `option data of ${option.length} bytes is too long`);
    }
  }

  #exportName(name: string): NegotiationStep {
    // EXPORT_NAME has no reply in which to refuse, and its client would speak compact headers to
    // a server expecting extended ones: disconnect, as qemu does.
    if (this.#extended) return { kind: 'disconnect', reason: 'EXPORT_NAME after extended headers were negotiated' };
    const entry = this.#config.registry.get(name);
    if (entry === undefined) return { kind: 'disconnect', reason: `EXPORT_NAME for unknown export ${JSON.stringify(name)}` };
    const session = this.#session(entry);
    this.#config.send(encodeExportNameReply(entry.driver.size, session.flags, this.#noZeroes));
    return { kind: 'transmission', session };
  }

  #infoOrGo(option: InfoOption): NegotiationStep {
    const { code, name, infoRequests } = option;
    const entry = this.#config.registry.get(name);
    if (entry === undefined) return this.#error(code, Rep.ERR_UNKNOWN, `no export named ${JSON.stringify(name).slice(0, 200)}`);
    const session = this.#session(entry);
    const send = this.#config.send;
    send(encodeInfoExport(code, entry.driver.size, session.flags));
    const requested = new Set(infoRequests);
    if (requested.has(Info.NAME)) send(encodeInfoName(code, entry.name));
    if (requested.has(Info.DESCRIPTION) && entry.description !== '') send(encodeInfoDescription(code, entry.description));
    // Unrequested block sizes only when the client must know them; the kernel asks for nothing.
    if (requested.has(Info.BLOCK_SIZE) || needsBlockSizeInfo(session.sizes)) {
      send(encodeInfoBlockSize(code, session.sizes.minimum, session.sizes.preferred, session.sizes.maximum));
    }
    send(encodeAck(code));
    return option.kind === 'go' ? { kind: 'transmission', session } : CONTINUE;
  }

  #session(entry: ExportEntry): SessionParams {
    const caps = entry.driver.capabilities;
    return {
      entry,
      flags: transmissionFlags({ caps, readOnly: entry.readOnly, structured: this.#structured }),
      structured: this.#structured,
      extended: this.#extended,
      allocationContext: this.#allocationExport === entry.name ? BASE_ALLOCATION_ID : undefined,
      sizes: blockSizes(entry.driver.limits, this.#config.options.maxPayload),
    };
  }

  #list(code: number): NegotiationStep {
    if (!this.#config.options.allowList) return this.#error(code, Rep.ERR_POLICY, 'listing exports is disabled');
    for (const e of this.#config.registry.list()) this.#config.send(encodeServerReply(code, e.name, e.description));
    return this.#ack(code);
  }

  #startTls(code: number): NegotiationStep {
    if (this.#config.tls === undefined) return this.#error(code, Rep.ERR_POLICY, 'TLS is not configured on this server');
    if (this.#tlsActive) return this.#error(code, Rep.ERR_INVALID, 'TLS is already active');
    this.#config.send(encodeAck(code));
    return { kind: 'startTls' };
  }

  #metaContext(option: MetaContextOption): NegotiationStep {
    const { code, exportName, queries } = option;
    const set = option.kind === 'setMetaContext';
    // SET replaces the selection even when it fails.
    if (set) this.#allocationExport = undefined;
    if (set && !this.#structured) return this.#error(code, Rep.ERR_INVALID, 'negotiate structured replies before SET_META_CONTEXT');
    if (!this.#config.registry.has(exportName)) {
      return this.#error(code, Rep.ERR_UNKNOWN, `no export named ${JSON.stringify(exportName).slice(0, 200)}`);
    }
    // LIST: no query lists all, `base:` is a wildcard. SET: only the exact name selects (the spec
    // says to ignore `base:` there). Unknown names and namespaces are ignored, not errors.
    const matches = set
      ? queries.includes(BaseAllocation.NAME)
      : queries.length === 0 || queries.some((q) => q === BaseAllocation.NAME || q === 'base:');
    if (matches) {
      this.#config.send(encodeMetaContextReply(code, set ? BASE_ALLOCATION_ID : 0, BaseAllocation.NAME));
      if (set) this.#allocationExport = exportName;
    }
    return this.#ack(code);
  }

  #abort(code: number): NegotiationStep {
    this.#config.send(encodeAck(code));
    return { kind: 'abort' };
  }

  #ack(code: number): NegotiationStep {
    this.#config.send(encodeAck(code));
    return CONTINUE;
  }

  #error(code: number, type: number, message: string): NegotiationStep {
    this.#config.send(encodeOptionError(code, type, message));
    return CONTINUE;
  }
}
