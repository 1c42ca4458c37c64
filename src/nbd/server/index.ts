/**
 * The NBD server: serves any BlockDriver to qemu, libnbd, nbdkit's nbd plugin, the Linux kernel
 * client and blockgraph's own NbdClient. See docs/nbd-server.md.
 */
export { NbdServer, type NbdExportInfo, type NbdListenOptions, type NbdServerCloseOptions } from './server.js';
export type { NbdExportOptions, NbdExportRemoveMode, NbdExportStats } from './export-registry.js';
export type { NbdConnectionInfo, NbdServerEvents, NbdServerOptions } from './options.js';
export { loadNbdPskFile, parseNbdPskFile, type NbdServerTlsOptions, type NbdPskKeys } from './tls.js';
export { LISTEN_FDS_START, socketActivationFds, type SocketActivationOptions } from './socket-activation.js';
export { NBD_SERVER_CHANNELS } from './diagnostics.js';
