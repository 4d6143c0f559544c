// Reverse tunnels (docs/mesh.md), both ends; the registry and the backoff are
// runtime-free in src/core/reverse.ts, TLS and HTTP/2 are native/hbone.c.
//
// Public gate: an hbone listener with a `reverse` list serves with ALPN
// ugate-rev allowed; a tunnel that comes up reversed (the `reverse` event) is
// registered under the gate's SPIFFE id and node id when the list names it,
// else refused (GOAWAY REFUSED_STREAM) with a log line. An hbone upstream that
// names the gate (identity and/or node) opens its streams on that tunnel.
// The entry is dropped as soon as the tunnel closes.
//
// Gate behind NAT: each `reverse` entry dials its public gate (names resolved
// each time, SO_MARK), hands the socket to C as the dialing side, and serves
// the CONNECTs that come back like an hbone listener named after the entry
// (src/io/hbone.ts), except that only an explicit rule routes them. When the
// tunnel ends or an attempt fails it dials again after a backoff.

import * as native from 'ugate:native'
import { formatEndpoint } from '../core/address.js'
import { isIpLiteral } from '../core/ip.js'
import { Cancel } from '../core/cancel.js'
import type { HboneServedConfig, HboneUpstreamConfig, ReverseConfig } from '../core/config.js'
import type { Logger } from '../core/log.js'
import { ReverseBackoff, type ReverseEntry, ReverseRegistry, reverseRefusal } from '../core/reverse.js'
import { DialError, dial } from './dial.js'
import type { Tunnel } from './hbone.js'
import { dialedListener } from './listener.js'
import { currentTls } from './mesh-identity.js'
import type { GatewayContext } from './session.js'
import { closeQuietly, describeError } from './sockets.js'

// ---- the public gate ------------------------------------------------------------------

const registry = new ReverseRegistry()

/** A listener's tunnel came up reversed: register the gate, or refuse it. */
function offered(ev: native.HboneEvent, tunnel: Tunnel | undefined, log: Logger): void {
  const who = { identity: ev.peerId, node: ev.peerNode, tunnel: ev.tunnel }
  // A tunnel of a listener a reload dropped: no list to allow it any more.
  const why = tunnel === undefined ? 'its listener is gone' : reverseRefusal(tunnel.listener.reverse, ev.peerId)
  if (why !== null) {
    log.warn('hbone-reverse-refused', { listener: tunnel?.listener.name ?? '-', src: ev.peerAddr, ...who, why })
    native.hboneClose(ev.tunnel, 'refused')
    return
  }
  const l = tunnel!.listener
  const old = registry.add({ ...who, listener: l.name, peer: ev.peerAddr, sinceMs: native.now() })
  if (old !== undefined) native.hboneClose(old.tunnel, 'replaced')
  native.hboneReverseAccept(ev.tunnel)
  log.info('hbone-reverse-registered', {
    listener: l.name,
    src: ev.peerAddr,
    ...who,
    ...(old !== undefined ? { replaced: old.tunnel } : {}),
  })
}

/** After a reload: registrations the listeners no longer allow are closed (as refused). */
function recheckRegistered(ctx: GatewayContext): void {
  for (const e of registry.list()) {
    const l = ctx.config.listeners.find((x) => x.name === e.listener)
    const why = l?.type !== 'hbone' ? 'its listener is gone' : reverseRefusal(l.reverse, e.identity)
    if (why === null) continue
    registry.drop(e.tunnel)
    const fields = { identity: e.identity, node: e.node, tunnel: e.tunnel }
    ctx.log.warn('hbone-reverse-refused', { listener: e.listener, src: e.peer, ...fields, why })
    native.hboneClose(e.tunnel, 'refused')
  }
}

/** The reverse tunnel node `node` registered here, if any (routing by node name). */
export function reverseTunnelOfNode(node: string): ReverseEntry | undefined {
  return registry.find('', node)
}

/** The registered reverse tunnel an hbone upstream uses now, if any (it must name the gate). */
export function reverseTunnelFor(u: HboneUpstreamConfig): ReverseEntry | undefined {
  return registry.find(u.identity, u.node)
}

// ---- the gate behind NAT ---------------------------------------------------------------

/** Tunnels of the reverse entries, by tunnel id: their events go to their link. */
const dialed = new Map<number, ReverseLink>()

/** The listener a reverse tunnel's streams belong to: what the rules and the access line see. */
function reverseListener(r: ReverseConfig): HboneServedConfig {
  return { ...dialedListener(r.name, r.relay), type: 'hbone', peers: [], reverse: [] }
}

/** One `reverse` entry: a tunnel to its public gate, dialed again whenever it ends. */
class ReverseLink {
  private readonly backoff: ReverseBackoff
  readonly served: Tunnel
  private tunnel = 0
  private timer: number | null = null
  private stopped = false
  private dialing: Cancel | null = null
  private peer = ''
  private peerId = ''
  private upSinceMs = 0

  constructor(
    private readonly cfg: ReverseConfig,
    private readonly ctx: GatewayContext,
  ) {
    this.backoff = new ReverseBackoff(cfg.retryMs, cfg.retryMaxMs)
    this.served = { listener: reverseListener(cfg), src: formatEndpoint(cfg.relay), requireRule: true }
    this.connect()
  }

  private get where(): string {
    return formatEndpoint(this.cfg.relay)
  }

  /** The relay as a peer for double HBONE: its address (a name: the one last dialed), or null before any. */
  relay(): MeshRelay | null {
    const { host, port } = this.cfg.relay
    const r = { name: this.cfg.name, key: `relay:${this.cfg.name}`, expect: this.cfg.relayId }
    if (isIpLiteral(host)) return { ...r, addr: host, port }
    const m = /^\[?(.*?)\]?:(\d+)$/.exec(this.peer)
    return m === null ? null : { ...r, addr: m[1]!, port: Number(m[2]) }
  }

  status() {
    return {
      name: this.cfg.name,
      relay: this.where,
      state: this.backoff.up ? 'up' : this.tunnel !== 0 ? 'connecting' : this.dialing !== null ? 'dialing' : 'waiting',
      tunnel: this.tunnel === 0 ? null : this.tunnel,
      peer: this.peer,
      peerId: this.peerId,
      failures: this.backoff.failures,
      upMs: this.backoff.up ? Math.round(native.now() - this.upSinceMs) : 0,
    }
  }

  /** No more attempts; the tunnel gets a GOAWAY and closes once its streams are over. */
  stop(): void {
    this.stopped = true
    if (this.timer !== null) native.clearTimeout(this.timer)
    this.timer = null
    this.dialing?.cancel('stopped')
    if (this.tunnel !== 0) native.hboneClose(this.tunnel, 'stopped')
  }

  private connect(): void {
    this.timer = null
    const tls = currentTls()
    if (tls === null) return this.failed('no-identity', 'the mesh identity is not loaded')
    const cancel = new Cancel()
    this.dialing = cancel
    dial(this.cfg.relay.host, this.cfg.relay.port, {
      timeoutMs: this.ctx.config.dial.connectTimeoutMs,
      mark: this.ctx.config.dial.mark,
      cancel,
      log: this.ctx.log,
    }).then(
      (d) => {
        this.dialing = null
        if (this.stopped) return closeQuietly(d.fd)
        this.peer = d.addr
        this.served.src = d.addr // the address dialed: the access lines' src, admission's source
        this.tunnel = native.hboneReverse(d.fd, tls.client, d.addr, {
          expect: this.cfg.relayId,
          pingIntervalMs: this.cfg.pingIntervalMs,
          pingTimeoutMs: this.cfg.pingTimeoutMs,
        })
        if (this.tunnel === 0) return this.failed('out-of-memory', '') // C took and closed the fd
        dialed.set(this.tunnel, this)
      },
      (e: unknown) => {
        this.dialing = null
        if (this.stopped) return
        this.failed(e instanceof DialError ? e.reason : 'internal-error', describeError(e))
      },
    )
  }

  /** The `reverse` event: the public gate agreed and took the HTTP/2 client role. */
  up(ev: native.HboneEvent): void {
    this.backoff.connected()
    this.upSinceMs = native.now()
    this.peerId = ev.peerId
    this.ctx.log.info('reverse-up', {
      name: this.cfg.name,
      relay: this.where,
      peer: ev.peerAddr,
      relayId: ev.peerId,
      tunnel: ev.tunnel,
    })
  }

  /** The tunnel closed (or never came up): dial again after the backoff. */
  closed(ev: native.HboneEvent): void {
    dialed.delete(ev.tunnel)
    this.tunnel = 0
    if (!this.stopped) this.failed(ev.reason, ev.detail)
  }

  private failed(reason: string, detail: string): void {
    const { delayMs, outage } = this.backoff.failed(Math.random())
    const fields = {
      name: this.cfg.name,
      relay: this.where,
      reason,
      ...(detail !== '' ? { detail } : {}),
      attempt: this.backoff.failures,
      retryMs: delayMs,
    }
    // Once per outage as a warning; each later attempt at info.
    if (outage) this.ctx.log.warn('reverse-down', fields)
    else this.ctx.log.info('reverse-retry', fields)
    this.timer = native.setTimeout(() => this.connect(), delayMs)
  }
}

/** The gate's reverse tunnels, one per `reverse` entry. */
let links: ReverseLink[] = []
let linksKey = ''

/**
 * At start and on reload: registrations the listeners no longer allow are
 * closed; the links restart when the entries or the mesh section changed.
 */
export function configureReverse(ctx: GatewayContext): void {
  recheckRegistered(ctx)
  const key = JSON.stringify(ctx.config.reverse) + JSON.stringify(ctx.config.mesh)
  if (key === linksKey) return
  stopReverse()
  linksKey = key
  links = ctx.config.reverse.map((r) => new ReverseLink(r, ctx))
}

/** A gate that routes node names on (double HBONE, docs/mesh.md): a reverse entry's public gate, or an hbone upstream marked relay. */
export interface MeshRelay {
  name: string
  /** The pool its streams share. */
  key: string
  addr: string
  port: number
  /** Its SPIFFE id; '' = any the mesh trusts. */
  expect: string
}

/** The public gates of the reverse entries, as relays (those whose address is known). */
export function reverseRelays(): MeshRelay[] {
  return links.map((l) => l.relay()).filter((r) => r !== null)
}

/** No more attempts; each tunnel closes once its open streams are over. */
export function stopReverse(): void {
  for (const l of links) l.stop()
  links = []
  linksKey = ''
}

// ---- events (from hbone.ts) -------------------------------------------------------------

/** A `reverse` event: our dialed tunnel is up, or a listener's tunnel asks to be registered. */
export function onReverseUp(ev: native.HboneEvent, tunnel: Tunnel | undefined, log: Logger): void {
  const link = dialed.get(ev.tunnel)
  if (link !== undefined) return link.up(ev)
  offered(ev, tunnel, log)
}

/** A tunnel closed: a registered one is forgotten at once; a dialed one is dialed again. */
export function onReverseClosed(ev: native.HboneEvent, log: Logger): void {
  const link = dialed.get(ev.tunnel)
  if (link !== undefined) return link.closed(ev)
  const e = registry.drop(ev.tunnel)
  if (e !== undefined)
    log.info('hbone-reverse-gone', { identity: e.identity, node: e.node, tunnel: e.tunnel, reason: ev.reason })
}

/** The served view of a dialed reverse tunnel (its CONNECTs), for hbone.ts. */
export function reverseServed(tunnel: number): Tunnel | undefined {
  return dialed.get(tunnel)?.served
}

/** What `status` shows: tunnels registered here (public gate) and this gate's own (behind NAT). */
export function reverseView() {
  const now = native.now()
  return {
    registered: registry.list().map((e) => ({
      tunnel: e.tunnel,
      identity: e.identity,
      node: e.node,
      listener: e.listener,
      peer: e.peer,
      ageMs: Math.round(now - e.sinceMs),
    })),
    links: links.map((l) => l.status()),
  }
}
