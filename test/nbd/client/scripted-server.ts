/**
 * A minimal NBD server built on the protocol codec, whose negotiation and replies a test can
 * script: for the paths no real server will take (a server without NBD_OPT_GO, one that breaks
 * the reply rules, one that answers late or never). Its default request handler serves a
 * byte array correctly, so a test only scripts what it wants to go wrong.
 */
import { createServer, type Server, type Socket } from 'node:net';
import {
  BaseAllocation,
  Cmd,
  HandshakeFlag,
  Info,
  OptionParser,
  Rep,
  ReplyFlag,
  RequestParser,
  TransmissionFlag,
  encodeAck,
  encodeExportNameReply,
  encodeGreeting,
  encodeInfoBlockSize,
  encodeInfoExport,
  encodeMetaContextReply,
  encodeNoneChunk,
  encodeOffsetDataHeader,
  encodeOptionError,
  encodeSimpleReply,
  type NbdRequest as WireRequest,
} from '../../../src/nbd/protocol/index.js';
import { tmpSocketPath } from '../../helpers/peers.js';

/** What the scripted server agrees to during negotiation. */
export interface ScriptedServerOptions {
  readonly size?: number;
  readonly fixedNewstyle?: boolean;
  readonly go?: boolean;
  readonly structured?: boolean;
  readonly metaContext?: boolean;
  readonly extended?: boolean;
  readonly blockSizes?: readonly [number, number, number];
  /** Transmission flags besides HAS_FLAGS (default: flush, fua, trim, write zeroes). */
  readonly flags?: number;
  /** Handles a request; return false to fall through to the default (correct) handling. */
  readonly onRequest?: (req: WireRequest, conn: ScriptedConnection) => boolean | void;
  /** Delay (ms) before answering NBD_OPT_GO on the `accepted`-th connection (from 1); 0 for none. */
  readonly goDelay?: (accepted: number) => number;
  /** Called when the `accepted`-th connection (from 1) enters transmission. */
  readonly onTransmission?: (conn: ScriptedConnection, accepted: number) => void;
}

/** One client connection of the scripted server, as its request hook sees it. */
export interface ScriptedConnection {
  readonly socket: Socket;
  readonly structured: boolean;
  readonly extended: boolean;
  /** The export's bytes. */
  readonly disk: Uint8Array;
  /** Sends bytes as they are. */
  send(...parts: Uint8Array[]): void;
}

/** A request as the scripted server received it, and on which connection. */
export type RecordedRequest = WireRequest & { readonly connection: number };

/** A running scripted server. */
export interface ScriptedServer {
  readonly uri: string;
  readonly disk: Uint8Array;
  /** Requests received, in order, over every connection (numbered from 1 in `connection`). */
  readonly requests: RecordedRequest[];
  /** Number of connections that reached transmission. */
  readonly connections: number;
  /**
   * Options that arrived before the server had answered the previous one (parsed from the same
   * received chunk: this server answers each option at once), or SET_META_CONTEXT before
   * structured replies were agreed: both are things the spec forbids a client to send.
   */
  readonly optionRuleBreaks: string[];
  /** Destroys every client socket (a crash as the client sees it) and keeps listening. */
  dropClients(): void;
  /** While true, new connections are closed at once (the server is "down"). */
  refuse: boolean;
  close(): Promise<void>;
}

/** Starts a scripted server on a fresh Unix socket. */
export async function startScriptedServer(options: ScriptedServerOptions = {}): Promise<ScriptedServer> {
  const size = options.size ?? 1024 * 1024;
  const disk = new Uint8Array(size);
  const sockets = new Set<Socket>();
  const requests: RecordedRequest[] = [];
  const optionRuleBreaks: string[] = [];
  let connections = 0;
  let accepted = 0;
  const path = tmpSocketPath();
  const state = { refuse: false };
  const server: Server = createServer((socket) => {
    if (state.refuse) {
      socket.destroy();
      return;
    }
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    serve(socket, ++accepted);
  });
  await new Promise<void>((resolve) => server.listen(path.path, resolve));

  const flags = TransmissionFlag.HAS_FLAGS | (options.flags ?? TransmissionFlag.SEND_FLUSH | TransmissionFlag.SEND_FUA | TransmissionFlag.SEND_TRIM | TransmissionFlag.SEND_WRITE_ZEROES);

  function serve(socket: Socket, acceptedAs: number): void {
    const fixed = options.fixedNewstyle ?? true;
    socket.write(encodeGreeting((fixed ? HandshakeFlag.FIXED_NEWSTYLE : 0) | HandshakeFlag.NO_ZEROES));
    const opts = new OptionParser();
    let structured = false;
    let extended = false;
    let noZeroes = false;
    let requestParser: RequestParser | undefined;
    const conn: ScriptedConnection = {
      socket,
      get structured() {
        return structured;
      },
      get extended() {
        return extended;
      },
      disk,
      send: (...parts) => {
        socket.cork();
        for (const p of parts) socket.write(p);
        socket.uncork();
      },
    };
    const transmit = (rest: Buffer): void => {
      const id = ++connections;
      requestParser = new RequestParser((req) => handle(req, conn, id), { extended });
      options.onTransmission?.(conn, acceptedAs);
      if (rest.length > 0) requestParser.push(rest);
    };
    const answerGo = (code: number, infoRequests: readonly number[]): void => {
      socket.write(encodeInfoExport(code, size, flags));
      if (options.blockSizes !== undefined && infoRequests.includes(Info.BLOCK_SIZE)) socket.write(encodeInfoBlockSize(code, ...options.blockSizes));
      socket.write(encodeAck(code));
    };
    socket.on('data', (chunk: Buffer) => {
      if (requestParser !== undefined) {
        try {
          requestParser.push(chunk);
        } catch {
          socket.destroy();
        }
        return;
      }
      opts.push(Buffer.from(chunk));
      let optionsInChunk = 0;
      while (requestParser === undefined) {
        const ev = opts.next();
        if (ev === undefined) break;
        if (ev.kind === 'clientFlags') {
          noZeroes = (ev.flags & HandshakeFlag.NO_ZEROES) !== 0;
          continue;
        }
        const o = ev.option;
        if (++optionsInChunk > 1) optionRuleBreaks.push(`${o.kind} sent before the previous option's reply`);
        if (o.kind === 'setMetaContext' && !structured) optionRuleBreaks.push('setMetaContext before structured replies were agreed');
        if (o.kind === 'exportName') {
          socket.write(encodeExportNameReply(size, flags, noZeroes));
          transmit(opts.takeRemainder());
        } else if (o.kind === 'extendedHeaders' && options.extended === true) {
          extended = true;
          structured = true;
          socket.write(encodeAck(o.code));
        } else if (o.kind === 'structuredReply' && options.structured === true) {
          structured = true;
          socket.write(encodeAck(o.code));
        } else if (o.kind === 'setMetaContext' && options.metaContext === true && structured) {
          if (o.queries.includes(BaseAllocation.NAME)) socket.write(encodeMetaContextReply(o.code, 1, BaseAllocation.NAME));
          socket.write(encodeAck(o.code));
        } else if (o.kind === 'go' && options.go !== false) {
          const delay = options.goDelay?.(acceptedAs) ?? 0;
          const rest = opts.takeRemainder();
          if (delay <= 0) {
            answerGo(o.code, o.infoRequests);
            transmit(rest);
          } else {
            // Park the handshake: the placeholder parser swallows nothing (the client waits for GO).
            requestParser = new RequestParser(() => {}, { extended });
            setTimeout(() => {
              if (socket.destroyed) return;
              answerGo(o.code, o.infoRequests);
              transmit(rest);
            }, delay);
          }
        } else if (o.kind === 'abort') {
          socket.end(encodeAck(o.code));
        } else {
          socket.write(encodeOptionError(o.code, Rep.ERR_UNSUP));
        }
      }
    });
  }

  function handle(req: WireRequest, conn: ScriptedConnection, connection: number): void {
    requests.push({ ...req, connection });
    if (req.type === Cmd.DISC) {
      conn.socket.end();
      return;
    }
    if (options.onRequest?.(req, conn) === true) return;
    reply(req, conn);
  }

  return {
    uri: `nbd+unix:///?socket=${path.path}`,
    disk,
    requests,
    get connections() {
      return connections;
    },
    optionRuleBreaks,
    dropClients: () => {
      for (const s of sockets) s.destroy();
    },
    get refuse() {
      return state.refuse;
    },
    set refuse(value: boolean) {
      state.refuse = value;
    },
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      path.remove();
    },
  };
}

/** The correct reply to `req` (the default behaviour of the scripted server). */
export function reply(req: WireRequest, conn: ScriptedConnection): void {
  const { disk } = conn;
  if (req.type === Cmd.READ) {
    const data = disk.subarray(req.offset, req.offset + req.length);
    if (conn.structured) conn.send(encodeOffsetDataHeader(conn.extended, req, ReplyFlag.DONE, req.offset, req.length), data);
    else conn.send(encodeSimpleReply(req, 0), data);
    return;
  }
  if (req.type === Cmd.WRITE && req.payload !== undefined) disk.set(req.payload, req.offset);
  if (req.type === Cmd.TRIM || req.type === Cmd.WRITE_ZEROES) disk.fill(0, req.offset, req.offset + req.length);
  conn.send(conn.extended ? encodeNoneChunk(true, req) : encodeSimpleReply(req, 0));
}

