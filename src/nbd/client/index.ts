/**
 * The NBD client: {@link NbdClient}, a BlockDriver backed by an export on an NBD server.
 */
export { NbdClient, type NbdClientEvents, type NbdClientInfo } from './client.js';
export { type NbdClientOptions, type NbdNegotiationOptions } from './options.js';
export { type BackoffOptions } from './backoff.js';
export { type NbdClientPsk, type NbdClientTlsOptions } from './tls.js';
export {
  NBD_DEFAULT_PORT,
  formatNbdUri,
  parseNbdUri,
  resolveNbdAddress,
  type NbdAddress,
  type NbdAddressOptions,
  type NbdTcpAddress,
  type NbdUnixAddress,
} from './address.js';
export {
  type NbdDisconnectedEvent,
  type NbdReconnectingEvent,
  type NbdReconnectedEvent,
  type PoolEvents as NbdConnectionEvents,
} from './pool.js';
export { type NbdBlockSizes } from './negotiate.js';
