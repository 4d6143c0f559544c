// From a destination to a connected upstream socket: route it (first
// matching rule), then act: reject, dial directly, dial a rewritten
// destination, or tunnel through an upstream proxy. A destination given only
// as an address is routed by the name ugate's DNS answered it for, when it
// did (ctx.names). Every outbound socket
// carries the configured SO_MARK; ugate's own listeners are never dialed.

import * as native from 'ugate:native'
import { formatHostPort } from '../core/address.js'
import { isIpLiteral } from '../core/ip.js'
import { type RouteQuery, type RouteResult, route } from '../core/rules/index.js'
import type { Fields } from '../core/log.js'
import type { SniffProto } from '../core/sniff/types.js'
import { DialError, type DialOptions, dial } from './dial.js'
import type { GatewayContext, Session } from './session.js'
import { closeQuietly } from './sockets.js'
import { openTunnel } from './upstream.js'
import { openHbone } from './hbone.js'
import { namesThisNode } from './mesh-identity.js'
import { openNode } from './nodes.js'

export interface Destination {
  /** What the client asked for: a host name or an IP literal. */
  host: string
  port: number
  /** The destination IP when known (an IP literal, or a redirect's original address). */
  ip?: string
  /** Name learnt by sniffing (SNI, Host), when the client gave only an address. */
  sniffedHost?: string
  proto?: SniffProto
  /** Only an explicit rule may route it (the default action would expose whatever was asked for). */
  requireRule?: boolean
}

/** The route said reject. */
export class RejectedError extends DialError {
  constructor(rule: string) {
    super('rejected', `by rule ${rule}`)
  }
}

export interface Outbound {
  fd: number
  /** Bytes an upstream proxy sent after its reply: the relay's first bytes to the client. */
  down: Uint8Array
  /** The address a SOCKS reply names when fd has none of its own (an HBONE stream's local end). */
  local?: native.SockAddr
}

/**
 * Route and connect; fills s.fields (rule, action, via). A failed dial (or a
 * RejectedError) is returned, not thrown: every caller answers it in its
 * protocol. Anything else (cancellation) is thrown. `routed`: the route
 * already taken for d (routeOf), so it is neither asked nor counted again.
 */
export async function connectOut(
  d: Destination,
  s: Session,
  ctx: GatewayContext,
  routed?: Routed,
): Promise<Outbound | DialError> {
  try {
    return await routeAndDial(d, s, ctx, routed)
  } catch (e) {
    if (e instanceof DialError) return e
    throw e
  }
}

/** The route of a destination, and what routeOf learnt: the name routed by, the destination IP. */
export interface Routed {
  rule: string
  action: RouteResult['action']
  name: string | undefined
  ip: string | undefined
}

/** Who asks: the client's address, its listener, the mesh peer of an hbone stream. */
export interface RouteFrom {
  srcIp: string
  listener: string
  peer?: { spiffeId: string; nodeId: string } | undefined
}

/** The rules' query for d; `learnt`: the name ugate's DNS answered d's address for, which it routes by. */
export type RouteQueryOf = RouteQuery & { learnt?: string }

/** What the rules are asked for d, from `from` (routeOf's first half). */
export function routeQuery(d: Destination, from: RouteFrom, ctx: GatewayContext): RouteQueryOf {
  const literal = isIpLiteral(d.host) // parsed once: on QuickJS a parse is a call per character
  const name = d.sniffedHost ?? (literal ? undefined : d.host)
  const query: RouteQueryOf = { dstPort: d.port, srcIp: from.srcIp, listener: from.listener }
  if (name !== undefined) query.host = name
  const ip = d.ip ?? (literal ? d.host : undefined)
  if (ip !== undefined) query.dstIp = ip
  // No name (or only an address as the Host), but the client got this address
  // from ugate's DNS: route by the name it asked for.
  const nameless = name === undefined || (name === d.host ? literal : isIpLiteral(name))
  const learnt = nameless && ip !== undefined && ctx.names.size > 0 ? ctx.names.lookup(ip, native.now()) : undefined
  if (learnt !== undefined) {
    query.host = learnt
    query.learnt = learnt
  }
  if (d.proto !== undefined) query.proto = d.proto
  if (from.peer !== undefined) {
    query.srcIdentity = from.peer.spiffeId
    query.srcNode = from.peer.nodeId
  }
  return query
}

/**
 * Ask the rules for d (first match wins) and count the hit; fills `fields`
 * (dnsName, rule, action). A requireRule destination no rule matches is a
 * RejectedError (thrown). `query`: routeQuery's for d, when already made.
 */
export function routeOf(
  d: Destination,
  from: RouteFrom,
  fields: Fields,
  ctx: GatewayContext,
  query = routeQuery(d, from, ctx),
): Routed {
  if (query.learnt !== undefined) fields.dnsName = query.learnt
  const r = route(ctx.rules, query)
  const rule = r.ruleIndex < 0 ? 'default' : (r.ruleName ?? `#${r.ruleIndex}`)
  fields.rule = rule
  ctx.stats.hit(rule)
  if (d.requireRule === true && r.ruleIndex < 0) {
    fields.action = 'reject'
    throw new RejectedError('default (no rule matches: nothing is exposed)')
  }
  fields.action = r.action.type
  // The name routeQuery routed by, unless it routed by a learnt one (then d had none but a sniffed one).
  const name = query.learnt === undefined ? query.host : d.sniffedHost
  return { rule, action: r.action, name, ip: query.dstIp }
}

async function routeAndDial(d: Destination, s: Session, ctx: GatewayContext, routed?: Routed): Promise<Outbound> {
  const {
    rule,
    action: a,
    name,
    ip,
  } = routed ?? routeOf(d, { srcIp: s.client.addr, listener: s.listener.name, peer: s.peer }, s.fields, ctx)
  const opts = dialOptions(s, ctx)
  switch (a.type) {
    case 'reject':
      throw new RejectedError(rule)
    case 'direct': {
      // A redirected connection goes where the client was going: its original IP. This
      // node's own name (a stream that came over the mesh) is its own service on loopback.
      const self = ip === undefined && namesThisNode(d.host, ctx.config.mesh)
      const dialed = await dial(ip ?? (self ? '127.0.0.1' : d.host), d.port, opts)
      return { fd: dialed.fd, down: new Uint8Array(0) }
    }
    case 'mesh':
      return openNode(name ?? d.host, d.port, s, ctx, opts)
    case 'forward': {
      s.fields.via = formatHostPort(a.host, a.port)
      const dialed = await dial(a.host, a.port, opts)
      return { fd: dialed.fd, down: new Uint8Array(0) }
    }
    case 'upstream':
      // The upstream resolves names itself: pass the name when there is one.
      return dialUpstream(a.name, name ?? ip ?? d.host, d.port, s, ctx, opts)
  }
}

/** How s dials: the configured timeout and mark, its cancel, never one of ugate's own listeners. */
export function dialOptions(s: Session, ctx: GatewayContext): DialOptions {
  return {
    timeoutMs: ctx.config.dial.connectTimeoutMs,
    mark: ctx.config.dial.mark,
    cancel: s.cancel,
    log: ctx.log,
    refuse: (addr: string, port: number) => isOwnAddress(ctx.own, addr, port),
  }
}

/**
 * host:port through the upstream named `upstream` (a rule's upstream:NAME, a
 * forward listener's upstream): a CONNECT stream on a pooled HBONE
 * connection, or a SOCKS5 / HTTP CONNECT tunnel. Sets s.fields.via.
 */
export async function dialUpstream(
  upstream: string,
  host: string,
  port: number,
  s: Session,
  ctx: GatewayContext,
  opts = dialOptions(s, ctx),
): Promise<Outbound> {
  const u = ctx.upstreams.get(upstream)!
  s.fields.via = upstream
  if (u.type === 'hbone') return openHbone(u, host, port, s, ctx)
  const dialed = await dial(u.server.host, u.server.port, opts)
  try {
    const down = await openTunnel(u, dialed.fd, host, port, s.cancel)
    return { fd: dialed.fd, down }
  } catch (e) {
    closeQuietly(dialed.fd)
    throw e
  }
}

/** Whether addr:port is one of ugate's listening sockets (wildcard listeners match local addresses). */
export function isOwnAddress(own: native.SockAddr[], addr: string, port: number): boolean {
  const local = /^127\./.test(addr) || addr === '::1' || addr === '0.0.0.0' || addr === '::'
  return own.some((o) => o.port === port && (o.addr === addr || ((o.addr === '0.0.0.0' || o.addr === '::') && local)))
}
