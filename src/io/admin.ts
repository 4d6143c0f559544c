// The admin socket: a unix stream socket (mode 0600) answering one JSON
// request per connection, `{"method":"status"}` or `{"method":"connections"}`,
// with one JSON object. `ugate ctl` and the LuCI rpcd plugin use it.

import * as native from 'ugate:native'
import { utf8Decode, utf8Encode } from '../core/bytes.js'
import { Cancel } from '../core/cancel.js'
import { VERSION } from '../core/version.js'
import { cancelAfter } from './loop.js'
import type { Listener } from './listener.js'
import type { GatewayContext } from './session.js'
import { closeQuietly, describeError } from './sockets.js'
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
  const method = (req as { method?: unknown } | null)?.method
  if (method === 'status') return statusView(ctx, listeners)
  if (method === 'connections') return connectionsView(ctx)
  return { error: `unknown method ${JSON.stringify(method)} (known: status, connections)` }
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
    relays: {
      active: r.active + g.forwardRelays,
      total: r.total + g.forwardRelaysTotal,
      spliceCalls: r.spliceCalls,
      copyCalls: r.copyCalls,
    },
    bytes: { up: st.bytesUp, down: st.bytesDown },
    rules: [...st.ruleHits.entries()].map(([rule, hits]) => ({ rule, hits })),
    capture: {
      enabled: ctx.config.capture.enabled,
      listener: ctx.config.capture.listener,
      udp: ctx.config.capture.udp,
      udpListener: ctx.config.capture.udpListener,
    },
    dns: { names: ctx.names.size, listeners: [...st.dns.entries()].map(([name, c]) => ({ name, ...c })) },
    udp: native.udpStats(),
  }
}

/** What `connections` answers (here and on ubus). */
export function connectionsView(ctx: GatewayContext) {
  const now = native.now()
  return {
    connections: [
      ...[...ctx.stats.live].map((c) => ({
        id: c.id,
        listener: c.listener,
        src: c.src,
        stage: c.stage,
        ms: Math.round(now - c.startedAt),
        ...c.fields,
      })),
      // Native forwards (native/mod_gate.c): the same fields
      ...native.forwardConnections(),
    ],
    // Only with a tproxy listener: the answer stays what it was without one.
    ...(ctx.udpNames.size > 0 ? { udpFlows: udpFlowsView(ctx.udpNames) } : {}),
  }
}

function formatAddr(a: native.SockAddr): string {
  return a.family === 6 ? `[${a.addr}]:${a.port}` : `${a.addr}:${a.port}`
}
