/**
 * systemd-style socket activation: a launcher (systemd, `nbdinfo -- [ cmd ]`, `nbdcopy -- [ cmd ]`,
 * qemu-nbd's and nbdkit's own test harnesses) binds and listens on a socket, passes it as file
 * descriptor 3 onwards and sets `LISTEN_PID` to the child's pid and `LISTEN_FDS` to the count.
 */

/** The first file descriptor a socket-activation launcher passes (`SD_LISTEN_FDS_START`). */
export const LISTEN_FDS_START = 3;

/** Options of {@link socketActivationFds}. */
export interface SocketActivationOptions {
  /** Environment to read (default `process.env`). */
  readonly env?: NodeJS.ProcessEnv;
  /** Our pid, which `LISTEN_PID` must name (default `process.pid`). */
  readonly pid?: number;
  /**
   * Remove `LISTEN_PID`, `LISTEN_FDS` and `LISTEN_FDNAMES` from the environment afterwards, so
   * child processes do not mistake the sockets for theirs (default true, as `sd_listen_fds(1)`).
   */
  readonly unsetEnvironment?: boolean;
}

/**
 * The listening sockets passed by a socket-activation launcher, as file descriptors (empty when
 * the process was not socket-activated, or the variables were meant for another process).
 * Hand each to `NbdServer.listen({ fd })`.
 */
export function socketActivationFds(options: SocketActivationOptions = {}): number[] {
  const env = options.env ?? process.env;
  const pid = options.pid ?? process.pid;
  const listenPid = env.LISTEN_PID;
  const listenFds = env.LISTEN_FDS;
  if (options.unsetEnvironment !== false) {
    delete env.LISTEN_PID;
    delete env.LISTEN_FDS;
    delete env.LISTEN_FDNAMES;
  }
  if (listenPid === undefined || listenFds === undefined) return [];
  // Strict decimal parsing: a stray value must not turn into a descriptor we never received.
  if (!/^[0-9]+$/.test(listenPid) || Number(listenPid) !== pid) return [];
  if (!/^[0-9]+$/.test(listenFds)) return [];
  const count = Number(listenFds);
  if (!Number.isSafeInteger(count) || count < 1 || count > 1024) return [];
  return Array.from({ length: count }, (_, i) => LISTEN_FDS_START + i);
}
