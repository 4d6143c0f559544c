// Runs a Config: opens every listener, applies the nftables capture rules
// when enabled, serves the admin socket, tracks live connections, reloads
// on SIGHUP and drives the shutdown on SIGINT/SIGTERM. The process exits
// from the callback that ends the last connection; nothing polls.

import * as native from 'ugate:native'
import { type Endpoint, formatEndpoint } from '../core/address.js'
import { type Config, type ListenerConfig, captureOptions, captureTcpTproxy } from '../core/config.js'
import { ConnTracker } from '../core/conn-tracker.js'
import { StartupError } from '../core/errors.js'
import type { ControlledLogger, Logger } from '../core/log.js'
import { nftDeleteCommand, nftRuleset, policyRoutingScript } from '../core/nft.js'
import { compileRules } from '../core/rules/index.js'
import { type AdminServer, openAdmin } from './admin.js'
import { AdminApi } from './admin-api.js'
import { type AdminHttp, openAdminHttp } from './admin-http.js'
import type { Accepted, DatagramSocket } from './listener.js'
import { nativeForward, onForwardBatch, serveForward } from './forward.js'
import { serveHttp } from './http-server.js'
import { type Listener, openListener } from './listener.js'
import { serveMixed } from './mixed-server.js'
import { hboneAcceptor, onHboneBatch, tunnelListener } from './hbone.js'
import { DnsService } from './dns-server.js'
import { AddressNames } from '../core/dns/names.js'
import { Admission, type GatewayContext, GatewayStats, type Handler, serveWith } from './session.js'
import { serveSocks } from './socks-server.js'
import { forgetKeptRoute, keepSocksRoutes, nativeSocks, onSocksAsk } from './socks-native.js'
import { describeError } from './sockets.js'
import { serveRedirect, serveRelayed, serveSni, serveTproxy } from './transparent.js'
import { GatePools, RelayState, servePark } from './sni-relay.js'
import { configureReverse, stopReverse } from './reverse.js'
import { watchTable } from './nft-watch.js'
import { type UdpListener, openUdpListener } from './udp-flows.js'
import { type UbusClient, startUbus } from './ubus.js'
import { ugateMethods } from './ubus-object.js'
import { currentTls, reloadMeshIdentity, startMeshIdentity } from './mesh-identity.js'

export interface Gateway {
  /** What SIGINT/SIGTERM do; a second call stops waiting for relays. */
  shutdown(signal: string): void
  /** What SIGHUP does: read the config again and apply it without dropping connections. */
  reload(): void
}

/** A listening socket and the handler its connections go to (swapped on reload). */
interface Entry {
  listener: Listener
  accept: (client: Accepted) => void
  config: ListenerConfig
  /** A dns listener's UDP socket is readable. */
  datagram?: (sock: DatagramSocket) => void
  /** A dns listener's service (retired when a reload replaces it). */
  dns?: DnsService
  /** A tproxy listener (UDP): its flows are routed by udp-flows.ts, nothing is accepted. */
  udp?: UdpListener
}

/** Start serving; throws StartupError (with every opened listener closed) if one cannot listen. */
export function startGateway(config: Config, log: ControlledLogger, readConfig?: () => Config): Gateway {
  // Native forwards count as live until their batch reached JS.
  const conns = new ConnTracker(() => native.gateStats().forwardLive)
  const ctx: GatewayContext = {
    config,
    log,
    conns,
    rules: compileRules(config.rules),
    upstreams: new Map(config.upstreams.map((u) => [u.name, u])),
    own: [],
    admission: new Admission(config.limits.maxConnections, config.limits.maxPerSource),
    stats: new GatewayStats(),
    names: new AddressNames(undefined, forgetKeptRoute),
    udpNames: new Map(),
    relayState: new RelayState(),
  }
  const gatePools = new GatePools(serveRelayed)
  // Keyed by the listen address: a reload that keeps an address keeps its socket.
  let entries = new Map<string, Entry>()
  let admin: AdminServer | null = null
  let adminHttp: AdminHttp | null = null
  let ubus: UbusClient | null = null
  let unwatch: (() => void) | null = null
  const listeners = () => [...entries.values()].map((e) => e.listener)
  const udpNames = () => {
    ctx.udpNames = new Map(
      [...entries.values()].flatMap((e) => (e.udp !== undefined ? [[e.udp.id, e.udp.name] as const] : [])),
    )
  }
  // After ctx.own and ctx.config are current: a forward's target may have become ours.
  const serveNatively = () => {
    for (const e of entries.values()) e.listener.serveNative(nativeForward(e.config, ctx) ?? nativeSocks(e.config, ctx))
  }
  native.onForwardEvents(onForwardBatch(ctx))
  native.onSocksRequests(onSocksAsk(ctx))
  keepSocksRoutes(ctx)
  const onHbone = onHboneBatch(ctx)
  native.onHboneEvents((batch) => {
    ctx.stats.mesh.observe(batch, tunnelListener) // first: a closed tunnel's listener is still known
    onHbone(batch)
  })
  // A flushed ruleset (fw4 flush, firewall stop) takes our table: load it again.
  const watchCapture = () => {
    unwatch ??= watchTable(
      'inet ugate',
      () => {
        try {
          applyCapture(ctx.config, listeners(), log)
          ubus?.event('ugate.capture', { enabled: true, restored: true })
        } catch (e) {
          log.error('capture-failed', { error: describeError(e) })
        }
      },
      log,
    )
  }
  const unwatchCapture = () => {
    unwatch?.()
    unwatch = null
  }
  // Who we are in the mesh, in the log after start and after each reload that changed it.
  const logIdentity = (reloaded: boolean) => {
    const tls = currentTls()
    if (tls)
      log.info('mesh-identity', { spiffeId: tls.spiffeId, nodeId: tls.nodeId, ...(reloaded ? { reloaded } : {}) })
  }
  try {
    // Before the listeners: mesh listeners take the identity when they open.
    startMeshIdentity(config.mesh)
    logIdentity(false)
    ctx.relayState.configure(ctx)
    entries = openEntries(config, ctx, new Map())
    udpNames()
    ctx.own = listeners().map((l) => l.bound)
    serveNatively()
    if (config.capture.enabled) applyCapture(config, listeners(), log)
    if (config.capture.enabled) watchCapture()
    if (config.admin.socket !== '') admin = openAdmin(config.admin.socket, ctx, listeners)
    adminHttp = startAdminHttp(ctx, listeners, log)
    gatePools.configure(ctx)
    configureReverse(ctx)
  } catch (e) {
    admin?.close()
    for (const l of listeners()) l.close()
    if (config.capture.enabled) removeCapture(ctx.config, log)
    throw e instanceof StartupError ? e : new StartupError(describeError(e))
  }

  let stopping = false
  const shutdown = (signal: string) => {
    if (stopping) {
      log.warn('shutdown-forced', { signal, live: conns.size })
      native.relayAbortAll()
      native.hboneCloseAll()
      return
    }
    stopping = true
    // Traffic must never stay redirected to a port nobody listens on.
    unwatchCapture()
    if (ctx.config.capture.enabled) removeCapture(ctx.config, log)
    for (const l of listeners()) l.close()
    for (const e of entries.values()) e.dns?.retire()
    gatePools.stop()
    stopReverse()
    admin?.close()
    adminHttp?.close()
    ubus?.close()
    const graceMs = ctx.config.relay.shutdownGraceMs
    log.info('stopping', { signal, live: conns.size, graceMs })
    conns.cancelDialing('shutdown')
    native.forwardCancelDialing()
    // Relays get the grace period to finish on their own, then are closed.
    const graceTimer = native.setTimeout(() => {
      native.relayAbortAll()
      native.hboneCloseAll()
    }, graceMs)
    conns.onIdle(() => {
      native.clearTimeout(graceTimer)
      stopped()
    })
  }

  const stopped = () => {
    const s = native.relayStats()
    const udp = ctx.udpNames.size > 0 ? { udpFlows: native.udpStats().flowsTotal } : {}
    log.info('stats', {
      relays: s.total,
      spliceCalls: s.spliceCalls,
      copyCalls: s.copyCalls,
      ...udp,
    })
    log.info('stopped')
    native.exit(0)
  }

  const reload = () => {
    if (stopping || !readConfig) return
    let next: Config
    try {
      next = readConfig()
    } catch (e) {
      log.error('reload-failed', { error: e instanceof Error ? e.message : String(e), kept: 'old config' })
      return
    }
    // The identity files are read again: a renewed certificate takes effect on reload.
    const relayBefore = ctx.config
    try {
      ctx.config = next
      ctx.relayState.configure(ctx)
    } catch (e) {
      ctx.config = relayBefore
      log.error('reload-failed', { error: describeError(e), kept: 'old config' })
      return
    } finally {
      ctx.config = relayBefore
    }
    // Unusable identity files keep the identity in use (logged); the rest of the config still applies.
    if (reloadMeshIdentity(next.mesh, log)) logIdentity(true)
    let nextEntries: Map<string, Entry>
    try {
      nextEntries = openEntries(next, ctx, entries)
    } catch (e) {
      log.error('reload-failed', { error: describeError(e), kept: 'old config' })
      return
    }
    // Listeners whose address is gone stop accepting; their live relays go on.
    for (const [key, e] of entries) {
      if (!nextEntries.has(key)) e.listener.close()
      if (nextEntries.get(key) !== e) e.dns?.retire()
    }
    entries = nextEntries
    udpNames()
    const before = ctx.config
    ctx.config = next
    ctx.rules = compileRules(next.rules)
    keepSocksRoutes(ctx)
    ctx.upstreams = new Map(next.upstreams.map((u) => [u.name, u]))
    ctx.own = listeners().map((l) => l.bound)
    serveNatively()
    ctx.admission.setLimits(next.limits.maxConnections, next.limits.maxPerSource)
    gatePools.configure(ctx)
    configureReverse(ctx)
    if (next.capture.enabled) {
      try {
        // The old policy routing goes first: the new config may use another mark or table, or no UDP.
        if (before.capture.enabled && before.capture.udp) removeRouting(before)
        applyCapture(next, listeners(), log)
        watchCapture()
        ubus?.event('ugate.capture', { enabled: true })
      } catch (e) {
        log.error('capture-failed', { error: describeError(e) })
      }
    } else if (before.capture.enabled) {
      unwatchCapture()
      removeCapture(before, log)
      ubus?.event('ugate.capture', { enabled: false })
    }
    if (next.admin.socket !== before.admin.socket) {
      admin?.close()
      admin = null
      if (next.admin.socket !== '') {
        try {
          admin = openAdmin(next.admin.socket, ctx, listeners)
        } catch (e) {
          log.error('admin-failed', { socket: next.admin.socket, error: describeError(e) })
        }
      }
    }
    if (!sameEndpoint(next.admin.listen, before.admin.listen)) {
      adminHttp?.close()
      adminHttp = null
      try {
        adminHttp = startAdminHttp(ctx, listeners, log)
      } catch (e) {
        log.error('admin-failed', { listen: formatEndpoint(next.admin.listen!), error: describeError(e) })
      }
    }
    log.info('reloaded', { listeners: entries.size, rules: next.rules.length, live: conns.size })
    ubus?.event('ugate.reload', { listeners: entries.size, rules: next.rules.length, live: conns.size })
  }

  // Not reopened on reload: the socket is ubusd's, not ours to move.
  if (config.ubus.socket !== '')
    ubus = startUbus(config.ubus.socket, 'ugate', ugateMethods(ctx, listeners, reload), log)
  log.info('ready', { listeners: entries.size })

  native.onSignal(native.SIGINT, () => shutdown('SIGINT'))
  native.onSignal(native.SIGTERM, () => shutdown('SIGTERM'))
  native.onSignal(native.SIGHUP, reload)
  return { shutdown, reload }
}

/**
 * The listeners of `config`: sockets of `old` at the same address are kept
 * (with the new handler), others are opened. If one cannot be opened, the
 * ones opened here are closed again and the error is thrown: all or nothing.
 */
function openEntries(config: Config, ctx: GatewayContext, old: Map<string, Entry>): Map<string, Entry> {
  checkMeshIdentity(config)
  const next = new Map<string, Entry>()
  const opened: Listener[] = []
  try {
    for (const l of config.listeners) {
      // Port 0 ("any free port") names no fixed address: such listeners are told apart by name.
      const key = l.listen.port === 0 ? `${formatEndpoint(l.listen)}/${l.name}` : formatEndpoint(l.listen)
      // A tproxy listener's UDP side; with "tcp" it also gets a TCP one below.
      if (l.type === 'tproxy' && l.networks.includes('udp')) {
        const kept = old.get(`udp ${key}`)
        if (kept?.udp && kept.udp.name === l.name) {
          kept.udp.update(l)
          kept.config = l
          next.set(`udp ${key}`, kept)
        } else {
          let udp: UdpListener
          try {
            udp = openUdpListener(l, ctx)
          } catch (e) {
            throw new StartupError(
              `listener ${l.name}: cannot listen on UDP ${formatEndpoint(l.listen)}: ${describeError(e)}`,
            )
          }
          opened.push(udp)
          next.set(`udp ${key}`, { listener: udp, accept: () => {}, config: l, udp })
        }
      }
      if (l.type === 'tproxy' && !l.networks.includes('tcp')) continue
      let dns: DnsService | null = null
      const handler = l.type === 'dns' ? (dns = new DnsService(l, ctx)).serveTcp : handlerFor(l)
      const accept = l.type === 'hbone' ? hboneAcceptor(l, ctx) : serveWith(handler, l, ctx)
      const kept = old.get(key)
      if (kept && kept.listener.name === l.name && kept.listener.type === l.type) {
        kept.accept = accept
        kept.config = l
        if (dns) {
          kept.datagram = dns.onDatagram
          kept.dns?.retire()
          kept.dns = dns
        }
        next.set(key, kept)
        continue
      }
      // A socket is kept across types only where its options agree (a dns one has a UDP side, a tproxy one is transparent).
      const sameSocket = (t: string) =>
        (t === 'dns') === (l.type === 'dns') && (t === 'tproxy') === (l.type === 'tproxy')
      if (kept && sameSocket(kept.listener.type)) {
        // Same address, other name or type: the socket stays, the listener is renamed.
        const listener = { ...kept.listener, name: l.name, type: l.type }
        const entry: Entry = { listener, accept, config: l }
        if (dns) {
          entry.datagram = dns.onDatagram
          entry.dns = dns
        }
        next.set(key, entry)
        continue
      }
      // (A dns or tproxy listener replacing another type at the same address, or the other way
      // round, gets a new socket: the old one has no UDP side or one too many, or the wrong transparency.)
      if (kept) kept.listener.close()
      const entry: Entry = { listener: null as unknown as Listener, accept, config: l }
      if (dns) {
        entry.datagram = dns.onDatagram
        entry.dns = dns
      }
      const { name, type, listen, backlog } = l
      const onDatagram = dns ? (sock: DatagramSocket) => entry.datagram?.(sock) : undefined
      entry.listener = openListener({
        name,
        type,
        listen,
        backlog,
        log: ctx.log,
        onAccept: (c) => entry.accept(c),
        ...(onDatagram ? { onDatagram } : {}),
        ...(type === 'tproxy' ? { transparent: true } : {}),
      })
      opened.push(entry.listener)
      next.set(key, entry)
    }
  } catch (e) {
    for (const l of opened) l.close()
    throw e
  }
  return next
}

/** hbone listeners and upstreams need the mesh identity: without it, nothing starts. */
function checkMeshIdentity(config: Config): void {
  const what =
    config.listeners.find((x) => x.type === 'hbone')?.name ?? config.upstreams.find((x) => x.type === 'hbone')?.name
  if (what !== undefined && config.mesh === null)
    throw new StartupError(`${what} (hbone) needs the mesh identity: add a mesh section (identity files, trust domain)`)
}

/** The admin HTTP server when admin.listen is set; the secret is read per request (reload swaps it). */
function startAdminHttp(ctx: GatewayContext, listeners: () => Listener[], log: ControlledLogger): AdminHttp | null {
  const listen = ctx.config.admin.listen
  if (listen === null) return null
  const api = new AdminApi(ctx, listeners, log)
  return openAdminHttp(
    listen,
    () => ctx.config.admin.secret,
    (req) => api.respond(req),
    log,
  )
}

function sameEndpoint(a: Endpoint | null, b: Endpoint | null): boolean {
  return a === b || (a !== null && b !== null && formatEndpoint(a) === formatEndpoint(b))
}

/** The protocol handler for a listener's type; new types add a case (dns: DnsService). */
function handlerFor(l: Exclude<ListenerConfig, { type: 'dns' }>): Handler {
  switch (l.type) {
    case 'forward':
      return serveForward
    case 'socks':
      return serveSocks
    case 'http':
      return serveHttp
    case 'mixed':
      return serveMixed
    case 'redirect':
      return serveRedirect
    case 'sni':
      return (s, ctx) => serveSni(s, ctx, l)
    case 'park':
      return servePark
    case 'tproxy':
      return serveTproxy // its TCP side; the UDP side is openUdpListener's
    case 'hbone':
      return () => Promise.reject(new Error('an hbone listener hands its connections to C')) // hboneAcceptor
  }
}

/**
 * Load ugate's nftables table (replacing a stale one in the same
 * transaction) and, for UDP capture, the policy routing TPROXY needs.
 */
function applyCapture(config: Config, listeners: Listener[], log: Logger): void {
  const c = config.capture
  const target = listeners.find((l) => l.name === c.listener)!
  const dns = c.dns ? listeners.find((l) => l.name === c.dnsListener) : undefined
  const tproxy = c.udp ? listeners.find((l) => l.name === c.udpListener) : undefined
  const opts = captureOptions(config, target.bound.port, dns?.bound.port ?? 0, tproxy?.bound.port ?? 0)
  const ruleset = nftRuleset(opts)
  // Routing first: the marked packets must have somewhere to go once the table marks them.
  const routing = opts.udp ?? opts.tcpTproxy
  if (routing !== undefined) {
    const r = runSh(policyRoutingScript(routing, c.ipv6, true))
    if (r !== null) throw new StartupError(`capture: policy routing failed: ${r}`)
  }
  const r = runNft(ruleset)
  if (r !== null) throw new StartupError(`capture: nft -f - failed: ${r}`)
  // Whatever ends the process from here (even a fatal error), the table and routes go with it.
  native.setExitCommand(['sh', '-c', removeScript(config)], nftDeleteCommand() + '\n')
  log.info('capture-on', {
    table: 'inet ugate',
    port: target.bound.port,
    interfaces: c.lanInterfaces.join(','),
    ...(dns ? { dnsPort: dns.bound.port } : {}),
    ...(opts.udp !== undefined ? { udpPort: opts.udp.port, tproxyMark: opts.udp.mark, table: 'inet ugate' } : {}),
    ...(opts.tcpTproxy !== undefined ? { tcp: 'tproxy', tproxyMark: opts.tcpTproxy.mark } : {}),
  })
}

/** The shell commands that remove the policy routing of `config`'s TPROXY capture (UDP, TCP). */
function routingRemoval(config: Config): string {
  const c = config.capture
  return c.udp || captureTcpTproxy(config)
    ? policyRoutingScript({ port: 1, mark: c.tproxyMark, table: c.tproxyTable }, c.ipv6, false)
    : 'exit 0\n'
}

function removeRouting(config: Config): void {
  runSh(routingRemoval(config))
}

/** `nft -f -` (the delete, on stdin), then the policy routing's removal. */
function removeScript(config: Config): string {
  return `nft -f -\n${routingRemoval(config)}`
}

function removeCapture(config: Config, log: Logger): void {
  const r = runSh(removeScript(config), nftDeleteCommand() + '\n')
  native.setExitCommand(null)
  if (r === null) log.info('capture-off', { table: 'inet ugate' })
  else log.error('capture-off-failed', { error: r })
}

/** null on success, else what went wrong. */
function runSh(script: string, input = ''): string | null {
  return runChecked(['sh', '-c', script], input)
}

function runNft(input: string): string | null {
  return runChecked(['nft', '-f', '-'], input)
}

function runChecked(argv: string[], input: string): string | null {
  try {
    const r = native.runSync(argv, input)
    return r.code === 0 ? null : `exit ${r.code}: ${r.stderr.trim().split('\n').slice(0, 3).join(' | ')}`
  } catch (e) {
    return describeError(e)
  }
}
