// What the admin HTTP server answers on each route: the Clash/mihomo API
// subset dashboards call (docs/api.md) and /metrics, from the gateway's
// live state. Connections are read through liveConns (admin.ts), the one
// listing; nothing here touches a relay except closeConn.

import * as native from 'ugate:native'
import { formatEndpoint, splitHostPort } from '../core/address.js'
import { ADMIN_PAGE } from '../core/admin-page.js'
import { Cancel } from '../core/cancel.js'
import {
  type DelayRecord,
  type ProxyInfo,
  clashLevel,
  connectionsSnapshot,
  parseConnId,
  proxiesView,
  proxyView,
  rulesView,
  ugateLevel,
} from '../core/clash-api.js'
import { trafficSample } from '../core/ctl-format.js'
import { parseResponseHead } from '../core/http-proxy.js'
import { type ControlledLogger, type LogLevel, levelEnabled } from '../core/log.js'
import { type Family, exposition, samplesOf } from '../core/metrics.js'
import { latin1Encode, utf8Decode } from '../core/bytes.js'
import type { UpstreamConfig } from '../core/config.js'
import { VERSION } from '../core/version.js'
import { type ListenerView, byteTotals, closeConn, hboneView, liveConns, ruleHits, statusView } from './admin.js'
import { type Answer, type Reply, type Request, type Stream, errorReply } from './admin-http.js'
import { dial, resolveLatency } from './dial.js'
import { isOwnAddress } from './outbound.js'
import { openHbone, tunnelListener } from './hbone.js'
import type { DnsCounters } from './dns-server.js'
import type { GatewayContext } from './session.js'
import { closeQuietly, describeError } from './sockets.js'
import { HandshakeStream } from './stream.js'
import { openTunnel } from './upstream.js'
import { cancelAfter } from './loop.js'

/** Delay results kept per proxy, as mihomo keeps them. */
const HISTORY = 10

/** The delay test's client as an hbone peer hears of it (`forwarded: for=`). */
const SELF = { fd: -1, addr: '127.0.0.1', port: 0, family: 4 } as const

/** Clash's adapter type of each upstream type; Hbone (a mesh peer) is ugate's own. */
const PROXY_TYPES = { socks5: 'Socks5', http: 'Http', hbone: 'Hbone' } as const

export class AdminApi {
  private readonly history = new Map<string, DelayRecord[]>()

  constructor(
    private readonly ctx: GatewayContext,
    private readonly listeners: ListenerView,
    private readonly log: ControlledLogger,
  ) {}

  respond(req: Request): Answer | Promise<Answer> {
    const { name, params, query } = req.route
    const ctx = this.ctx
    switch (name) {
      case 'page':
        return { status: 200, text: ADMIN_PAGE, contentType: 'text/html; charset=utf-8' }
      case 'status':
        return { status: 200, body: statusView(ctx, this.listeners) }
      case 'version':
        return { status: 200, body: { version: VERSION, meta: false } }
      case 'configs':
        return req.method === 'PATCH' ? this.patchConfigs(req.body) : { status: 200, body: this.configs() }
      case 'proxies':
        return { status: 200, body: proxiesView(this.proxies()) }
      case 'proxy': {
        const p = this.proxies().find((x) => x.name === params.name)
        return p === undefined ? errorReply(404, 'Resource not found') : { status: 200, body: proxyView(p) }
      }
      case 'delay':
        return this.delay(params.name!, query.get('url'), query.get('timeout'))
      case 'rules':
        return { status: 200, body: rulesView(ctx.config.rules, ruleHits(ctx)) }
      case 'connections':
        if (req.method === 'DELETE') {
          for (const c of liveConns(ctx)) closeConn(ctx, c)
          return { status: 204 }
        }
        return this.maybeStream(req, () => JSON.stringify(this.snapshot()), query.get('interval'))
      case 'connection': {
        // mihomo answers 204 whether or not the id was live; ugate says 404 for an unknown or bad id.
        const ref = parseConnId(params.id!)
        if (ref === null || !closeConn(ctx, ref)) return errorReply(404, `no live connection ${params.id}`)
        return { status: 204 }
      }
      case 'traffic':
        return this.trafficStream()
      case 'memory':
        return this.tickStream(() => JSON.stringify({ inuse: rssBytes(), oslimit: 0 }), 1000)
      case 'logs':
        return this.logStream(query.get('level'))
      case 'metrics':
        return { status: 200, text: this.metrics(), contentType: 'text/plain; version=0.0.4; charset=utf-8' }
    }
  }

  // ---- configs --------------------------------------------------------------------

  private configs() {
    const c = this.ctx.config
    const port = (type: string) => {
      const l = this.listeners().find((x) => x.type === type)
      return l === undefined ? 0 : l.bound.port
    }
    const lan = this.listeners().some((l) => !/^127\./.test(l.bound.addr) && l.bound.addr !== '::1')
    return {
      port: port('http'),
      'socks-port': port('socks'),
      'mixed-port': port('mixed'),
      'redir-port': port('redirect'),
      'tproxy-port': 0,
      'allow-lan': lan,
      'bind-address': '*',
      mode: 'rule',
      'log-level': clashLevel(this.log.level),
      ipv6: c.capture.ipv6,
    }
  }

  private patchConfigs(body: Uint8Array): Reply {
    let patch: unknown
    try {
      patch = JSON.parse(utf8Decode(body) ?? '')
    } catch {
      return errorReply(400, 'Body invalid: not JSON')
    }
    if (typeof patch !== 'object' || patch === null || Array.isArray(patch))
      return errorReply(400, 'Body invalid: not a JSON object')
    const fields = patch as Record<string, unknown>
    let level: LogLevel | null = null
    for (const [key, value] of Object.entries(fields)) {
      if (key === 'log-level') {
        level = typeof value === 'string' ? ugateLevel(value) : null
        if (level === null)
          return errorReply(400, `log-level ${JSON.stringify(value)} is not one of debug, info, warning, error`)
      } else if (key === 'mode') {
        if (typeof value !== 'string' || value.toLowerCase() !== 'rule')
          return errorReply(400, `mode ${JSON.stringify(value)}: ugate only routes by rule`)
      } else return errorReply(400, `${JSON.stringify(key)} cannot be changed here (only log-level)`)
    }
    if (level !== null && level !== this.log.level) {
      this.log.setLevel(level)
      this.log.warn('log-level', { level, by: 'admin-api' })
    }
    return { status: 204 }
  }

  // ---- proxies ----------------------------------------------------------------------

  private proxies(): ProxyInfo[] {
    const h = (name: string) => this.history.get(name) ?? []
    return [
      { name: 'DIRECT', type: 'Direct', udp: false, history: h('DIRECT') },
      { name: 'REJECT', type: 'Reject', udp: false, history: [] },
      ...this.ctx.config.upstreams.map((u): ProxyInfo => {
        const p = { name: u.name, type: PROXY_TYPES[u.type], udp: false, history: h(u.name) }
        if (u.type !== 'hbone') return p
        const tunnels = hboneView()
          .filter((t) => t.role === 'client' && t.pool === u.name)
          .map((t) => ({
            id: t.id,
            state: t.state,
            peerId: t.peerId,
            streams: t.streams,
            streamsTotal: t.streamsTotal,
            bytesOut: t.bytesOut,
            bytesIn: t.bytesIn,
            rttMs: t.rttMs,
            ageMs: t.ageMs,
          }))
        return {
          ...p,
          mesh: { server: u.server === null ? null : formatEndpoint(u.server), identity: u.identity, tunnels },
        }
      }),
    ]
  }

  private async delay(name: string, url: string | null, timeoutText: string | null): Promise<Reply> {
    const proxy = this.proxies().find((p) => p.name === name)
    if (proxy === undefined) return errorReply(404, 'Resource not found')
    const timeout = timeoutText !== null && /^[0-9]{1,6}$/.test(timeoutText) ? Number(timeoutText) : 0
    if (timeout <= 0) return errorReply(400, `Body invalid: timeout ${JSON.stringify(timeoutText)} is not 1-999999 ms`)
    const target = url === null ? null : parseTestUrl(url)
    if (target === null)
      return errorReply(400, `Body invalid: url ${JSON.stringify(url)} is not an http:// or https:// URL`)
    if (name === 'REJECT') return errorReply(503, 'An error occurred in the delay test: REJECT never connects')
    const cancel = new Cancel()
    const stop = cancelAfter(cancel, timeout, 'timeout')
    const started = native.now()
    let delay = 0
    try {
      delay = await this.measure(name, target, cancel, started)
    } catch (e) {
      this.log.debug('delay-test-failed', { proxy: name, error: describeError(e) })
    } finally {
      stop()
      cancel.release()
    }
    const list = this.history.get(name) ?? []
    list.push({ time: native.wallClock(), delay })
    this.history.set(name, list.slice(-HISTORY))
    if (delay > 0) return { status: 200, body: { delay } }
    return cancel.reason === 'timeout'
      ? errorReply(504, 'Timeout')
      : errorReply(503, 'An error occurred in the delay test')
  }

  /**
   * Milliseconds until the answer's head (http://) or until the connection
   * through the proxy is open (https://: ugate speaks no TLS).
   */
  private async measure(name: string, t: TestUrl, cancel: Cancel, started: number): Promise<number> {
    const fd = await this.connect(this.ctx.upstreams.get(name), t, cancel)
    try {
      if (t.tls) return Math.max(1, Math.round(native.now() - started))
      const s = new HandshakeStream(fd, cancel)
      const host = t.host.includes(':') ? `[${t.host}]` : t.host
      await s.writeAll(latin1Encode(`HEAD ${t.path} HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`))
      const r = await s.read(parseResponseHead, 16384)
      if (r.status !== 'ok') throw new Error(r.error)
      return Math.max(1, Math.round(native.now() - started))
    } finally {
      closeQuietly(fd)
    }
  }

  /** A socket to the test URL's host and port through `up` (none: directly). */
  private async connect(up: UpstreamConfig | undefined, t: TestUrl, cancel: Cancel): Promise<number> {
    const ctx = this.ctx
    // A CONNECT stream through the peer, which is told the test comes from ugate itself.
    if (up?.type === 'hbone') return (await openHbone(up, t.host, t.port, { client: SELF, cancel }, ctx)).fd
    const opts = {
      timeoutMs: ctx.config.dial.connectTimeoutMs,
      mark: ctx.config.dial.mark,
      cancel,
      log: ctx.log,
      refuse: (addr: string, port: number) => isOwnAddress(ctx.own, addr, port),
    }
    if (up === undefined) return (await dial(t.host, t.port, opts)).fd
    const dialed = await dial(up.server.host, up.server.port, opts)
    try {
      // Bytes an upstream sends past its reply cannot come before our request: none to keep.
      await openTunnel(up, dialed.fd, t.host, t.port, cancel)
      return dialed.fd
    } catch (e) {
      closeQuietly(dialed.fd)
      throw e
    }
  }

  // ---- rules, connections -----------------------------------------------------------

  private snapshot() {
    return connectionsSnapshot(liveConns(this.ctx), this.ctx.config.rules, byteTotals(this.ctx), rssBytes())
  }

  /** A plain GET answers once; a WebSocket gets the answer every `interval` ms (default 1000). */
  private maybeStream(req: Request, make: () => string, intervalText: string | null): Answer {
    const upgrade = req.head.headers.some(([n, v]) => n.toLowerCase() === 'upgrade' && /websocket/i.test(v))
    if (!upgrade) return { status: 200, text: `${make()}\n`, contentType: 'application/json' }
    const interval = intervalText === null ? 1000 : /^[0-9]{1,6}$/.test(intervalText) ? Number(intervalText) : 0
    if (interval < 100) return errorReply(400, `interval ${JSON.stringify(intervalText)} is not 100-999999 ms`)
    return this.tickStream(make, interval)
  }

  // ---- streams -----------------------------------------------------------------------

  /** Sends make() at once and then every `ms`. */
  private tickStream(make: () => string, ms: number): Stream {
    return {
      start: (send) => {
        let timer = 0
        const tick = () => {
          send(make())
          timer = native.setTimeout(tick, ms)
        }
        tick()
        return () => native.clearTimeout(timer)
      },
    }
  }

  /** {"up","down"}: bytes in the last second, plus totals (mihomo's upTotal/downTotal). */
  private trafficStream(): Stream {
    return {
      start: (send) => {
        let last = byteTotals(this.ctx)
        let timer = 0
        const tick = () => {
          const now = byteTotals(this.ctx)
          send(JSON.stringify(trafficSample(last, now)))
          last = now
          timer = native.setTimeout(tick, 1000)
        }
        timer = native.setTimeout(tick, 1000)
        return () => native.clearTimeout(timer)
      },
    }
  }

  private logStream(levelText: string | null): Answer {
    const level = ugateLevel(levelText ?? 'info')
    if (level === null)
      return errorReply(400, `level ${JSON.stringify(levelText)} is not one of debug, info, warning, error`)
    return {
      start: (send) =>
        this.log.subscribe((lvl, message) => {
          if (levelEnabled(level, lvl)) send(JSON.stringify({ type: clashLevel(lvl), payload: message }))
        }),
    }
  }

  // ---- metrics ------------------------------------------------------------------------

  private metrics(): string {
    const st = this.ctx.stats
    const m = st.metrics
    const r = native.relayStats()
    const live = new Map<string, number>()
    for (const c of liveConns(this.ctx)) if (c.network === 'tcp') live.set(c.listener, (live.get(c.listener) ?? 0) + 1)
    const u = native.udpStats()
    const dns = [...st.dns]
    const perDns = (key: keyof DnsCounters) => dns.map(([listener, c]) => ({ labels: { listener }, value: c[key] }))
    const both = (up: number, down: number) => [
      { labels: { direction: 'up' }, value: up },
      { labels: { direction: 'down' }, value: down },
    ]
    const families: Family[] = [
      {
        name: 'ugate_connections_total',
        type: 'counter',
        help: 'Connections closed, by listener, routing action (none: not routed) and result (access-line reason).',
        samples: samplesOf(m.connections, ['listener', 'action', 'result']),
      },
      {
        name: 'ugate_connections_active',
        type: 'gauge',
        help: 'Connections open now (handshake or relay), by listener.',
        samples: [...live].map(([listener, value]) => ({ labels: { listener }, value })),
      },
      {
        name: 'ugate_bytes_total',
        type: 'counter',
        help: 'Bytes relayed by closed connections, by listener and direction (up: client to server).',
        samples: samplesOf(m.bytes, ['listener', 'direction']),
      },
      {
        name: 'ugate_handshake_failures_total',
        type: 'counter',
        help: 'Connections that ended before their relay began, by listener and reason.',
        samples: samplesOf(m.handshakeFailures, ['listener', 'reason']),
      },
      {
        name: 'ugate_relays_total',
        type: 'counter',
        help: 'Relays finished, by how bytes moved (splice: any byte through splice(2); copy: read/write only).',
        samples: samplesOf(m.relayModes, ['mode']),
      },
      {
        name: 'ugate_relay_calls_total',
        type: 'counter',
        help: 'splice(2) calls and read/write calls of the copy loop made by the relay thread.',
        samples: [
          { labels: { mode: 'splice' }, value: r.spliceCalls },
          { labels: { mode: 'copy' }, value: r.copyCalls },
        ],
      },
      {
        name: 'ugate_udp_flows_active',
        type: 'gauge',
        help: 'UDP flows open now (tproxy listeners), including those waiting for their route.',
        samples: [{ value: u.flowsLive }],
      },
      {
        name: 'ugate_udp_flows_total',
        type: 'counter',
        help: 'UDP flows opened since start.',
        samples: [{ value: u.flowsTotal }],
      },
      {
        name: 'ugate_udp_flows_ended_total',
        type: 'counter',
        help: 'UDP flows ended by the engine: idle (timeout) or evicted (the flow cap made room for a new one).',
        samples: [
          { labels: { reason: 'idle' }, value: u.flowsExpired },
          { labels: { reason: 'evicted' }, value: u.flowsEvicted },
        ],
      },
      {
        name: 'ugate_udp_datagrams_total',
        type: 'counter',
        help: 'UDP datagrams relayed, by direction (up: client to server).',
        samples: both(u.packetsUp, u.packetsDown),
      },
      {
        name: 'ugate_udp_bytes_total',
        type: 'counter',
        help: 'UDP payload bytes relayed, by direction (up: client to server).',
        samples: both(u.bytesUp, u.bytesDown),
      },
      {
        name: 'ugate_udp_drops_total',
        type: 'counter',
        help: 'UDP datagrams dropped, by reason.',
        samples: Object.entries(u.drops).map(([reason, value]) => ({ labels: { reason }, value })),
      },
      ...DNS_METRICS.map(([name, key, help]): Family => ({ name, type: 'counter', help, samples: perDns(key) })),
      {
        name: 'ugate_dns_answer_duration_seconds',
        type: 'histogram',
        help: 'Seconds from a decoded DNS query to its answer, by dns listener and source (cache, static, reject, invalid, upstream, servfail).',
        samples: st.dnsLatency.samples(['listener', 'source']),
      },
      {
        name: 'ugate_resolve_duration_seconds',
        type: 'histogram',
        help: 'Seconds of each host name lookup when dialing (getaddrinfo off the loop), by result (ok, error); counted when the lookup completes, also after the dial stopped waiting for it.',
        samples: resolveLatency.samples(['result']),
      },
      ...st.mesh.families(native.hboneStats(), tunnelListener),
      {
        name: 'ugate_rule_hits_total',
        type: 'counter',
        help: 'Connections routed by each rule (name, #index or default).',
        samples: [...st.ruleHits].map(([rule, value]) => ({ labels: { rule }, value })),
      },
      {
        name: 'ugate_process_resident_memory_bytes',
        type: 'gauge',
        help: 'Resident set size of the ugate process.',
        samples: [{ value: rssBytes() }],
      },
      {
        name: 'ugate_process_open_fds',
        type: 'gauge',
        help: 'Open file descriptors of the ugate process.',
        samples: [{ value: native.fdCount() }],
      },
      {
        name: 'ugate_uptime_seconds',
        type: 'gauge',
        help: 'Seconds since the gateway started.',
        samples: [{ value: Math.round((native.now() - st.startedAt) / 1000) }],
      },
    ]
    return exposition(families)
  }
}

/** The DNS counter families, per dns listener: metric name, counter, help. */
const DNS_METRICS: Array<[string, keyof DnsCounters, string]> = [
  ['ugate_dns_queries_total', 'queries', 'DNS queries answered or forwarded, by dns listener.'],
  ['ugate_dns_cache_hits_total', 'cached', 'DNS queries answered from the cache.'],
  ['ugate_dns_local_answers_total', 'local', 'DNS queries answered by a rule (reject) or a static hosts entry.'],
  ['ugate_dns_forwarded_total', 'forwarded', 'DNS queries asked of the upstream resolvers.'],
  [
    'ugate_dns_upstream_failures_total',
    'failed',
    'Forwarded DNS queries no resolver answered (the client got SERVFAIL).',
  ],
  ['ugate_dns_malformed_total', 'malformed', 'DNS datagrams that could not be decoded.'],
  [
    'ugate_dns_dropped_total',
    'dropped',
    'DNS datagrams not answered: source not in the allow list, a response sent to the listener, too many queries waiting for an upstream.',
  ],
]

interface TestUrl {
  tls: boolean
  host: string
  port: number
  path: string
}

function parseTestUrl(url: string): TestUrl | null {
  const m = /^(https?):\/\/([^/?#]+)([^#]*)/i.exec(url)
  if (m === null) return null
  const tls = m[1]!.toLowerCase() === 'https'
  const authority = m[2]!
  const hp = authority.includes(':') && !authority.endsWith(']') ? splitHostPort(authority) : null
  let host = authority
  let port = tls ? 443 : 80
  if (hp !== null) {
    if (!('portText' in hp)) return null
    host = hp.host
    port = Number(hp.portText)
    if (!/^[0-9]{1,5}$/.test(hp.portText) || port < 1 || port > 65535) return null
  }
  if (host.startsWith('[') && host.endsWith(']')) host = host.slice(1, -1)
  if (host === '' || /[\s@]/.test(host)) return null
  const path = m[3] === '' ? '/' : m[3]!.startsWith('/') ? m[3]! : `/${m[3]}`
  return { tls, host, port, path }
}

/** Resident set size now (VmRSS), in bytes; 0 when /proc cannot tell. */
function rssBytes(): number {
  try {
    const m = /^VmRSS:\s+([0-9]+) kB/m.exec(native.readFile('/proc/self/status'))
    return m === null ? 0 : Number(m[1]) * 1024
  } catch {
    return 0
  }
}
