// The native SOCKS5 handshake's JS side. A `socks` or `mixed` listener is
// served by native/mod_gate.c: C greets, authenticates (the accounts are
// handed over here, at listen and reload time) and reads the request, then
// asks JS once per batch of CONNECTs for their routes. JS answers each with
// an address or a host name for C to dial (C resolves names on the DNS
// workers and never dials ugate's own listeners: `own`), a refusal, or takes
// the connection itself (an upstream proxy or HBONE tunnel). A dial or refusal
// that depends on the request alone is kept by C too (`keep`): the same
// request later is answered there without JS (keepSocksRoutes empties it at a
// new rule set, forgetKeptRoute when ugate's DNS names an address). What C does not speak
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
import { formatCidr, ipKey, parseCidr } from '../core/ip.js'
import type { Fields } from '../core/log.js'
import { formatHostPort } from '../core/address.js'
import { SOCKS5_REPLY } from '../core/socks.js'
import { routeOf, routeQuery } from './outbound.js'
import { RouteCache } from '../core/rules/route-cache.js'
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
    own: ctx.own,
  }
}

/** What JS answers the native SOCKS handshake: onSocksRequests's callback. */
export function onSocksAsk(ctx: GatewayContext): Parameters<typeof native.onSocksRequests>[0] {
  return (items) => {
    const answers: native.SocksAnswer[] = []
    for (let i = 0; i < items.length; i++) answers.push(answerOne(items[i]!, ctx))
    return answers
  }
}

function answerOne(item: native.SocksAsk, ctx: GatewayContext): native.SocksAnswer {
  const l = listenerNamed(ctx, item.listener)
  if (l === undefined) {
    // Its listener left with a reload while C read the handshake: end it.
    if (item.kind === 'route') return { reply: SOCKS5_REPLY.GENERAL_FAILURE }
    resetQuietly(item.fd)
    ctx.admission.release(item.addr)
    return undefined
  }
  if (item.kind === 'route') return routeAnswer(item, l, ctx)
  if (item.kind === 'first') take(item, l, l.type === 'mixed' ? serveMixed : serveSocks, {}, ctx)
  else take(item, l, socks5Request, userFields(item), ctx)
  return undefined
}

// The answers of past CONNECTs, by route query (RouteCache: exact, emptied by
// a new rule set). Only answers that are a function of the query alone are
// kept: a dial or a refusal; a connection JS takes is not an answer.
const routeAnswers = new RouteCache<Exclude<native.SocksAnswer, undefined>>()

/**
 * ctx.rules is a new rule set (start, reload): C's kept answers go at once
 * (the hits they counted are the old set's, added to the stats first), and C
 * keeps answers again, by source too when a rule matches on it.
 */
export function keepSocksRoutes(ctx: GatewayContext): void {
  ctx.stats.addHits(native.socksKeep(ctx.rules.bySource))
}

/** ugate's DNS learnt a name for `address` (its ipKey): C's kept answers for it go (routeQuery's learnt name). */
export function forgetKeptRoute(address: string): void {
  native.socksKeptForget(address)
}

function routeAnswer(item: native.SocksAsk, l: ListenerConfig, ctx: GatewayContext): native.SocksAnswer {
  const d = { host: item.host!, port: item.dstPort! }
  const from = { srcIp: item.addr, listener: item.listener }
  const query = routeQuery(d, from, ctx)
  const key = routeAnswers.key(ctx.rules, query)
  const known = routeAnswers.get(key)
  if (known !== undefined) {
    ctx.stats.hit(known.rule!)
    return known
  }
  const fields = userFields(item)
  fields.dst = item.dst!
  const routed = routeOf(d, from, fields, ctx, query)
  const a = routed.action
  const rule = { rule: routed.rule, action: a.type, ...dnsName(fields) }
  let answer: native.SocksAnswer
  // What dial() would be given (outbound.ts routeAndDial): C resolves a name.
  if (a.type === 'direct') answer = { addr: routed.ip ?? d.host, port: d.port, ...rule }
  else if (a.type === 'forward') answer = { addr: a.host, port: a.port, via: formatHostPort(a.host, a.port), ...rule }
  else if (a.type === 'reject') answer = { reply: SOCKS5_REPLY.NOT_ALLOWED, ...rule }
  else {
    // An upstream or a mesh route: JS dials, with the route already taken.
    take(item, l, (s) => socks5Routed(s, ctx, d, routed), fields, ctx)
    return undefined
  }
  // C may keep it too, keyed by the host as C read it: not when routed by a
  // learnt name (it expires; an address's name is forgotten by its one
  // spelling, so only that spelling is kept).
  if (query.learnt === undefined && (query.dstIp === undefined || ipKey(d.host) === d.host)) answer.keep = true
  routeAnswers.set(key, Object.freeze(answer))
  return answer
}

function userFields(item: native.SocksAsk): Fields {
  return item.user !== undefined ? { user: item.user } : {}
}

/** JS takes the connection from here: handler runs the JS session, the handshake timer goes on from C's. */
function take(item: native.SocksAsk, l: ListenerConfig, handler: Handler, fields: Fields, ctx: GatewayContext): void {
  const client = { fd: item.fd, addr: item.addr, port: item.port, family: item.family }
  const data = item.data !== undefined ? new Uint8Array(item.data) : undefined
  adopt(handler, l, ctx, client, item.src, item.id, {
    data,
    handshakeLeftMs: item.leftMs,
    fields,
  })
}

function listenerNamed(ctx: GatewayContext, name: string): ListenerConfig | undefined {
  const ls = ctx.config.listeners
  for (let i = 0; i < ls.length; i++) if (ls[i]!.name === name) return ls[i]
  return undefined
}

function dnsName(fields: Fields): { dnsName?: string } {
  return typeof fields.dnsName === 'string' ? { dnsName: fields.dnsName } : {}
}
