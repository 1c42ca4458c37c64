/**
 * `node:diagnostics_channel` channels of the NBD server. Publishing is skipped when nobody
 * subscribes, so the request channel costs one property read per request on the hot path.
 *
 * - `blockgraph:nbd:server:connection` `{ server, connectionId, remoteAddress }` — a client connected.
 * - `blockgraph:nbd:server:negotiated` `{ server, connectionId, export, structuredReplies, extendedHeaders, tls }`
 * - `blockgraph:nbd:server:request` `{ connectionId, export, command, offset, length, error }` — a request finished
 *   (`error` is the NBD error value, 0 on success).
 * - `blockgraph:nbd:server:disconnect` `{ server, connectionId, export, reason }`
 * - `blockgraph:nbd:server:error` `{ server, connectionId, error }` — a connection failed (protocol violation, socket error).
 */
import { channel } from 'node:diagnostics_channel';

/** Names of the server's diagnostics channels. */
export const NBD_SERVER_CHANNELS = Object.freeze({
  connection: 'blockgraph:nbd:server:connection',
  negotiated: 'blockgraph:nbd:server:negotiated',
  request: 'blockgraph:nbd:server:request',
  disconnect: 'blockgraph:nbd:server:disconnect',
  error: 'blockgraph:nbd:server:error',
});

export const connectionChannel = channel(NBD_SERVER_CHANNELS.connection);
export const negotiatedChannel = channel(NBD_SERVER_CHANNELS.negotiated);
export const requestChannel = channel(NBD_SERVER_CHANNELS.request);
export const disconnectChannel = channel(NBD_SERVER_CHANNELS.disconnect);
export const errorChannel = channel(NBD_SERVER_CHANNELS.error);

/** Publishes one finished request (callers check `requestChannel.hasSubscribers` first). */
export function publishRequest(
  connectionId: number,
  exportName: string,
  req: { readonly type: number; readonly offset: number; readonly length: number },
  error: number,
): void {
  requestChannel.publish({ connectionId, export: exportName, command: req.type, offset: req.offset, length: req.length, error });
}
