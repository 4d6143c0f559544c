// Runs a Config: opens every listener, applies the nftables capture rules
// when enabled, tracks live connections and drives the shutdown on
// SIGINT/SIGTERM. The process exits from the callback that ends the last
// connection; nothing polls.

import * as native from 'ugate:native'
import { type Config, type ListenerConfig, captureOptions } from '../core/config.js'
import { ConnTracker } from '../core/conn-tracker.js'
import { StartupError } from '../core/errors.js'
import type { Logger } from '../core/log.js'
import { nftDeleteCommand, nftRuleset } from '../core/nft.js'
import { compileRules } from '../core/rules.js'
import { serveForward } from './forward.js'
import { serveHttp } from './http-server.js'
import { type Listener, openListener } from './listener.js'
import { Admission, type GatewayContext, type Handler, type Session, serveWith } from './session.js'
import { serveSocks } from './socks-server.js'
import { describeError } from './sockets.js'
import { serveRedirect, serveSni } from './transparent.js'

export interface Gateway {
  /** What SIGINT/SIGTERM do; a second call stops waiting for relays. */
  shutdown(signal: string): void
}

/** Start serving; throws StartupError (with every opened listener closed) if one cannot listen. */
export function startGateway(config: Config, log: Logger): Gateway {
  const conns = new ConnTracker()
  const ctx: GatewayContext = {
    config,
    log,
    conns,
    rules: compileRules(config.rules),
    upstreams: new Map(config.upstreams.map((u) => [u.name, u])),
    own: [],
    admission: new Admission(config.limits.maxConnections, config.limits.maxPerSource),
  }
  const listeners: Listener[] = []
  try {
    for (const l of config.listeners) {
      const { name, type, listen, backlog } = l
      const listener = openListener({ name, type, listen, backlog, log, onAccept: serveWith(handlerFor(l), l, ctx) })
      listeners.push(listener)
      ctx.own.push(listener.bound)
    }
    if (config.capture.enabled) applyCapture(config, listeners, log)
  } catch (e) {
    for (const l of listeners) l.close()
    throw e
  }
  log.info('ready', { listeners: listeners.length })

  let stopping = false
  const shutdown = (signal: string) => {
    if (stopping) {
      log.warn('shutdown-forced', { signal, live: conns.size })
      native.relayAbortAll()
      return
    }
    stopping = true
    // Traffic must never stay redirected to a port nobody listens on.
    if (config.capture.enabled) removeCapture(log)
    for (const l of listeners) l.close()
    const graceMs = config.relay.shutdownGraceMs
    log.info('stopping', { signal, live: conns.size, graceMs })
    conns.cancelDialing('shutdown')
    // Relays get the grace period to finish on their own, then are closed.
    const graceTimer = native.setTimeout(() => native.relayAbortAll(), graceMs)
    conns.onIdle(() => {
      native.clearTimeout(graceTimer)
      stopped()
    })
  }

  const stopped = () => {
    const s = native.relayStats()
    log.info('stats', { relays: s.total, spliceCalls: s.spliceCalls, copyCalls: s.copyCalls })
    log.info('stopped')
    native.exit(0)
  }

  native.onSignal(native.SIGINT, () => shutdown('SIGINT'))
  native.onSignal(native.SIGTERM, () => shutdown('SIGTERM'))
  return { shutdown }
}

/** The protocol handler for a listener's type; new types add a case. */
function handlerFor(l: ListenerConfig): Handler {
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
      return serveSni
  }
}

/** SOCKS4/4a/5 and HTTP on one port, told apart by the first byte (0x04, 0x05, else HTTP). */
const serveMixed: Handler = async (s: Session, ctx: GatewayContext) => {
  await s.stream.fill(1)
  const first = s.stream.buffered[0]
  return first === 0x04 || first === 0x05 ? serveSocks(s, ctx) : serveHttp(s, ctx)
}

/** Load ugate's nftables table (replacing a stale one in the same transaction). */
function applyCapture(config: Config, listeners: Listener[], log: Logger): void {
  const target = listeners.find((l) => l.name === config.capture.listener)!
  const ruleset = nftRuleset(captureOptions(config, target.bound.port))
  const r = runNft(['nft', '-f', '-'], ruleset)
  if (r !== null) throw new StartupError(`capture: nft -f - failed: ${r}`)
  log.info('capture-on', { table: 'inet ugate', port: target.bound.port, interfaces: config.capture.lanInterfaces.join(',') })
}

function removeCapture(log: Logger): void {
  const r = runNft(['nft', '-f', '-'], nftDeleteCommand() + '\n')
  if (r === null) log.info('capture-off', { table: 'inet ugate' })
  else log.error('capture-off-failed', { error: r })
}

/** null on success, else what went wrong. */
function runNft(argv: string[], input: string): string | null {
  try {
    const r = native.runSync(argv, input)
    return r.code === 0 ? null : `exit ${r.code}: ${r.stderr.trim().split('\n').slice(0, 3).join(' | ')}`
  } catch (e) {
    return describeError(e)
  }
}
