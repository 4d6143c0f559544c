// One client connection from accept to its access line. The same frame for
// every listener type: admission (allow-list, connection limits), the
// handshake timeout, the protocol handler, then the hand-over to the native
// relay. Handlers only speak their protocol and say how the connection ends.

import * as native from 'ugate:native'
import { formatHostPort } from '../core/address.js'
import { Cancel, CancelledError } from '../core/cancel.js'
import type { Config, ListenerCommon, ServedListener, UpstreamConfig } from '../core/config.js'
import type { ConnTracker } from '../core/conn-tracker.js'
import { type Fields, type Logger, relayReason } from '../core/log.js'
import type { AddressNames } from '../core/dns/names.js'
import type { DnsCounters } from './dns-server.js'
import type { CompiledRules } from '../core/rules/index.js'
import type { SniffProto } from '../core/sniff/types.js'
import { allowList } from '../core/rules/cidr-tree.js'
import { DialError } from './dial.js'
import { ClosedCounters, DNS_BUCKETS, Histograms, MeshCounters } from '../core/metrics.js'
import type { Accepted } from './listener.js'
import type { RelayState } from './sni-relay.js'
import { closeQuietly, errorCode, resetQuietly } from './sockets.js'
import { EofError, HandshakeStream, TooLargeError } from './stream.js'

/** What every handler may use; one per running gateway. */
export interface GatewayContext {
  config: Config
  log: Logger
  conns: ConnTracker
  rules: CompiledRules
  upstreams: Map<string, UpstreamConfig>
  /** Addresses ugate listens on: dialing one of them would loop. */
  own: native.SockAddr[]
  admission: Admission
  stats: GatewayStats
  /** Address → name, learnt from the answers of ugate's DNS listeners; kept across reloads. */
  names: AddressNames
  /** Native ids of the tproxy listeners → their names (the flow list). */
  udpNames: Map<number, string>
  /** Relay over SNI: the relay's registries of parked connections, the identity (src/io/sni-relay.ts). */
  relayState: RelayState
}

/** A connection not yet closed, for `ugate ctl connections`. */
export interface LiveConn {
  /** The connection's number since start (its place in `total`). */
  id: number
  listener: string
  src: string
  startedAt: number
  stage: 'handshake' | 'relay'
  fields: Fields
  /** Ends the connection during its handshake (a relay belongs to the relay thread). */
  cancel: Cancel
  /** The relay's id once stage is 'relay': native.relayAbort ends it. */
  relay?: number
}

/** How a UDP flow was routed: what its access line and the connection list add to the native counters. */
export interface UdpFlowRoute {
  /** Rule label ('default', '#3', its name; 'allow': refused by the listener's allow list). */
  rule: string
  /** The action taken: direct, forward, reject, deny, upstream. */
  action: string
  /** The upstream's name, for an upstream route. */
  via?: string
  host?: string
  proto?: SniffProto
  /** Why the sniffer gave up on a name (sniff=incomplete), for the access line. */
  sniff?: string
  /** Why JS ended the flow, when it did (the access line's reason instead of C's "closed"). */
  ended?: string
}

/** Counters for the admin socket's status. */
export class GatewayStats {
  readonly startedAt = native.now()
  /** Bytes of connections already closed. */
  bytesUp = 0
  bytesDown = 0
  /** The JS-handled connections not yet closed (native forwards: native.forwardConnections). */
  readonly live = new Set<LiveConn>()
  private readonly hits = new Map<string, number>()
  private readonly lastHit = new Map<string, number>()
  /** Counters of /metrics, keyed by labelKey(...) of their labels. */
  readonly metrics = new ClosedCounters()
  /** dns listener, source (cache, static, reject, upstream, servfail) → seconds to answer. */
  readonly dnsLatency = new Histograms(DNS_BUCKETS)
  /** HBONE tunnels and streams (fed by every HBONE event). */
  readonly mesh = new MeshCounters()
  /** dns listener name → its query counters (kept across reloads). */
  readonly dns = new Map<string, DnsCounters>()
  /** Live UDP flow id → how it was routed (udp-flows.ts; counters and ends are native.udpFlows()). */
  readonly udpFlows = new Map<number, UdpFlowRoute>()

  /** Connections admitted since start, every listener (counted in native/mod_gate.c). */
  get total(): number {
    return native.gateStats().total
  }

  /** Rule ('default', '#3' or its name) → connections it routed (C's kept SOCKS answers' hits too). */
  get ruleHits(): ReadonlyMap<string, number> {
    this.addHits(native.socksKeptHits())
    return this.hits
  }

  /** Rule → wall clock of its last hit (ms). */
  get ruleLastHit(): ReadonlyMap<string, number> {
    this.addHits(native.socksKeptHits())
    return this.lastHit
  }

  hit(rule: string): void {
    this.hits.set(rule, (this.hits.get(rule) ?? 0) + 1)
    this.lastHit.set(rule, native.wallClock())
  }

  /** Hits C counted (native.socksKeptHits: rule, hits, last hit's wall clock, ...). */
  addHits(flat: native.KeptHits): void {
    for (let i = 0; i + 2 < flat.length; i += 3) {
      const rule = flat[i] as string
      this.hits.set(rule, (this.hits.get(rule) ?? 0) + (flat[i + 1] as number))
      this.lastHit.set(rule, Math.max(this.lastHit.get(rule) ?? 0, flat[i + 2] as number))
    }
  }
}

export interface Session {
  /** A configured listener, or the pseudo listener of a reverse tunnel or an SNI relay this gate dialed. */
  readonly listener: ServedListener
  readonly client: Accepted
  /** Client IP:PORT. */
  readonly src: string
  readonly stream: HandshakeStream
  /** Cancelled by the handshake timeout ('handshake-timeout') or shutdown ('shutdown'). */
  readonly cancel: Cancel
  /** Extra fields of the access line: dst, host, proto, rule, action, via... */
  readonly fields: Fields
  /** The client's handshake is over: stop its timer (dialing has its own). */
  handshakeDone(): void
  /** The mesh peer (an hbone listener's stream): what identity rules match. */
  readonly peer?: { spiffeId: string; nodeId: string }
}

/** How a handler ends: relay the two sockets, or close the client. */
export type Outcome =
  | {
      kind: 'relay'
      upstream: number
      up?: Uint8Array
      down?: Uint8Array
      upLimit?: number
      /** Bytes the handler already sent upstream itself (a chunked request body), for the access line. */
      sentUp?: number
    }
  | { kind: 'close'; reason: string; reset?: boolean }
  /** The client socket now belongs to another connection (a parked one, paired at the SNI relay). */
  | { kind: 'handed'; reason: string }

export type Handler = (s: Session, ctx: GatewayContext) => Promise<Outcome>

/** idleTimeout 0 means never; the relay gets 0, which it reads as never. */
function relayOptions(ctx: GatewayContext, out: Extract<Outcome, { kind: 'relay' }>): native.RelayOptions {
  const o: native.RelayOptions = { splice: ctx.config.relay.splice, idleMs: ctx.config.relay.idleTimeoutMs }
  if (out.up && out.up.length > 0) o.up = out.up
  if (out.down && out.down.length > 0) o.down = out.down
  if (out.upLimit !== undefined) o.upLimit = out.upLimit
  return o
}

/**
 * The first step of every accepted connection: a source outside the
 * listener's allow list is logged and reset; others go on to `next` with
 * their "addr:port" text.
 */
export function acceptGuard(
  l: Pick<ListenerCommon, 'name' | 'allow'>,
  ctx: GatewayContext,
  next: (client: Accepted, src: string) => void,
): (client: Accepted) => void {
  const allowed = allowList(l.allow)
  return (client) => {
    const src = formatHostPort(client.addr, client.port)
    if (!allowed(client.addr)) {
      ctx.log.warn('denied', { listener: l.name, src, why: 'source not in allow list' })
      return resetQuietly(client.fd)
    }
    next(client, src)
  }
}

/** The accept callback of a listener running `handler`. */
export function serveWith(handler: Handler, l: ServedListener, ctx: GatewayContext): (client: Accepted) => void {
  return acceptGuard(l, ctx, (client, src) => {
    const id = ctx.admission.admit(client.addr)
    if (typeof id === 'string') {
      ctx.log.warn('limit-reached', { listener: l.name, src, limit: id })
      return resetQuietly(client.fd)
    }
    adopt(handler, l, ctx, client, src, id)
  })
}

/** What a connection brings when it starts in JS part-way (the native SOCKS handshake hands it over). */
export interface Adopted {
  /** Bytes already read from the client, the handler's first. */
  data?: Uint8Array | undefined
  /** Access-line fields already known, in their order. */
  fields?: Fields
  /** What is left of the handshake timeout (the native handshake's since accept); default all of it. */
  handshakeLeftMs?: number
}

/**
 * Run `handler` on an admitted connection (id from the admission): every
 * accepted one, and those the native SOCKS handshake hands to JS.
 */
export function adopt(
  handler: Handler,
  l: ServedListener,
  ctx: GatewayContext,
  client: Accepted,
  src: string,
  id: number,
  from?: Adopted,
): void {
  run(handler, l, ctx, client, src, id, from).catch((e: unknown) => {
    ctx.log.error('internal-error', { listener: l.name, src, error: e instanceof Error ? e.message : String(e) })
  })
}

async function run(
  handler: Handler,
  l: ServedListener,
  ctx: GatewayContext,
  client: Accepted,
  src: string,
  id: number,
  from?: Adopted,
): Promise<void> {
  const t = track(ctx, l.name, client.addr, src, id)
  const { cancel, fields, live } = t
  if (from?.fields !== undefined) for (const key in from.fields) fields[key] = from.fields[key]!
  let timer: number | null = native.setTimeout(
    () => cancel.cancel('handshake-timeout'),
    from?.handshakeLeftMs ?? ctx.config.limits.handshakeTimeoutMs,
  )
  // Cleared once: by the handler (handshakeDone), before the relay, or at the end.
  const stopTimer = () => {
    if (timer === null) return
    native.clearTimeout(timer)
    timer = null
  }
  let stream: HandshakeStream | undefined
  const session: Session = {
    listener: l,
    client,
    src,
    // Made on first use: a forward never reads the client before the relay.
    get stream() {
      return (stream ??= new HandshakeStream(client.fd, cancel, from?.data))
    },
    cancel,
    fields,
    handshakeDone: stopTimer,
  }
  const finish = (up: number, down: number, reason: string, splice: boolean) => {
    stopTimer()
    t.finish(up, down, reason, splice)
  }

  let outcome: Outcome
  try {
    outcome = await handler(session, ctx)
  } catch (e) {
    outcome = { kind: 'close', reason: failureReason(e), reset: true }
  }
  if (outcome.kind === 'relay' && cancel.cancelled) {
    // Shutdown began while the last step completed.
    closeQuietly(outcome.upstream)
    outcome = { kind: 'close', reason: cancel.reason!, reset: true }
  }
  if (outcome.kind === 'handed') return finish(0, 0, outcome.reason, false)
  if (outcome.kind === 'close') {
    if (outcome.reset) resetQuietly(client.fd)
    else closeQuietly(client.fd)
    return finish(0, 0, outcome.reason, false)
  }
  stopTimer()
  t.relaying()
  const upstream = outcome.upstream
  const sent = outcome.sentUp
  try {
    live.relay = native.relay(client.fd, upstream, relayOptions(ctx, outcome), (r) => {
      finish(r.bytesUp + (sent ?? 0), r.bytesDown, relayReason(r.reason, r.error), r.spliced)
    })
  } catch (e) {
    // A throwing relay() has not taken the sockets.
    resetQuietly(client.fd)
    closeQuietly(upstream)
    finish(0, 0, `relay-error:${errorCode(e)}`, false)
  }
}

/** A connection counted from its admission to its access line; any listener type. */
export interface Tracked {
  readonly cancel: Cancel
  /** The access line's extra fields. */
  readonly fields: Fields
  readonly live: LiveConn
  /** The handshake is over: the payload moves now. */
  relaying(): void
  /** Release the admission, count the bytes, write the access line. Once. */
  finish(up: number, down: number, reason: string, splice: boolean): void
}

/** Start tracking an admitted connection (id from ctx.admission.admit(clientAddr)). */
export function track(ctx: GatewayContext, listener: string, clientAddr: string, src: string, id: number): Tracked {
  const conn = ctx.conns.open()
  const startedAt = native.now()
  const cancel = new Cancel(conn.cancel)
  const fields: Fields = {}
  const live: LiveConn = { id, listener, src, startedAt, stage: 'handshake', fields, cancel }
  ctx.stats.live.add(live)
  return {
    cancel,
    fields,
    live,
    relaying() {
      conn.relaying()
      live.stage = 'relay'
    },
    finish(up, down, reason, splice) {
      cancel.release()
      ctx.admission.release(clientAddr)
      ctx.stats.live.delete(live)
      ctx.stats.bytesUp += up
      ctx.stats.bytesDown += down
      ctx.stats.metrics.closed(listener, fields, reason, up, down, live.stage === 'relay', splice)
      if (ctx.log.enabled('info'))
        ctx.log.info('conn', accessLine(listener, src, up, down, startedAt, reason, splice, fields))
      conn.done()
    },
  }
}

/**
 * The access line's fields: listener, src, dst, up, down, ms, reason, splice,
 * then the handler's other fields in their order. Built in one object, only
 * when the line is written.
 */
function accessLine(
  listener: string,
  src: string,
  up: number,
  down: number,
  startedAt: number,
  reason: string,
  splice: boolean,
  fields: Fields,
): Fields {
  const ms = Math.round(native.now() - startedAt)
  const line: Fields = { listener, src, dst: fields.dst ?? '-', up, down, ms, reason, splice: splice ? 1 : 0 }
  for (const key in fields) if (key !== 'dst') line[key] = fields[key]
  return line
}

/** The access line's reason for an error escaping a handler. */
function failureReason(e: unknown): string {
  if (e instanceof CancelledError) return e.reason
  if (e instanceof DialError) return e.reason
  if (e instanceof EofError) return 'client-eof'
  if (e instanceof TooLargeError) return 'too-large'
  if ((e as { code?: unknown } | null)?.code !== undefined) return `client-error:${errorCode(e)}`
  return 'internal-error'
}

/**
 * Global and per-source connection limits. Counted in C (native/mod_gate.c),
 * so native forwards and JS-handled connections share one count.
 */
export class Admission {
  constructor(
    private max: number,
    private maxPerSource: number,
  ) {
    native.setLimits(max, maxPerSource)
  }

  /** New limits (reload); connections already admitted stay. */
  setLimits(max: number, maxPerSource: number): void {
    this.max = max
    this.maxPerSource = maxPerSource
    native.setLimits(max, maxPerSource)
  }

  /** The connection's id when admitted (and counted), else which limit refused it. */
  admit(ip: string): number | string {
    const id = native.admit(ip)
    if (id > 0) return id
    return id === -1 ? `maxConnections=${this.max}` : `maxPerSource=${this.maxPerSource}`
  }

  release(ip: string): void {
    native.release(ip)
  }
}
