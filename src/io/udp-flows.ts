// A `tproxy` listener: transparent UDP. The datagrams stay in C
// (native/udp.c); JS hears of a flow when it opens (client, original
// destination, a copy of its first datagram), of its next datagrams while
// its sniffer still needs them, to route it once, and when it ends, to log
// one `udp` access line.
//
// Routing a flow: the listener's allow-list, then the rules with network
// "udp" (destination IP and port, source, listener; a name when a sniffer
// found one in the flow's first datagrams: a QUIC ClientHello's SNI,
// reassembled across datagrams; the flow's datagrams wait in C meanwhile, at
// most SNIFF_DATAGRAMS of them and SNIFF_WAIT_MS for the next, then it is
// routed by address and its access line says sniff=incomplete). direct → an
// outbound socket of the flow's own (full cone); forward → the rule's target (a name is resolved
// first); reject → the flow's datagrams are dropped until it is idle;
// upstream (socks5) → the upstream's UDP ASSOCIATE, one per flow, whose
// control connection stays open for the flow's life (udp.c adds and strips
// the SOCKS header; when the upstream closes that connection, its relay is
// gone and so is the flow); an http upstream cannot carry UDP: rejected.

import * as native from 'ugate:native'
import { formatHostPort } from '../core/address.js'
import type { TproxyListenerConfig } from '../core/config.js'
import { isIpLiteral } from '../core/ip.js'
import type { Fields } from '../core/log.js'
import { type RouteQuery, type RuleAction, route } from '../core/rules/index.js'
import { allowList } from '../core/rules/cidr-tree.js'
import {
  type DatagramSniff,
  INCOMPLETE,
  SNIFF_DATAGRAMS,
  SNIFF_WAIT_MS,
  sniffDatagrams,
} from '../core/sniff/datagram.js'
import type { Listener } from './listener.js'
import type { GatewayContext, UdpFlowRoute } from './session.js'
import { nativeQuicOpen } from './quic.js'
import { closeQuietly, describeError, waitEof } from './sockets.js'
import { dial, lookup, resolveHost } from './dial.js'
import { openUdpAssociate } from './upstream.js'
import { Cancel } from '../core/cancel.js'

/** A flow waiting for its sniffer: its datagrams so far and the wait's timer. */
interface Sniffing {
  ev: native.UdpNewFlow
  datagrams: Uint8Array[]
  timer: number
}

export interface UdpListener extends Listener {
  /** The native listener id (flows name it). */
  readonly id: number
  /** New timeouts/limits for the next flows, the handler's new config. */
  update(l: TproxyListenerConfig): void
}

function listenerOptions(l: TproxyListenerConfig, ctx: GatewayContext): native.UdpListenerOptions {
  return {
    idleMs: l.udpIdleTimeoutMs,
    dnsIdleMs: l.udpDnsIdleTimeoutMs,
    maxFlows: l.maxFlows,
    mark: ctx.config.dial.mark,
    sniffDatagrams: SNIFF_DATAGRAMS,
  }
}

/** Open a tproxy listener; throws NativeError when the address cannot be bound. */
export function openUdpListener(config: TproxyListenerConfig, ctx: GatewayContext): UdpListener {
  let l = config
  let allowed = allowList(l.allow)
  // How each live flow was routed: shared with the connection list (admin.ts).
  const flows = ctx.stats.udpFlows
  // Flows routed to a socks5 upstream: their control connection, closed with the flow.
  const upstreamConns = new Map<number, { cancel: Cancel; fd: number }>()
  const sniffing = new Map<number, Sniffing>()
  const onEvent = (ev: native.UdpEvent) => {
    if (ev.type === 'new') newFlow(ev)
    else if (ev.type === 'more') moreData(ev)
    else if (ev.type === 'busy')
      ctx.log.warn('udp-busy', {
        listener: l.name,
        dropped: ev.dropped,
        note: 'too many new flows waited for their route: their first datagrams were dropped',
      })
    else endFlow(ev)
  }
  const opened = native.udpListen(l.listen.host, l.listen.port, listenerOptions(l, ctx), onEvent)
  const bound: native.SockAddr = { addr: opened.addr, port: opened.port, family: opened.family }
  ctx.log.info('listening', {
    name: l.name,
    type: l.type,
    addr: formatHostPort(bound.addr, bound.port),
    network: 'udp',
  })

  const decide = (action: RuleAction | { type: 'deny' }, ev: native.UdpNewFlow): native.UdpRoute | string => {
    switch (action.type) {
      case 'direct':
        return { action: 'direct' }
      case 'reject':
        return { action: 'reject' }
      case 'deny':
        return { action: 'reject' }
      case 'forward':
        return isIpLiteral(action.host)
          ? { action: 'forward', addr: action.host, port: action.port }
          : `resolve:${action.host}`
      case 'upstream':
        if (ctx.upstreams.get(action.name)!.type === 'socks5') return `upstream:${action.name}`
        ctx.log.warn('udp-upstream-unsupported', {
          listener: l.name,
          src: formatHostPort(ev.src, ev.srcPort),
          upstream: action.name,
          note: 'only a socks5 upstream relays UDP: the flow is rejected',
        })
        return { action: 'reject' }
      case 'mesh':
        return { action: 'reject' } // HBONE carries TCP only
    }
  }

  const answer = (id: number, r: native.UdpRoute) => {
    const err = native.udpRoute(id, r)
    // ENOENT: the flow ended (idle, evicted) before its answer; nothing to do.
    if (err !== '' && err !== 'ENOENT') {
      ctx.log.warn('udp-route-failed', { listener: l.name, id, action: r.action, error: err })
      const f = flows.get(id)
      if (f) f.action = 'reject'
    }
  }

  function newFlow(ev: native.UdpNewFlow): void {
    if (!allowed(ev.src)) {
      flows.set(ev.id, { rule: 'allow', action: 'deny' })
      answer(ev.id, { action: 'reject' })
      return
    }
    const datagrams = [new Uint8Array(ev.data)]
    const sniffed = sniffDatagrams(datagrams, nativeQuicOpen)
    if (sniffed !== undefined) return routeFlow(ev, sniffed)
    // The ClientHello goes on in the next datagram: native keeps the flow's
    // datagrams and copies the next ones here ('more') until it is routed.
    const timer = native.setTimeout(() => {
      sniffing.delete(ev.id)
      routeFlow(ev, { ...INCOMPLETE })
    }, SNIFF_WAIT_MS)
    sniffing.set(ev.id, { ev, datagrams, timer })
  }

  function moreData(ev: native.UdpMoreData): void {
    const s = sniffing.get(ev.id)
    if (s === undefined) return // routed already (the copy was on its way)
    s.datagrams.push(new Uint8Array(ev.data))
    const sniffed = sniffDatagrams(s.datagrams, nativeQuicOpen)
    if (sniffed === undefined) return
    stopSniffing(ev.id)
    routeFlow(s.ev, sniffed)
  }

  function stopSniffing(id: number): void {
    const s = sniffing.get(id)
    if (s === undefined) return
    native.clearTimeout(s.timer)
    sniffing.delete(id)
  }

  function routeFlow(ev: native.UdpNewFlow, sniffed: DatagramSniff): void {
    const query: RouteQuery = {
      dstIp: ev.dst,
      dstPort: ev.dstPort,
      srcIp: ev.src,
      listener: l.name,
      network: 'udp',
    }
    // No sniffed name, but the client got this address from ugate's DNS: route by the name it asked for.
    const host = sniffed.host ?? ctx.names.lookup(ev.dst, native.now())
    if (host !== undefined) query.host = host
    if (sniffed.proto !== undefined) query.proto = sniffed.proto
    const r = route(ctx.rules, query)
    const rule = r.ruleIndex < 0 ? 'default' : (r.ruleName ?? `#${r.ruleIndex}`)
    ctx.stats.hit(rule)
    const info: UdpFlowRoute = { rule, action: r.action.type }
    if (host !== undefined) info.host = host
    if (sniffed.proto !== undefined) info.proto = sniffed.proto
    if (sniffed.sniff !== undefined) info.sniff = sniffed.sniff
    flows.set(ev.id, info)
    const d = decide(r.action, ev)
    if (typeof d !== 'string') {
      if (r.action.type === 'upstream') info.action = 'reject'
      answer(ev.id, d)
      return
    }
    if (r.action.type === 'upstream') return viaUpstream(ev, info, r.action.name)
    const a = r.action as Extract<RuleAction, { type: 'forward' }>
    lookup(a.host, (err, addrs) => {
      // The same family as the client: TPROXY cannot turn IPv4 into IPv6.
      const want = ev.family === 6 ? ':' : '.'
      const addr = err === null ? addrs.find((x) => x.includes(want)) : undefined
      if (addr === undefined) {
        ctx.log.warn('udp-forward-failed', { listener: l.name, target: a.host, error: err ?? 'no address' })
        info.action = 'reject'
        answer(ev.id, { action: 'reject' })
        return
      }
      answer(ev.id, { action: 'forward', addr, port: a.port })
    })
  }

  /** The flow's own UDP ASSOCIATE at a socks5 upstream; the flow waits (queued in C) meanwhile. */
  function viaUpstream(ev: native.UdpNewFlow, info: UdpFlowRoute, name: string): void {
    const u = ctx.upstreams.get(name)!
    if (u.type !== 'socks5') throw new Error(`upstream ${name}: no UDP (decide() lets only socks5 through)`)
    const up = { cancel: new Cancel(), fd: -1 }
    upstreamConns.set(ev.id, up)
    info.via = name
    const fields = { listener: l.name, src: formatHostPort(ev.src, ev.srcPort), upstream: name }
    const opts = {
      timeoutMs: ctx.config.dial.connectTimeoutMs,
      mark: ctx.config.dial.mark,
      cancel: up.cancel,
      log: ctx.log,
    }
    void (async () => {
      const dialed = await dial(u.server.host, u.server.port, opts)
      up.fd = dialed.fd
      const relay = await openUdpAssociate(u, dialed.fd, up.cancel)
      const addr = isIpLiteral(relay.host) ? relay.host : (await resolveHost(relay.host, opts))[0]!
      answer(ev.id, { action: 'upstream', addr, port: relay.port })
      // Its relay ends with this connection (RFC 1928 7): the flow ends too, its client's next
      // datagram opens a new one (and a new association).
      await waitEof(dialed.fd, up.cancel)
      ctx.log.warn('udp-upstream-closed', { ...fields, note: 'the flow ends with its association' })
      info.ended = 'upstream-closed'
      native.udpFlowClose(ev.id)
    })().catch((e: unknown) => {
      if (up.cancel.cancelled) return // the flow ended first
      ctx.log.warn('udp-upstream-failed', { ...fields, error: describeError(e) })
      info.action = 'reject'
      answer(ev.id, { action: 'reject' })
    })
  }

  function endFlow(ev: native.UdpEndedFlow): void {
    stopSniffing(ev.id) // ended (evicted, closed) while its sniffer waited
    const info = flows.get(ev.id)
    flows.delete(ev.id)
    const up = upstreamConns.get(ev.id)
    if (up !== undefined) {
      upstreamConns.delete(ev.id)
      up.cancel.cancel('flow-ended')
      if (up.fd >= 0) closeQuietly(up.fd)
    }
    const fields: Fields = {
      listener: l.name,
      src: formatHostPort(ev.src, ev.srcPort),
      dst: formatHostPort(ev.dst, ev.dstPort),
      proto: info?.proto,
      host: info?.host,
      sniff: info?.sniff,
      rule: info?.rule ?? '-',
      action: info?.action ?? ev.action,
      via: info?.via,
      up: ev.bytesUp,
      down: ev.bytesDown,
      pktUp: ev.packetsUp,
      pktDown: ev.packetsDown,
      ms: ev.ms,
      reason: info?.ended ?? ev.reason,
    }
    if (ev.reason === 'evicted') ctx.log.warn('udp-flow-evicted', { ...fields, maxFlows: l.maxFlows })
    ctx.log.info('udp', fields)
  }

  return {
    id: opened.id,
    name: l.name,
    type: l.type,
    bound,
    close: () => {
      native.udpClose(opened.id)
    },
    // Native TCP forwarding is for forward listeners: a tproxy listener has none.
    serveNative: () => {},
    update(next: TproxyListenerConfig) {
      l = next
      allowed = allowList(next.allow)
      try {
        native.udpListenerSet(opened.id, listenerOptions(next, ctx))
      } catch (e) {
        ctx.log.error('udp-listener-update-failed', { listener: next.name, error: describeError(e) })
      }
    },
  }
}

/** The live flows, for the `connections` answer; listener ids → names. */
export function udpFlowsView(names: ReadonlyMap<number, string>, routes: ReadonlyMap<number, UdpFlowRoute>) {
  return native.udpFlows().map((f) => ({
    id: f.id,
    listener: names.get(f.listener) ?? String(f.listener),
    src: formatHostPort(f.src, f.srcPort),
    dst: formatHostPort(f.dst, f.dstPort),
    host: routes.get(f.id)?.host,
    rule: routes.get(f.id)?.rule,
    action: f.action,
    up: f.bytesUp,
    down: f.bytesDown,
    pktUp: f.packetsUp,
    pktDown: f.packetsDown,
    ms: f.ms,
    idleMs: f.idleMs,
  }))
}
