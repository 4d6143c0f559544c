// The native SOCKS5 handshake's JS side. A `socks` or `mixed` listener is
// served by native/mod_gate.c: C greets, authenticates (the accounts are
// handed over here, at listen and reload time) and reads the request, then
// asks JS once per batch of CONNECTs for their routes. JS answers each with
// an address for C to dial, a refusal, or takes the connection itself (a host
// name to resolve, an upstream proxy or HBONE tunnel). What C does not speak
// (SOCKS4/4a, HTTP on `mixed`, UDP ASSOCIATE) is handed over with the bytes
// read so far and runs the JS handlers from there.
//
// No sniffing is lost: the JS SOCKS path routes on the request alone (no
// sniffed name or protocol reaches the rules for a SOCKS connection, see
// socks-server.ts), so routing before the first payload byte is what it
// does too, whatever the rules say.

import * as native from 'ugate:native'
import { utf8Encode } from '../core/bytes.js'
import type { ListenerConfig } from '../core/config.js'
import { formatCidr, isIpLiteral, parseCidr } from '../core/ip.js'
import type { Fields } from '../core/log.js'
import { formatHostPort } from '../core/address.js'
import { SOCKS5_REPLY } from '../core/socks.js'
import { isOwnAddress, routeOf } from './outbound.js'
import { serveMixed } from './mixed-server.js'
import { type GatewayContext, type Handler, adopt } from './session.js'
import { serveSocks, socks5Request, socks5Routed } from './socks-server.js'
import { resetQuietly } from './sockets.js'

/**
 * The options of a native SOCKS listener for `l`, or null when it stays in
 * JS: other types, and the debug level (its per-connection lines come from
 * the JS path).
 */
export function nativeSocks(l: ListenerConfig, ctx: GatewayContext): native.SocksOptions | null {
  if ((l.type !== 'socks' && l.type !== 'mixed') || ctx.log.enabled('debug')) return null
  // RFC 1929 carries at most 255 bytes each: a longer account can never log in.
  const fits = (s: string) => utf8Encode(s).length <= 255
  return {
    kind: 'socks',
    name: l.name,
    type: l.type,
    allow: l.allow.map((c) => formatCidr(parseCidr(c)!)),
    mark: ctx.config.dial.mark,
    timeoutMs: ctx.config.dial.connectTimeoutMs,
    splice: ctx.config.relay.splice,
    idleMs: ctx.config.relay.idleTimeoutMs,
    handshakeMs: ctx.config.limits.handshakeTimeoutMs,
    users: l.users.filter((u) => fits(u.username) && fits(u.password)).flatMap((u) => [u.username, u.password]),
  }
}

/** What JS answers the native SOCKS handshake: onSocksRequests's callback. */
export function onSocksAsk(ctx: GatewayContext): Parameters<typeof native.onSocksRequests>[0] {
  return (items) => {
    const answers: native.SocksAnswer[] = []
    for (const item of items) answers.push(answerOne(item, ctx))
    return answers
  }
}

function answerOne(item: native.SocksAsk, ctx: GatewayContext): native.SocksAnswer {
  const l = ctx.config.listeners.find((x) => x.name === item.listener)
  const client = { fd: item.fd, addr: item.addr, port: item.port, family: item.family }
  const data = item.data !== undefined ? new Uint8Array(item.data) : undefined
  if (l === undefined) {
    // Its listener left with a reload while C read the handshake: end it.
    if (item.kind === 'route') return { reply: SOCKS5_REPLY.GENERAL_FAILURE, reason: 'rejected' }
    resetQuietly(item.fd)
    ctx.admission.release(item.addr)
    return undefined
  }
  const take = (handler: Handler, fields?: Fields) =>
    adopt(handler, l, ctx, client, item.src, item.id, fields !== undefined ? { data, fields } : { data })
  if (item.kind === 'first') {
    take(l.type === 'mixed' ? serveMixed : serveSocks)
    return undefined
  }
  const fields: Fields = {}
  if (item.user !== undefined) fields.user = item.user
  if (item.kind === 'request') {
    take(socks5Request, fields)
    return undefined
  }
  const host = item.host!
  const port = item.dstPort!
  fields.dst = item.dst!
  const routed = routeOf({ host, port }, { srcIp: item.addr, listener: item.listener }, fields, ctx)
  const a = routed.action
  const known = { rule: routed.rule, action: a.type, ...dnsName(fields) }
  const to =
    a.type === 'direct' && routed.ip !== undefined
      ? { addr: routed.ip, port }
      : a.type === 'forward' && isIpLiteral(a.host)
        ? { addr: a.host, port: a.port, via: formatHostPort(a.host, a.port) }
        : null
  if (a.type === 'reject') return { reply: SOCKS5_REPLY.NOT_ALLOWED, reason: 'rejected', ...known }
  if (to !== null && isOwnAddress(ctx.own, to.addr, to.port))
    return { reply: SOCKS5_REPLY.NOT_ALLOWED, reason: 'loop', ...known, ...(to.via ? { via: to.via } : {}) }
  if (to !== null) return { ...to, ...known }
  // A name to resolve, an upstream: JS dials, with the route already taken.
  take((s) => socks5Routed(s, ctx, { host, port }, routed), fields)
  return undefined
}

function dnsName(fields: Fields): { dnsName?: string } {
  return typeof fields.dnsName === 'string' ? { dnsName: fields.dnsName } : {}
}
