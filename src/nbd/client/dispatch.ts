/**
 * Choosing a connection for the next request when several are open (multi-conn).
 *
 * Least-outstanding: the usable connection with the fewest requests in flight wins, which keeps a
 * slow connection from collecting a queue while others idle. Ties rotate, so an idle client spreads
 * a burst over every connection instead of piling it on the first.
 */

/** What the picker needs to know about a connection. */
export interface Dispatchable {
  /** The connection can take a request now. */
  readonly usable: boolean;
  /** Requests sent on it and not yet answered. */
  readonly outstanding: number;
}

/** Picks connections least-outstanding-first with rotating tie-breaks. */
export class LeastOutstanding {
  #next = 0;

  /** Index of the chosen connection, or -1 when none is usable. */
  pick(connections: readonly Dispatchable[]): number {
    const n = connections.length;
    let best = -1;
    let bestLoad = Infinity;
    for (let k = 0; k < n; k++) {
      const i = (this.#next + k) % n;
      const c = connections[i];
      if (c.usable && c.outstanding < bestLoad) {
        best = i;
        bestLoad = c.outstanding;
        if (bestLoad === 0) break;
      }
    }
    if (best >= 0) this.#next = (best + 1) % n;
    return best;
  }
}
