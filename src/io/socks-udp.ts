// SOCKS5 UDP ASSOCIATE (RFC 1928 §7) on `socks` and `mixed` listeners. The
// datagrams stay in C (native/socks_udp.c); JS answers the request with the
// relay socket's address, routes each destination once when the client first
// names it, and ends the association with its TCP control connection.
//
// A destination goes through the rules as a UDP flow does (network "udp";
// a domain DST.ADDR matches domain rules): direct → resolved here (off the
// loop, once per association and name) and sent from the association's own
// socket; forward → the rule's target; reject → dropped; upstream → a socks5
// upstream's own UDP ASSOCIATE, one per association and upstream, whose
// control connection lives as long as the association.

import * as native from 'ugate:native'
import { formatHostPort } from '../core/address.js'
import { Cancel, CancelledError } from '../core/cancel.js'
import type { ProxyListenerConfig } from '../core/config.js'
import { isIpLiteral } from '../core/ip.js'
import { type RouteQuery, route } from '../core/rules/index.js'
import { SOCKS5_REPLY, encodeSocks5Reply } from '../core/socks.js'
import { dial, resolveHost } from './dial.js'
import type { GatewayContext, Outcome, Session } from './session.js'
import { closeQuietly, describeError, waitEof } from './sockets.js'
import { openUdpAssociate } from './upstream.js'

/** "::ffff:1.2.3.4" (a dual-stack socket's IPv4 peer) → "1.2.3.4". */
function unmap(addr: string): string {
  return addr.startsWith('::ffff:') && addr.includes('.') ? addr.slice(7) : addr
}

/** Resolve once per association: the first address, or null with a log line. */
type Resolver = (host: string) => Promise<string | null>

function resolver(ctx: GatewayContext, cancel: Cancel, fields: { listener: string; src: string }): Resolver {
  const cache = new Map<string, Promise<string | null>>()
  const opts = { timeoutMs: ctx.config.dial.connectTimeoutMs, cancel, log: ctx.log }
  return (host) => {
    if (isIpLiteral(host)) return Promise.resolve(host)
    let p = cache.get(host)
    if (p === undefined) {
      p = resolveHost(host, opts).then(
        (addrs) => addrs[0]!,
        (e: unknown) => {
          if (!cancel.cancelled) ctx.log.warn('socks-udp-resolve-failed', { ...fields, host, error: describeError(e) })
          return null
        },
      )
      cache.set(host, p)
    }
    return p
  }
}

/**
 * The request is parsed (cmd 3): open the relay, answer, and keep the
 * association until the control connection closes or it is idle.
 */
export async function serveUdpAssociate(
  s: Session,
  ctx: GatewayContext,
  req: { host: string; port: number },
): Promise<Outcome> {
  s.handshakeDone()
  const l = s.listener as ProxyListenerConfig
  const clientIp = unmap(s.client.addr)
  const src = formatHostPort(clientIp, s.client.port)
  const base = { listener: l.name, src }
  const local = native.localAddress(s.client.fd)
  // The relay listens where the client reached this listener: an address it can send to.
  const bindAddr = unmap(local.addr)
  const ended = new Cancel(s.cancel)
  const resolve = resolver(ctx, ended, base)
  const upstreams = new Map<string, Promise<{ addr: string; port: number } | null>>()
  const upstreamFds: number[] = []
  let dests = 0

  const answer = (assoc: number, dest: number, r: native.SocksUdpRoute, what: string) => {
    const err = native.socksUdpRoute(assoc, dest, r)
    if (err !== '' && err !== 'ENOENT') ctx.log.warn('socks-udp-route-failed', { ...base, dst: what, error: err })
  }

  // One UDP ASSOCIATE per upstream for this association; its control connection is watched.
  const upstreamRelay = (name: string) => {
    let p = upstreams.get(name)
    if (p !== undefined) return p
    const u = ctx.upstreams.get(name)!
    if (u.type !== 'socks5') throw new Error(`upstream ${name}: no UDP (checked before: only socks5 relays UDP)`)
    p = (async () => {
      const opts = {
        timeoutMs: ctx.config.dial.connectTimeoutMs,
        mark: ctx.config.dial.mark,
        cancel: ended,
        log: ctx.log,
      }
      const dialed = await dial(u.server.host, u.server.port, opts)
      upstreamFds.push(dialed.fd)
      const relay = await openUdpAssociate(u, dialed.fd, ended)
      const addr = await resolve(relay.host)
      if (addr === null) return null
      // The upstream ends its association with this connection: so does ours.
      waitEof(dialed.fd, ended).then(
        () => {
          if (!ended.cancelled) ctx.log.warn('socks-udp-upstream-closed', { ...base, upstream: name })
          ended.cancel('upstream-closed')
        },
        () => {},
      )
      return { addr, port: relay.port }
    })().catch((e: unknown) => {
      if (!(e instanceof CancelledError))
        ctx.log.warn('socks-udp-upstream-failed', { ...base, upstream: name, error: describeError(e) })
      return null
    })
    upstreams.set(name, p)
    return p
  }

  const onDest = (assoc: number, ev: native.SocksUdpDest) => {
    dests++
    const dst = formatHostPort(ev.host, ev.port)
    const ip = isIpLiteral(ev.host) ? ev.host : undefined
    const query: RouteQuery = { dstPort: ev.port, srcIp: clientIp, listener: l.name, network: 'udp' }
    if (ip !== undefined) {
      query.dstIp = ip
      const learnt = ctx.names.lookup(ip, native.now())
      if (learnt !== undefined) query.host = learnt
    } else query.host = ev.host
    const r = route(ctx.rules, query)
    const rule = r.ruleIndex < 0 ? 'default' : (r.ruleName ?? `#${r.ruleIndex}`)
    ctx.stats.hit(rule)
    const a = r.action
    ctx.log.debug('socks-udp-dest', { ...base, dst, rule, action: a.type })
    const to = (host: string, port: number, action: 'direct' | 'forward') =>
      void resolve(host).then((addr) =>
        answer(assoc, ev.dest, addr === null ? { action: 'reject' } : { action, addr, port }, dst),
      )
    switch (a.type) {
      case 'reject':
      case 'mesh': // HBONE carries TCP only
        return answer(assoc, ev.dest, { action: 'reject' }, dst)
      case 'direct':
        return to(ev.host, ev.port, 'direct')
      case 'forward':
        return to(a.host, a.port, 'forward')
      case 'upstream': {
        if (ctx.upstreams.get(a.name)!.type !== 'socks5') {
          ctx.log.warn('socks-udp-upstream-unsupported', {
            ...base,
            dst,
            upstream: a.name,
            note: 'only a socks5 upstream relays UDP',
          })
          return answer(assoc, ev.dest, { action: 'reject' }, dst)
        }
        void upstreamRelay(a.name).then((relay) =>
          answer(assoc, ev.dest, relay === null ? { action: 'reject' } : { action: 'upstream', ...relay }, dst),
        )
      }
    }
  }

  let opened: ReturnType<typeof native.socksUdpOpen>
  let onEnd: (ev: native.SocksUdpEnd) => void = () => {}
  const endP = new Promise<native.SocksUdpEnd>((r) => (onEnd = r))
  const opts = { idleMs: l.udpIdleTimeoutMs, mark: ctx.config.dial.mark }
  try {
    opened = native.socksUdpOpen(bindAddr, clientIp, req.port, opts, (ev) => {
      if (ev.type === 'dest') return onDest(opened.id, ev)
      ended.cancel(ev.reason === 'idle' ? 'udp-idle' : 'eof')
      onEnd(ev)
    })
  } catch (e) {
    ctx.log.warn('socks-udp-open-failed', { ...base, bind: bindAddr, error: describeError(e) })
    await s.stream.writeAll(encodeSocks5Reply(SOCKS5_REPLY.GENERAL_FAILURE))
    return { kind: 'close', reason: 'udp-associate-failed' }
  }
  s.fields.relay = formatHostPort(opened.addr, opened.port)
  try {
    await s.stream.writeAll(encodeSocks5Reply(SOCKS5_REPLY.SUCCEEDED, opened.addr, opened.port))
    await waitEof(s.client.fd, ended)
    ended.cancel('eof')
  } catch (e) {
    if (!(e instanceof CancelledError)) throw e
  } finally {
    native.socksUdpClose(opened.id)
    for (const fd of upstreamFds) closeQuietly(fd)
  }
  // Its last event: after an idle end it has come already, after the close it is on its way.
  const end = await endP
  ended.release()
  Object.assign(s.fields, {
    dests,
    pktUp: end.packetsUp,
    pktDown: end.packetsDown,
    udpUp: end.bytesUp,
    udpDown: end.bytesDown,
  })
  return { kind: 'close', reason: ended.reason ?? 'eof' }
}
