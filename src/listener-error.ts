/**
 * Event listeners are the embedder's code, called from inside our own bookkeeping (a socket
 * handler, the reconnect loop, the end of close()). One that throws must not break that: its
 * exception becomes a process warning instead.
 */

/** Reports that a listener of `event` on `source` threw `err`, as a process warning with `code`. */
export function reportListenerError(source: string, event: string, err: unknown, code: string): void {
  const message = err instanceof Error ? err.message : String(err);
  process.emitWarning(`${source}: a '${event}' listener threw: ${message}`, { code, detail: err instanceof Error ? err.stack : undefined });
}
