// The forward listener: every client goes to one fixed target. No routing
// rules apply (the target is the route), but the target may be dialed
// through an upstream (an HBONE peer gate, a SOCKS5 or HTTP proxy), as a
// rule's upstream:NAME would; the relay starts once it connects. A direct
// forward to a numeric IP runs natively (native/mod_gate.c: no JS per
// connection); JS then only logs the finished connections in batches.

import * as native from 'ugate:native'
import { formatEndpoint } from '../core/address.js'
import type { ListenerConfig } from '../core/config.js'
import type { Fields } from '../core/log.js'
import { formatCidr, isIpLiteral, parseCidr } from '../core/ip.js'
import { dial } from './dial.js'
import { dialOptions, dialUpstream, isOwnAddress } from './outbound.js'
import type { GatewayContext, Outcome, Session } from './session.js'

export async function serveForward(s: Session, ctx: GatewayContext): Promise<Outcome> {
  const l = s.listener
  if (l.type !== 'forward') throw new Error(`serveForward on a ${l.type} listener`)
  s.fields.dst = formatEndpoint(l.target)
  s.handshakeDone()
  const debug = ctx.log.enabled('debug')
  const startedAt = debug ? native.now() : 0
  let outcome: Outcome
  let how: Fields
  if (l.upstream !== '') {
    // The access line as for a rule's upstream route: action=upstream via=NAME.
    s.fields.action = 'upstream'
    const out = await dialUpstream(l.upstream, l.target.host, l.target.port, s, ctx)
    outcome = { kind: 'relay', upstream: out.fd, down: out.down }
    how = { via: l.upstream }
  } else {
    const dialed = await dial(l.target.host, l.target.port, dialOptions(s, ctx))
    outcome = { kind: 'relay', upstream: dialed.fd }
    how = { addr: dialed.addr }
  }
  if (debug) {
    const ms = Math.round(native.now() - startedAt)
    ctx.log.debug('connected', { listener: l.name, src: s.src, dst: s.fields.dst, ...how, ms })
  }
  return outcome
}

/**
 * The options of a native forward for `l`, or null when it stays in JS: other
 * types; a forward through an upstream (its handshake is JS's: dialUpstream);
 * a target host name (resolved per connection by dial()); a target that
 * is ugate's own listener (dial() refuses it: reason `loop`); the debug level
 * (its per-connection lines come from the JS path).
 */
export function nativeForward(l: ListenerConfig, ctx: GatewayContext): native.ForwardOptions | null {
  if (l.type !== 'forward' || l.upstream !== '' || ctx.log.enabled('debug')) return null
  const { host, port } = l.target
  if (!isIpLiteral(host) || isOwnAddress(ctx.own, host, port)) return null
  return {
    kind: 'forward',
    name: l.name,
    dst: formatEndpoint(l.target),
    addr: host,
    port,
    // parseCidr's form (an IPv4-mapped prefix is IPv4), as the JS allow list matches
    allow: l.allow.map((c) => formatCidr(parseCidr(c)!)),
    mark: ctx.config.dial.mark,
    timeoutMs: ctx.config.dial.connectTimeoutMs,
    splice: ctx.config.relay.splice,
    idleMs: ctx.config.relay.idleTimeoutMs,
  }
}

/** What JS does with the native connections' batches (forwards, SOCKS): the log lines and the byte counts. */
export function onForwardBatch(ctx: GatewayContext): Parameters<typeof native.onForwardEvents>[0] {
  return (lines, counts, conns, relayed, events) => {
    for (let i = 0; i < events.length; i++) {
      const e = events[i]!
      if (e.kind === 'invalid') ctx.log.info('socks-invalid', { listener: e.listener, src: e.src!, error: e.error! })
      else if (e.kind === 'denied')
        ctx.log.warn('denied', { listener: e.listener, src: e.src!, why: 'source not in allow list' })
      else if (e.kind === 'limit') ctx.log.warn('limit-reached', { listener: e.listener, src: e.src!, limit: e.limit! })
      else ctx.log.warn('accept-paused', { name: e.listener, error: e.error!, ms: 1000 })
    }
    ctx.log.lines('info', lines)
    const m = ctx.stats.metrics
    for (let i = 0; i < counts.length; i += 8) {
      const up = counts[i + 6] as number
      const down = counts[i + 7] as number
      ctx.stats.bytesUp += up
      ctx.stats.bytesDown += down
      m.closedMany(
        counts[i] as string,
        counts[i + 1] as string,
        counts[i + 2] as string,
        counts[i + 3] as number,
        counts[i + 4] === 1,
        counts[i + 5] === 1,
        up,
        down,
      )
    }
    const info = ctx.log.enabled('info')
    for (let i = 0; i < conns.length; i++) {
      const c = conns[i]!
      ctx.stats.bytesUp += c.up
      ctx.stats.bytesDown += c.down
      ctx.stats.metrics.closed(c.listener, c, c.reason, c.up, c.down, relayed[i]!, c.splice === 1)
      if (info) ctx.log.info('conn', c as unknown as Fields)
    }
    if (counts.length > 0 || conns.length > 0) ctx.conns.recheck()
  }
}
