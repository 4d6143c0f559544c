// The admin socket: a unix stream socket (mode 0600) answering one JSON
// request per connection, `{"method":"status"}`, `connections`, `rules`,
// `traffic` (byte totals) or `{"method":"close","id":N}`, with one JSON
// object. `ugate ctl` and the LuCI rpcd plugin use it.

import * as native from 'ugate:native'
import { utf8Decode, utf8Encode } from '../core/bytes.js'
import { Cancel } from '../core/cancel.js'
import { type ConnInfo, type ConnRef, type RuleHit, parseConnId, ruleLabel, rulesView } from '../core/clash-api.js'
import { formatHostPort } from '../core/address.js'
import { VERSION } from '../core/version.js'
import { cancelAfter } from './loop.js'
import { tunnelListener } from './hbone.js'
import type { Listener } from './listener.js'
import type { GatewayContext } from './session.js'
import { reverseView } from './reverse.js'
import { closeQuietly, describeError } from './sockets.js'
import { currentTls } from './mesh-identity.js'
import { HandshakeStream } from './stream.js'
import { udpFlowsView } from './udp-flows.js'

const REQUEST_LIMIT = 4096
const TIMEOUT_MS = 2000

export interface AdminServer {
  close(): void
}

/** What status reports about the listeners; refreshed on reload. */
export type ListenerView = () => Listener[]

export function openAdmin(path: string, ctx: GatewayContext, listeners: ListenerView): AdminServer {
  const fd = native.listenUnix(path, 16)
  native.watch(fd, native.EV_READ, () => {
    for (let i = 0; i < 16; i++) {
      let c
      try {
        c = native.accept(fd)
      } catch (e) {
        ctx.log.warn('admin-accept-failed', { error: describeError(e) })
        return
      }
      if (c === null) return
      serve(c.fd, ctx, listeners).catch((e: unknown) =>
        ctx.log.debug('admin-request-failed', { error: describeError(e) }),
      )
    }
  })
  ctx.log.info('admin', { socket: path })
  return {
    close: () => {
      closeQuietly(fd)
      try {
        native.unlink(path)
      } catch {
        // Gone already: nothing to clean.
      }
    },
  }
}

async function serve(fd: number, ctx: GatewayContext, listeners: ListenerView): Promise<void> {
  const cancel = new Cancel()
  const stop = cancelAfter(cancel, TIMEOUT_MS, 'timeout')
  try {
    const s = new HandshakeStream(fd, cancel)
    while (!s.buffered.includes(0x0a)) await s.fill(REQUEST_LIMIT)
    const line = utf8Decode(s.buffered.subarray(0, s.buffered.indexOf(0x0a))) ?? ''
    let answer: unknown
    try {
      answer = respond(JSON.parse(line) as unknown, ctx, listeners)
    } catch (e) {
      answer = { error: `bad request: ${e instanceof Error ? e.message : String(e)}` }
    }
    await s.writeAll(utf8Encode(`${JSON.stringify(answer)}\n`))
  } finally {
    stop()
    closeQuietly(fd)
  }
}

function respond(req: unknown, ctx: GatewayContext, listeners: ListenerView): unknown {
  const r = req as { method?: unknown; id?: unknown } | null
  switch (r?.method) {
    case 'status':
      return statusView(ctx, listeners)
    case 'connections':
      return connectionsView(ctx)
    case 'rules':
      return rulesView(ctx.config.rules, ruleHits(ctx))
    case 'traffic':
      return byteTotals(ctx)
    case 'close': {
      const ref = connRefOf(r.id)
      if (ref === null) return { error: `close: id ${JSON.stringify(r.id)} is not a connection id (17 or udp-17)` }
      return closeConn(ctx, ref) ? { closed: r.id } : { error: `no live connection ${String(r.id)}` }
    }
    default:
      return {
        error: `unknown method ${JSON.stringify(r?.method)} (known: status, connections, rules, traffic, close)`,
      }
  }
}

/** Hits and last-hit times of every rule label, as /rules and `ugate ctl rules` show them. */
export function ruleHits(ctx: GatewayContext): Map<string, RuleHit> {
  const st = ctx.stats
  return new Map([...st.ruleHits].map(([k, hits]) => [k, { hits, lastMs: st.ruleLastHit.get(k) ?? 0 }]))
}

/** What `status` answers (here and on ubus). */
export function statusView(ctx: GatewayContext, listeners: ListenerView) {
  const now = native.now()
  const r = native.relayStats()
  const g = native.gateStats()
  const st = ctx.stats
  return {
    running: true,
    version: VERSION,
    pid: native.pid(),
    uptime: Math.round((now - st.startedAt) / 1000),
    listeners: listeners().map((l) => ({ name: l.name, type: l.type, addr: formatAddr(l.bound) })),
    connections: { live: g.live, total: g.total },
    // Native SOCKS5 CONNECTs: routes JS was asked for, and those C answered from kept answers.
    socksRoutes: { asked: g.socksAsked, kept: g.socksKept, entries: g.socksKeptRoutes, ruleSets: g.socksRuleSets },
    relays: {
      active: r.active,
      total: r.total,
      spliceCalls: r.spliceCalls,
      copyCalls: r.copyCalls,
    },
    bytes: { up: st.bytesUp, down: st.bytesDown },
    // Every byte so far, live connections and UDP flows included (what /traffic differences).
    traffic: byteTotals(ctx),
    rules: [...st.ruleHits.entries()].map(([rule, hits]) => ({ rule, hits })),
    capture: {
      enabled: ctx.config.capture.enabled,
      listener: ctx.config.capture.listener,
      udp: ctx.config.capture.udp,
      udpListener: ctx.config.capture.udpListener,
    },
    dns: { names: ctx.names.size, listeners: [...st.dns.entries()].map(([name, c]) => ({ name, ...c })) },
    udp: { ...native.udpStats(), socks: native.socksUdpStats() },
    hbone: hboneView(),
    // Who this gate is in the mesh (its node id is what peers' srcNode rules name); absent without one.
    ...meshView(),
    reverse: reverseView(),
  }
}

function meshView(): { mesh?: { spiffeId: string; nodeId: string } } {
  const tls = currentTls()
  return tls === null ? {} : { mesh: { spiffeId: tls.spiffeId, nodeId: tls.nodeId } }
}

/** The HBONE tunnels (mesh connections): streams, bytes, PING RTT; a server tunnel's listener. */
export function hboneView() {
  return native.hboneStats().map((t) => {
    const listener = t.role === 'server' ? tunnelListener(t.id) : undefined
    return {
      ...t,
      ...(listener !== undefined ? { listener } : {}),
      ageMs: Math.round(t.ageMs),
      rttMs: t.rttMs < 0 ? null : Math.round(t.rttMs * 1000) / 1000,
    }
  })
}

/** What `connections` answers (here and on ubus); up/down as of the relay's last publication. */
export function connectionsView(ctx: GatewayContext) {
  const now = native.now()
  // TCP ids only: UDP flows are numbered on their own.
  const bytes = new Map(liveConns(ctx).flatMap((c) => (c.network === 'tcp' ? [[c.id, c] as const] : [])))
  return {
    connections: [
      ...[...ctx.stats.live].map((c) => ({
        id: c.id,
        listener: c.listener,
        src: c.src,
        stage: c.stage,
        ms: Math.round(now - c.startedAt),
        up: bytes.get(c.id)?.up ?? 0,
        down: bytes.get(c.id)?.down ?? 0,
        ...c.fields,
      })),
      // Native connections (native/mod_gate.c): the same fields, bytes from their relay.
      ...native.forwardConnections().map(({ relay: _relay, type: _type, ...f }) => ({
        ...f,
        up: bytes.get(f.id)?.up ?? 0,
        down: bytes.get(f.id)?.down ?? 0,
      })),
    ],
    // Only with a tproxy listener: the answer stays what it was without one.
    ...(ctx.udpNames.size > 0 ? { udpFlows: udpFlowsView(ctx.udpNames, ctx.stats.udpFlows) } : {}),
  }
}

/**
 * Every live connection with its bytes so far: the one listing the admin API,
 * metrics and the views above read (UDP flows and mesh tunnels join here).
 */
export function liveConns(ctx: GatewayContext): ConnInfo[] {
  const now = native.now()
  const wall = native.wallClock()
  const flat = native.relayBytes()
  const bytes = new Map<number, [number, number]>()
  for (let i = 0; i + 2 < flat.length; i += 3) bytes.set(flat[i]!, [flat[i + 1]!, flat[i + 2]!])
  const types = new Map(ctx.config.listeners.map((l) => [l.name, l.type]))
  const rules = new Map(ctx.config.rules.map((r, i) => [ruleLabel(r, i), r.action]))
  const js = [...ctx.stats.live].map((c) => {
    const [up, down] = (c.relay !== undefined ? bytes.get(c.relay) : undefined) ?? [0, 0]
    const info: ConnInfo = {
      id: c.id,
      network: 'tcp',
      listener: c.listener,
      listenerType: types.get(c.listener) ?? '',
      src: c.src,
      startMs: wall - (now - c.startedAt),
      up,
      down,
    }
    const f = c.fields
    if (typeof f.dst === 'string') info.dst = f.dst
    if (typeof f.host === 'string') info.sniffHost = f.host
    if (typeof f.rule === 'string') {
      info.rule = f.rule
      const action = f.rule === 'default' ? ({ type: 'direct' } as const) : rules.get(f.rule)
      if (action !== undefined) info.action = action
    }
    return info
  })
  // Native connections (native/mod_gate.c): forwards have no rules; bytes from their relay, like every relay's.
  const forwards = native.forwardConnections().map((f): ConnInfo => {
    const [up, down] = (f.relay !== undefined ? bytes.get(f.relay) : undefined) ?? [0, 0]
    const info: ConnInfo = {
      id: f.id,
      network: 'tcp',
      listener: f.listener,
      listenerType: f.type,
      src: f.src,
      startMs: wall - f.ms,
      up,
      down,
    }
    if (f.dst !== undefined) info.dst = f.dst
    if (f.rule !== undefined) {
      info.rule = f.rule
      const action = f.rule === 'default' ? ({ type: 'direct' } as const) : rules.get(f.rule)
      if (action !== undefined) info.action = action
    }
    return info
  })
  // UDP flows (native/udp.c): counters live from the UDP thread, the route from udp-flows.ts.
  const flows =
    ctx.udpNames.size === 0
      ? []
      : native.udpFlows().map((f) => {
          const route = ctx.stats.udpFlows.get(f.id)
          const info: ConnInfo = {
            id: f.id,
            network: 'udp',
            listener: ctx.udpNames.get(f.listener) ?? String(f.listener),
            listenerType: 'tproxy',
            src: formatHostPort(f.src, f.srcPort),
            dst: formatHostPort(f.dst, f.dstPort),
            startMs: wall - f.ms,
            up: f.bytesUp,
            down: f.bytesDown,
          }
          if (route?.host !== undefined) info.sniffHost = route.host
          if (route !== undefined && route.rule !== 'allow') {
            info.rule = route.rule
            const action = route.rule === 'default' ? ({ type: 'direct' } as const) : rules.get(route.rule)
            if (action !== undefined) info.action = action
          }
          return info
        })
  return [...js, ...forwards, ...flows]
}

/**
 * Bytes of every connection so far, closed ones and live ones (as of the
 * relay's last publication), and of every UDP flow (the UDP thread's totals).
 */
export function byteTotals(ctx: GatewayContext): { up: number; down: number } {
  const udp = native.udpStats()
  let up = ctx.stats.bytesUp + udp.bytesUp
  let down = ctx.stats.bytesDown + udp.bytesDown
  const flat = native.relayBytes()
  for (let i = 0; i + 2 < flat.length; i += 3) {
    up += flat[i + 1]!
    down += flat[i + 2]!
  }
  return { up, down }
}

/** What `close` takes (admin socket, ubus): a number (a TCP connection) or the API's text id ("17", "udp-17"). */
export function connRefOf(id: unknown): ConnRef | null {
  if (typeof id === 'number') return { network: 'tcp', id }
  return typeof id === 'string' ? parseConnId(id) : null
}

/** End one live connection or UDP flow; false when there is none. */
export function closeConn(ctx: GatewayContext, ref: ConnRef): boolean {
  if (ref.network === 'udp') return native.udpFlowClose(ref.id)
  const id = ref.id
  const conn = [...ctx.stats.live].find((c) => c.id === id)
  if (conn === undefined) return native.forwardClose(id)
  if (conn.relay !== undefined) native.relayAbort(conn.relay)
  else conn.cancel.cancel('closed')
  return true
}

function formatAddr(a: native.SockAddr): string {
  return a.family === 6 ? `[${a.addr}]:${a.port}` : `${a.addr}:${a.port}`
}
