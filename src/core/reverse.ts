// Reverse tunnels, runtime-free (docs/mesh.md). A gate behind NAT dials a
// public gate's hbone listener with ALPN ugate-rev; when the listener allows
// its SPIFFE id, the HTTP/2 roles swap and the public gate opens CONNECT
// streams on that connection. Here: the public gate's registry of live
// reverse tunnels (which one an hbone upstream uses), the listener's
// admission check, and the dialing gate's reconnect schedule.

import { backoffMs } from './sni-relay.js'

export interface ReverseEntry {
  tunnel: number
  /** The registered gate's SPIFFE id and node id (from its certificate). */
  identity: string
  node: string
  /** The hbone listener it came in on, and the address it came from. */
  listener: string
  peer: string
  sinceMs: number
}

/**
 * The live reverse tunnels at a public gate. A node has at most one: a new
 * registration of the same node id replaces the older tunnel (a gate that
 * lost its uplink dials again before this end noticed the old one died).
 */
export class ReverseRegistry {
  private readonly byTunnel = new Map<number, ReverseEntry>()
  private readonly byNode = new Map<string, ReverseEntry>()

  /** Registers e; returns the entry it replaces (to be closed), if any. */
  add(e: ReverseEntry): ReverseEntry | undefined {
    const old = this.byNode.get(e.node)
    if (old !== undefined) this.byTunnel.delete(old.tunnel)
    this.byTunnel.set(e.tunnel, e)
    this.byNode.set(e.node, e)
    return old
  }

  /** Forgets a tunnel (it closed); returns its entry when it was registered. */
  drop(tunnel: number): ReverseEntry | undefined {
    const e = this.byTunnel.get(tunnel)
    if (e === undefined) return undefined
    this.byTunnel.delete(tunnel)
    if (this.byNode.get(e.node) === e) this.byNode.delete(e.node)
    return e
  }

  /**
   * The tunnel to reach a gate by its node id and/or SPIFFE id ('' = either
   * may be anything, not both): the newest one that matches both.
   */
  find(identity: string, node: string): ReverseEntry | undefined {
    if (node !== '') {
      const e = this.byNode.get(node)
      return e !== undefined && (identity === '' || e.identity === identity) ? e : undefined
    }
    if (identity === '') return undefined
    let best: ReverseEntry | undefined
    for (const e of this.byTunnel.values())
      if (e.identity === identity && (best === undefined || e.sinceMs >= best.sinceMs)) best = e
    return best
  }

  list(): ReverseEntry[] {
    return [...this.byTunnel.values()]
  }
}

/** Why a listener refuses `identity`'s reverse tunnel, or null when it allows it (exact ids only). */
export function reverseRefusal(allowed: readonly string[], identity: string): string | null {
  if (allowed.length === 0) return 'this listener allows no reverse tunnels'
  if (!allowed.includes(identity))
    return `${identity === '' ? 'a peer without a SPIFFE id' : identity} is not in its reverse list`
  return null
}

/**
 * The dialing gate's side of one reverse tunnel: up, or waiting to try again.
 * Each failure (an attempt that did not come up, or a tunnel that ended)
 * doubles the delay from retryMs up to retryMaxMs, jittered to 50-100 %
 * (backoffMs); a tunnel that came up starts again from retryMs.
 */
export class ReverseBackoff {
  failures = 0
  up = false

  constructor(
    private readonly retryMs: number,
    private readonly retryMaxMs: number,
  ) {}

  connected(): void {
    this.failures = 0
    this.up = true
  }

  /** The delay before the next attempt, and whether this failure begins an outage (the tunnel was up, or it is the first). */
  failed(random01: number): { delayMs: number; outage: boolean } {
    const outage = this.up || this.failures === 0
    this.up = false
    this.failures++
    return { delayMs: backoffMs(this.failures, this.retryMs, this.retryMaxMs, random01), outage }
  }
}
